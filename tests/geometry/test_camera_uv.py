"""Cameras (host float64 and jnp paths agree; jnp batches and differentiates) and UV texel
bindings (against a per-texel point-in-triangle reference)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ggtalker_jax.errors import InputError
from ggtalker_jax.geometry.camera import look_at, portrait_camera, project_points
from ggtalker_jax.geometry.uv import bind_texels, interpolate_bound


def test_host_and_jnp_cameras_agree_and_project_the_target_to_the_centre(rng):
    target = rng.normal(size=3) * 0.1
    yaw, pitch = rng.uniform(-1, 1), rng.uniform(-0.3, 0.3)
    view, K = portrait_camera(target, 64, yaw, pitch)
    view_j, K_j = portrait_camera(jnp.asarray(target, jnp.float32), 64, jnp.float32(yaw), pitch)
    assert view.dtype == np.float32 and isinstance(view, np.ndarray)
    np.testing.assert_allclose(view_j, view, atol=2e-6)
    np.testing.assert_allclose(K_j, K, rtol=1e-6)
    uv, depth = project_points(target[None], view, K)
    np.testing.assert_allclose(uv[0], [32.0, 32.0], atol=1e-4)
    np.testing.assert_allclose(depth[0], 0.9, atol=1e-5)
    np.testing.assert_allclose(view[:3, :3] @ view[:3, :3].T, np.eye(3), atol=1e-6)


def test_jnp_look_at_batches_and_has_gradients(rng):
    eyes = jnp.asarray(rng.normal(size=(5, 3)) + np.array([0.0, 0.0, 3.0]), jnp.float32)
    views = look_at(eyes, jnp.zeros((5, 3)))
    for eye, view in zip(np.asarray(eyes), np.asarray(views), strict=True):
        np.testing.assert_allclose(view, look_at(eye, np.zeros(3)), atol=2e-6)
    grad = jax.grad(lambda e: jnp.sum(look_at(e, jnp.zeros(3))[..., :3, 3] ** 2))(eyes[0])
    assert bool(jnp.all(jnp.isfinite(grad)))


def test_look_at_refuses_a_parallel_up():
    with pytest.raises(InputError, match="parallel to the viewing direction"):
        look_at([0.0, 2.0, 0.0], [0.0, 0.0, 0.0])


def jittered_layout(rng, n=4):
    """A UV layout that tiles [0.1, 0.9]² without overlaps: an n x n grid of jittered points,
    two triangles per cell."""
    g = np.linspace(0.1, 0.9, n + 1)
    vt = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    inner = (vt > 0.11).all(-1) & (vt < 0.89).all(-1)
    vt[inner] += rng.uniform(-0.04, 0.04, (int(inner.sum()), 2))
    ft = []
    for i in range(n):
        for j in range(n):
            a, b, c = i * (n + 1) + j, (i + 1) * (n + 1) + j, i * (n + 1) + j + 1
            d = (i + 1) * (n + 1) + j + 1
            ft += [[a, b, d], [a, d, c]]
    return vt, np.asarray(ft)


def test_texel_binding_matches_point_in_triangle(rng):
    size = 48
    vt, ft = jittered_layout(rng, n=3)
    binding = bind_texels(vt, ft, size)
    u, v = (np.arange(size) + 0.5) / size, 1 - (np.arange(size) + 0.5) / size
    checked = 0
    for i in range(size):
        for j in range(size):
            p = np.array([u[j], v[i]])
            for f, (a, b, c) in enumerate(vt[ft]):
                m = np.stack([b - a, c - a], 1)
                w1, w2 = np.linalg.solve(m, p - a)
                true = np.array([1 - w1 - w2, w1, w2])
                # Clear of every edge by more than a texel: the rasterizer must agree.
                # Distance to the edge opposite each corner: barycentric x that height.
                heights = abs(np.linalg.det(m)) / np.array(
                    [np.linalg.norm(c - b), np.linalg.norm(c - a), np.linalg.norm(b - a)]
                )
                edge_dist = true * heights
                if true.min() > 0 and edge_dist.min() > 1.5 / size:
                    assert binding.face[i, j] == f, (i, j)
                    np.testing.assert_allclose(binding.bary[i, j], true, atol=1e-9)
                    checked += 1
    assert checked > 200  # the texels clear of every edge by 1.5 texels
    outside = (u[None, :] < 0.08) | (u[None, :] > 0.92) | (v[:, None] < 0.08) | (v[:, None] > 0.92)
    assert np.all(binding.face[outside] == -1)
    values = rng.normal(size=(len(vt), 4))
    host = interpolate_bound(values, ft, binding)
    dev = interpolate_bound(jnp.asarray(values, jnp.float32), ft, binding)
    np.testing.assert_allclose(dev, host, atol=1e-5)
    assert np.all(host[~binding.covered] == 0)
