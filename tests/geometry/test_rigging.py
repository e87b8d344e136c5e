"""Rigid transforms of Gaussian sets (means and covariances move as the rotation says), and
Gaussians decoded from a UV map and rigged to triangles (against a per-texel float64
reference; rigid with the mesh; the initial map on the surface)."""

import jax.numpy as jnp
import numpy as np
import pytest

from ggtalker_jax.errors import InputError
from ggtalker_jax.geometry.rigging import (
    decode_texels,
    initial_raw_map,
    rig_gaussians,
    transform_gaussians,
)
from ggtalker_jax.geometry.rotations import axis_angle_to_matrix_reference, quaternion_to_matrix
from ggtalker_jax.geometry.uv import surface_points, texel_layout
from ggtalker_jax.kernels.splat.projection import covariance_3d
from ggtalker_jax.types import Gaussians


def test_transform_gaussians_moves_means_and_covariances(rng):
    n, batch = 30, 4
    g = Gaussians(
        means=jnp.asarray(rng.normal(size=(n, 3)), jnp.float32),
        quats=jnp.asarray(rng.normal(size=(n, 4)), jnp.float32),
        scales=jnp.asarray(rng.uniform(0.01, 0.2, (n, 3)), jnp.float32),
        opacities=jnp.asarray(rng.uniform(0, 1, n), jnp.float32),
        colors=jnp.asarray(rng.uniform(0, 1, (n, 3)), jnp.float32),
    )
    rots = axis_angle_to_matrix_reference(rng.normal(size=(batch, 3)))
    shifts = rng.normal(size=(batch, 3))
    moved = transform_gaussians(g, rots, shifts).check()
    want_means = np.einsum("bij,nj->bni", rots, np.asarray(g.means)) + shifts[:, None]
    np.testing.assert_allclose(moved.means, want_means, atol=1e-5)
    cov = np.asarray(covariance_3d(g.quats, g.scales), np.float64)
    want_cov = np.einsum("bij,njk,blk->bnil", rots, cov, rots)
    np.testing.assert_allclose(covariance_3d(moved.quats, moved.scales), want_cov, atol=1e-6)
    assert moved.colors.shape == (batch, n, 3) and moved.opacities.shape == (batch, n)


# --- Gaussians rigged to triangles from a UV map ---------------------------------------------


def sheet_layout(sheet):
    """The shared sheet (conftest) with its 12² texel layout."""
    verts, faces, vt = sheet()
    return verts, faces, texel_layout(vt, faces, 12)


def quat_matrix_reference(q):
    """wxyz unit quaternion -> rotation matrix (float64)."""
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def rig_reference(raw, verts, faces, layout, radius, cap):
    """Decode and rig texel by texel in float64: ``(means, covariances, rotations)``."""
    raw, verts = np.asarray(raw, np.float64), np.asarray(verts, np.float64)
    means, covs, rots = [], [], []
    for t in range(layout.n):
        v0, v1, v2 = verts[faces[layout.face[t]]]
        a0 = (v1 - v0) / np.linalg.norm(v1 - v0)
        a1 = np.cross(a0, v2 - v0)
        a1 /= np.linalg.norm(a1)
        a2 = np.cross(a0, a1)
        frame = np.stack([a0, a1, a2], 1)
        k = 0.5 * (np.linalg.norm(v1 - v0) + abs(a2 @ (v2 - v0)))
        point = layout.bary[t].astype(np.float64) @ np.stack([v0, v1, v2])
        offset = radius * np.tanh(raw[t, 0:3])
        log_scale = cap - np.log1p(np.exp(cap - raw[t, 3:6]))
        rot = frame @ quat_matrix_reference(raw[t, 6:10])
        std = k * np.exp(log_scale)
        means.append(point + k * frame @ offset)
        covs.append(rot @ np.diag(std**2) @ rot.T)
        rots.append(rot)
    return np.stack(means), np.stack(covs), np.stack(rots)


