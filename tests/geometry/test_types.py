"""The shared pytrees: they pass through jit and vmap, and refuse inconsistent shapes with one
line naming the field."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ggtalker_jax.errors import InputError
from ggtalker_jax.types import Camera, Gaussians, Mesh


def gaussians(rng, n=7, d=3, batch=()):
    g = lambda *s: jnp.asarray(rng.normal(size=(*batch, *s)), jnp.float32)
    return Gaussians(g(n, 3), g(n, 4), jnp.abs(g(n, 3)), jnp.abs(g(n)) % 1, g(n, d))


def test_gaussians_pass_through_jit_and_vmap(rng):
    g = gaussians(rng, batch=(2,)).check()
    shifted = jax.jit(jax.vmap(lambda g: g.means + 1.0))(g)
    np.testing.assert_allclose(shifted, g.means + 1.0)
    leaves = jax.tree_util.tree_leaves(g)
    assert len(leaves) == 5 and g.count == 7


@pytest.mark.parametrize(
    "field,shape,message",
    [
        ("quats", (6, 4), r"'quats' has shape \(6, 4\); expected \[..., 7, 4\]"),
        ("scales", (7, 2), r"'scales' has shape \(7, 2\)"),
        ("opacities", (7, 1), r"'opacities' has shape \(7, 1\)"),
        ("colors", (6, 3), r"'colors' has shape \(6, 3\)"),
        ("means", (7, 2), r"'means' has shape \(7, 2\); expected \[..., \?, 3\]"),
    ],
)
def test_gaussians_refuse_wrong_shapes(rng, field, shape, message):
    g = gaussians(rng)
    bad = Gaussians(**{**g.__dict__, field: jnp.zeros(shape)})
    with pytest.raises(InputError, match=message):
        bad.check()


def test_empty_gaussians_and_cameras_are_refused(rng):
    with pytest.raises(InputError, match="holds 0 Gaussians"):
        gaussians(rng, n=0).check()
    cam = Camera(jnp.eye(4)[None].repeat(3, 0), jnp.eye(3)[None].repeat(2, 0), 64, 64)
    with pytest.raises(InputError, match="have different leading shapes"):
        cam.check()
    with pytest.raises(InputError, match="image size 0x64 must be positive"):
        Camera(jnp.eye(4), jnp.eye(3), 0, 64).check()


def test_camera_size_is_static_under_jit(rng):
    cam = Camera(jnp.eye(4)[None], jnp.eye(3)[None], int(rng.integers(16, 64)), 32).check()
    out = jax.jit(lambda c: jnp.zeros((c.height, c.width)))(cam)
    assert out.shape == (32, cam.width)


def test_mesh_checks_corner_indices(rng):
    mesh = Mesh(
        jnp.zeros((5, 3)),
        jnp.zeros((4, 3), jnp.int32),
        jnp.zeros((6, 2)),
        jnp.zeros((3, 3), jnp.int32),
        jnp.zeros((8, 8, 3)),
    )
    with pytest.raises(InputError, match=r"'ft' has shape \(3, 3\); expected \[..., 4, 3\]"):
        mesh.check()
