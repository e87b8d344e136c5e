"""Triangle geometry of a mesh: face normals, smooth vertex normals, and the rigging frame
that binds Gaussians to triangles.

The rigging frame is GaussianAvatars' (Qian et al., CVPR 2024). For a triangle
``(v0, v1, v2)``:

1. ``a0 = normalize(v1 - v0)``: along the first edge;
2. ``a1 = normalize(a0 × (v2 - v0))``: the normal (outward for counter-clockwise faces);
3. ``a2 = -normalize(a1 × a0)`` = ``a0 × a1``: in the plane, completing a right-handed frame;
4. ``R = [a0, a1, a2]`` as columns, ``T`` = centroid, and the scale
   ``k = (|v1 - v0| + |a2 · (v2 - v0)|) / 2``: the mean of the first edge and the height on it.

A Gaussian with local mean ``μ``, log-scale ``s`` and rotation ``r`` then sits at
``k R μ + T`` with scale ``k exp(s)`` and rotation ``R ∘ r``. The normal is column 1, not
column 2: a UV Gaussian map learned in one convention and rigged in another would be silently
wrong, so this is the one function that orients anything on the mesh.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _normalize(v, eps: float = 1e-20):
    return v / jnp.sqrt(jnp.maximum(jnp.sum(v * v, axis=-1, keepdims=True), eps))


def face_normals(vertices, faces):
    """Unnormalised face normals ``(v1 - v0) × (v2 - v0)`` (length = twice the area).

    Args:
      vertices: ``[..., V, 3]``.  faces: ``[F, 3]`` int.

    Returns:
      ``[..., F, 3]``.
    """
    corners = vertices[..., faces, :]  # [..., F, 3, 3]
    return jnp.cross(
        corners[..., 1, :] - corners[..., 0, :], corners[..., 2, :] - corners[..., 0, :]
    )


def vertex_normals(vertices, faces):
    """Smooth unit vertex normals: area-weighted sum of the adjacent faces' normals.

    Numpy arrays take a float64 host path (building a head asset); anything else the ``jnp``
    path (rendering). Each keeps its accumulation order, so results are bit-stable.

    Args:
      vertices: ``[V, 3]``.  faces: ``[F, 3]`` counter-clockwise seen from outside.

    Returns:
      ``[V, 3]`` outward unit normals (zero for vertices in no face).
    """
    if isinstance(vertices, np.ndarray):
        tri = vertices[faces]
        fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        n = np.zeros_like(vertices)
        for k in range(3):
            np.add.at(n, faces[:, k], fn)
        return n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-20)
    face_n = face_normals(vertices, faces)  # [F, 3], 2·area
    acc = jnp.zeros_like(vertices).at[faces.reshape(-1)].add(jnp.repeat(face_n, 3, axis=0))
    # The dot product unrolled: XLA:CPU is slow at reductions over 3 elements.
    length = jnp.sqrt(acc[:, 0] * acc[:, 0] + acc[:, 1] * acc[:, 1] + acc[:, 2] * acc[:, 2])
    return acc / jnp.maximum(length, 1e-20)[..., None]


def triangle_frames(vertices, faces):
    """The rigging frame of every triangle (module docstring, steps 1-4).

    Args:
      vertices: ``[..., V, 3]`` (posed) vertices.  faces: ``[F, 3]`` int.

    Returns:
      ``(R [..., F, 3, 3], T [..., F, 3], k [..., F])``: rotation with columns
      ``(edge, normal, in-plane)``, centroid, and scale.
    """
    corners = vertices[..., faces, :]  # [..., F, 3, 3]
    v0, v1, v2 = corners[..., 0, :], corners[..., 1, :], corners[..., 2, :]
    a0 = _normalize(v1 - v0)
    a1 = _normalize(jnp.cross(a0, v2 - v0))
    a2 = -_normalize(jnp.cross(a1, a0))
    rotation = jnp.stack([a0, a1, a2], axis=-1)  # columns
    centroid = corners.mean(axis=-2)
    edge = jnp.linalg.norm(v1 - v0, axis=-1)
    height = jnp.abs(jnp.sum(a2 * (v2 - v0), axis=-1))
    return rotation, centroid, 0.5 * (edge + height)


def frames_to_world(rotation, centroid, scale, local_means):
    """``k R μ + T`` for local means ``[..., F, 3]`` in their triangles' frames."""
    rotated = jnp.einsum(
        "...ij,...j->...i", rotation, local_means, precision=jax.lax.Precision.HIGHEST
    )
    return scale[..., None] * rotated + centroid