def test_decode_texels_stays_within_the_activation_bounds(rng):
    raw = jnp.asarray(rng.normal(size=(4, 50, 14)) * 30.0, jnp.float32)
    local = decode_texels(raw, offset_radius=0.7, max_log_scale=0.2)
    assert local.offsets.shape == (4, 50, 3) and local.opacities.shape == (4, 50)
    assert float(jnp.max(jnp.abs(local.offsets))) <= np.float32(0.7)
    assert float(jnp.max(local.log_scales)) <= np.float32(0.2)
    np.testing.assert_allclose(jnp.linalg.norm(local.quats, axis=-1), 1.0, atol=1e-6)
    for x in (local.colors, local.opacities):
        assert float(jnp.min(x)) >= 0.0 and float(jnp.max(x)) <= 1.0
    # Well below the cap the log-scale passes through; zero raw offsets sit on the surface.
    small = jnp.zeros((1, 14)).at[0, 3:6].set(-8.0).at[0, 6].set(2.0)
    local = decode_texels(small, max_log_scale=0.5)
    np.testing.assert_allclose(local.log_scales, -8.0, atol=1e-3)
    np.testing.assert_array_equal(local.offsets, 0.0)
    np.testing.assert_allclose(local.quats, [[1.0, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(local.colors, 0.5)


def test_decode_texels_refuses_a_wrong_channel_count():
    with pytest.raises(InputError, match=r"has 13 channels; expected 14 \(offset 3, log-scale"):
        decode_texels(jnp.zeros((5, 13)))


def test_rig_gaussians_matches_a_per_texel_float64_reference(rng, sheet):
    verts, faces, layout = sheet_layout(sheet)
    raw = rng.normal(size=(layout.n, 14)) * np.array([1.0] * 3 + [0.5] * 3 + [1.0] * 8)
    radius, cap = 0.8, 0.3
    local = decode_texels(jnp.asarray(raw, jnp.float32), radius, cap)
    g = rig_gaussians(local, jnp.asarray(verts, jnp.float32), faces, layout).check()
    means, covs, rots = rig_reference(raw, verts, faces, layout, radius, cap)
    np.testing.assert_allclose(g.means, means, atol=2e-6)
    np.testing.assert_allclose(covariance_3d(g.quats, g.scales), covs, atol=1e-8, rtol=1e-4)
    np.testing.assert_allclose(quaternion_to_matrix(g.quats), rots, atol=2e-5)
    np.testing.assert_allclose(g.colors, 1 / (1 + np.exp(-raw[:, 10:13])), atol=1e-6)
    np.testing.assert_allclose(g.opacities, 1 / (1 + np.exp(-raw[:, 13])), atol=1e-6)


def test_rigged_gaussians_move_rigidly_with_a_rigidly_moved_mesh(rng, sheet):
    verts, faces, layout = sheet_layout(sheet)
    raw = jnp.asarray(rng.normal(size=(layout.n, 14)), jnp.float32)
    turns = axis_angle_to_matrix_reference(rng.normal(size=(2, 3)))  # [2, 3, 3]
    shifts = rng.normal(size=(2, 3))
    moved = np.einsum("bij,vj->bvi", turns, verts) + shifts[:, None]  # [2, V, 3]
    local = decode_texels(raw)  # one map, three meshes: broadcast over frames
    both = jnp.asarray(np.concatenate([verts[None], moved]), jnp.float32)
    g = rig_gaussians(local, both, faces, layout)
    assert g.means.shape == (3, layout.n, 3) and g.colors.shape == (3, layout.n, 3)
    rest_means = np.asarray(g.means[0], np.float64)
    rest_cov = np.asarray(covariance_3d(g.quats[0], g.scales[0]), np.float64)
    np.testing.assert_allclose(
        g.means[1:], np.einsum("bij,nj->bni", turns, rest_means) + shifts[:, None], atol=5e-6
    )
    np.testing.assert_allclose(
        covariance_3d(g.quats[1:], g.scales[1:]),
        np.einsum("bij,njk,blk->bnil", turns, rest_cov, turns),
        atol=1e-8,
        rtol=1e-4,
    )
    np.testing.assert_allclose(
        g.scales[1:], np.broadcast_to(g.scales[0], (2, layout.n, 3)), rtol=1e-5
    )


def test_initial_raw_map_decodes_to_surface_gaussians_of_the_texel_spacing(rng, sheet):
    verts, faces, layout = sheet_layout(sheet)
    color = rng.uniform(0.1, 0.9, 3)
    base = initial_raw_map(layout, verts, faces, opacity=0.8, color=color)
    assert base.shape == (12, 12, 14) and base.dtype == np.float32
    np.testing.assert_array_equal(base[~layout.mask], 0.0)
    local = decode_texels(layout.gather(base))
    np.testing.assert_array_equal(local.offsets, 0.0)
    np.testing.assert_array_equal(local.quats, np.tile([1.0, 0.0, 0.0, 0.0], (layout.n, 1)))
    np.testing.assert_allclose(local.colors, np.broadcast_to(color, (layout.n, 3)), atol=1e-5)
    np.testing.assert_allclose(local.opacities, 0.8, atol=1e-5)
    g = rig_gaussians(local, jnp.asarray(verts, jnp.float32), faces, layout)
    np.testing.assert_allclose(g.means, surface_points(verts, faces, layout), atol=1e-6)
    # World std: 0.6 texel spacings in the surface plane, 0.3 of that along the normal.
    tri = verts[faces[layout.face]]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=-1)
    spacing = np.sqrt(area / layout.uv_area)
    want = 0.6 * spacing[:, None] * np.array([1.0, 0.3, 1.0])
    np.testing.assert_allclose(g.scales, want, rtol=1e-4)
