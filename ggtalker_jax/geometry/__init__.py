"""Geometry: rotations and related pure functions (all ``jnp``, batched over leading dims)."""

from ggtalker_jax.geometry.camera import intrinsics, look_at, project_points
from ggtalker_jax.geometry.rotations import (
    axis_angle_to_matrix,
    axis_angle_to_matrix_reference,
    rigid_transform,
)

__all__ = [
    "axis_angle_to_matrix",
    "axis_angle_to_matrix_reference",
    "intrinsics",
    "look_at",
    "project_points",
    "rigid_transform",
]
