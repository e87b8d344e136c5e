"""Geometry: pure functions, batched over leading dims (``jnp``; cameras also take host
arrays, computed in float64).

- :mod:`~ggtalker_jax.geometry.rotations`: axis-angle (Rodrigues), quaternions (wxyz),
  homogeneous transforms.
- :mod:`~ggtalker_jax.geometry.camera`: ``look_at``, intrinsics, the portrait camera,
  projection (OpenCV/gsplat convention).
- :mod:`~ggtalker_jax.geometry.triangles`: face and vertex normals, the rigging frame of
  every triangle (normal in column 1).
- :mod:`~ggtalker_jax.geometry.uv`: texels of a UV layout bound to (face, barycentric); the
  Gaussian map's channels and covered texels.
- :mod:`~ggtalker_jax.geometry.rigging`: rigid transforms of Gaussian sets; a raw UV map
  decoded and rigged to mesh triangles.
"""

from ggtalker_jax.geometry.camera import intrinsics, look_at, portrait_camera, project_points
from ggtalker_jax.geometry.rigging import (
    LocalGaussians,
    decode_texels,
    initial_raw_map,
    rig_gaussians,
    transform_gaussians,
)
from ggtalker_jax.geometry.rotations import (
    axis_angle_to_matrix,
    axis_angle_to_matrix_reference,
    matrix_to_quaternion,
    quaternion_multiply,
    quaternion_to_matrix,
    rigid_transform,
)
from ggtalker_jax.geometry.triangles import face_normals, triangle_frames, vertex_normals
from ggtalker_jax.geometry.uv import (
    MAP_CHANNELS,
    MAP_SLICES,
    TexelLayout,
    surface_points,
    texel_layout,
)

__all__ = [
    "MAP_CHANNELS",
    "MAP_SLICES",
    "LocalGaussians",
    "TexelLayout",
    "axis_angle_to_matrix",
    "axis_angle_to_matrix_reference",
    "decode_texels",
    "face_normals",
    "initial_raw_map",
    "intrinsics",
    "look_at",
    "matrix_to_quaternion",
    "portrait_camera",
    "project_points",
    "quaternion_multiply",
    "quaternion_to_matrix",
    "rig_gaussians",
    "rigid_transform",
    "surface_points",
    "texel_layout",
    "transform_gaussians",
    "triangle_frames",
    "vertex_normals",
]
