"""Gaussians on a FLAME head's surface: the splatting benchmark's workload and a sane
initialisation for the head model.

Gaussians are sampled on the rest mesh with probability proportional to triangle area,
oriented by the triangle's rigging frame (:func:`ggtalker_jax.geometry.triangles.triangle_frames`:
flat along the surface, thin along the normal), sized to the local sample spacing, and seen by
a portrait camera.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ggtalker_jax.flame.model import FlameModel
from ggtalker_jax.geometry.camera import portrait_camera
from ggtalker_jax.geometry.rotations import matrix_to_quaternion
from ggtalker_jax.geometry.triangles import triangle_frames
from ggtalker_jax.types import Gaussians


def head_gaussians(
    model: FlameModel, n: int, rng: np.random.Generator, vertices: np.ndarray | None = None
) -> Gaussians:
    """``n`` Gaussians on the head surface.

    Args:
      model: FLAME-format model (faces, and rest vertices unless ``vertices`` is given).
      n: number of Gaussians.
      rng: randomness (positions, sizes, opacities, colours).
      vertices: ``[V, 3]`` posed vertices to sample on (default: the rest template).

    Returns:
      :class:`~ggtalker_jax.types.Gaussians` of float32 numpy arrays: ``means [n, 3]``,
      ``quats [n, 4]`` (wxyz), ``scales [n, 3]`` (linear), ``opacities [n]``, ``colors [n, 3]``.
    """
    verts = np.asarray(model.v_template if vertices is None else vertices, np.float64)
    faces = np.asarray(model.faces)
    skip = np.zeros(model.n_vertices, bool)
    if "mouth_interior" in model.masks:
        skip[np.asarray(model.masks["mouth_interior"])] = True
    faces = faces[~skip[faces].any(-1)]
    tri = verts[faces]
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    area = 0.5 * np.linalg.norm(np.cross(e1, e2), axis=-1)
    pick = rng.choice(len(faces), size=n, p=area / area.sum())
    u, v = rng.random(n), rng.random(n)
    flip = u + v > 1
    u, v = np.where(flip, 1 - u, u), np.where(flip, 1 - v, v)
    means = tri[pick, 0] + u[:, None] * e1[pick] + v[:, None] * e2[pick]
    # The rigging frame: columns (edge, normal, in-plane), so the thin axis is the second.
    rotation, _, _ = triangle_frames(jnp.asarray(verts, jnp.float32), faces[pick])
    spacing = np.sqrt(area.sum() / n)
    tangent = spacing * np.exp(rng.normal(0.0, 0.35, (n, 2))) * 0.9
    thin = 0.15 * tangent.min(-1, keepdims=True)
    scales = np.concatenate([tangent[:, :1], thin, tangent[:, 1:]], -1)
    return Gaussians(
        means=means.astype(np.float32),
        quats=np.asarray(matrix_to_quaternion(rotation), np.float32),
        scales=scales.astype(np.float32),
        opacities=rng.uniform(0.35, 1.0, n).astype(np.float32),
        colors=rng.uniform(0.0, 1.0, (n, 3)).astype(np.float32),
    )


def portrait_cameras(model: FlameModel, size: int, yaws) -> tuple[np.ndarray, np.ndarray]:
    """Cameras ``viewmat [C, 4, 4]``, ``K [C, 3, 3]`` circling the head at the given yaws
    (radians), each framing the whole head in a ``size x size`` image."""
    rest = np.asarray(model.v_template, np.float64)
    lo, hi = rest.min(0), rest.max(0)
    center = 0.5 * (lo + hi)
    field = 1.1 * float(np.max(hi - lo))
    cameras = [portrait_camera(center, size, yaw, distance=0.8, field=field) for yaw in yaws]
    return np.stack([v for v, _ in cameras]), np.stack([k for _, k in cameras])
