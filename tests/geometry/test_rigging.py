"""Rigid transforms of Gaussian sets: means and covariances move as the rotation says."""

import jax.numpy as jnp
import numpy as np

from ggtalker_jax.geometry.rigging import transform_gaussians
from ggtalker_jax.geometry.rotations import axis_angle_to_matrix_reference
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
