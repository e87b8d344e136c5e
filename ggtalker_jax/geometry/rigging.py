"""Placing Gaussians in the world: rigid transforms of a Gaussian set (posing a head, the
benchmark's moving workload). Rigging to mesh triangles builds on
:func:`ggtalker_jax.geometry.triangles.triangle_frames`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ggtalker_jax.geometry.rotations import matrix_to_quaternion, quaternion_multiply
from ggtalker_jax.types import Gaussians


def transform_gaussians(gaussians: Gaussians, rotation, translation) -> Gaussians:
    """Move Gaussians rigidly: ``x -> R x + t``; rotations compose as ``R ∘ q``.

    Args:
      gaussians: means ``[..., N, 3]`` and quats ``[..., N, 4]`` (the rest is kept).
      rotation: ``[..., 3, 3]``, one per leading batch element.
      translation: ``[..., 3]``.

    Returns:
      The moved :class:`Gaussians`, with the batch shape of ``rotation`` in front.
    """
    rotation = jnp.asarray(rotation, jnp.float32)
    translation = jnp.asarray(translation, jnp.float32)
    means = (
        jnp.einsum(
            "...ij,...nj->...ni", rotation, gaussians.means, precision=jax.lax.Precision.HIGHEST
        )
        + translation[..., None, :]
    )
    turn = matrix_to_quaternion(rotation)[..., None, :]  # [..., 1, 4]
    shape = (*means.shape[:-1], 4)
    quats = quaternion_multiply(
        jnp.broadcast_to(turn, shape), jnp.broadcast_to(gaussians.quats, shape)
    )
    batch = means.shape[:-2]
    return Gaussians(
        means=means,
        quats=quats,
        scales=jnp.broadcast_to(gaussians.scales, (*batch, *gaussians.scales.shape[-2:])),
        opacities=jnp.broadcast_to(gaussians.opacities, (*batch, gaussians.opacities.shape[-1])),
        colors=jnp.broadcast_to(gaussians.colors, (*batch, *gaussians.colors.shape[-2:])),
    )
