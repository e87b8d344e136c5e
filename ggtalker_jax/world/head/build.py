"""A procedural human head in the converted FLAME file format.

No FLAME file can be downloaded here, so the synthetic world uses this head: same keys and
array layout as a converted FLAME (see :mod:`ggtalker_jax.flame.model`), metres, +y up, +z out
of the face, +x the subject's left, root joint near the origin and the neck below it.

Geometry. The skin is one latitude/longitude grid (a crown pole, 80 columns, 69 rows) cast onto
a smooth sculpt of ellipsoids (:mod:`~ggtalker_jax.world.head.surface`). Three
rectangular patches of that grid are folded inward without changing their connectivity
(:mod:`~ggtalker_jax.world.head.patches`): the mouth patch becomes skin → lips → a nearly
closed inner lip line (0.3 mm) → a cavity about 3.5 cm deep; each eye patch becomes lids → lid
margin → a socket lining around a separate closed eyeball sphere (radius 12 mm). So the mesh is
watertight except for the open neck cut (its last grid row).

Rig (:mod:`~ggtalker_jax.world.head.rig`). Joints: 0 root (0, −0.012, −0.02), 1 neck
(0, 0.002, −0.022), 2 jaw (0, 0.008, 0.002) between the mandible's condyles, 3/4 eyeball
centres (±0.032, 0.034, ≈0.067). The upper lip and cavity roof follow the head, the lower lip,
cavity floor, chin and jaw line follow the jaw, so ``jaw_pose`` about +x opens the mouth.

Expression components (``EXPRESSION_NAMES``; a few millimetres at coefficient 1, all on the
lips): 0 lips_part, 1 lips_round, 2 lips_spread, 3 lips_press, 4 smile, 5 frown,
6 upper_lip_raise, 7 lower_lip_depress, 8 lips_funnel, 9 smile_left; more than ten adds random
smooth mixes that still move the lips. Shape components (``shape_names(n_shape)``): fourteen
designed identity axes (head size, jaw, chin, nose, lips, eyes, cheeks, forehead, brows), then
random smooth fields drawn from ``seed``.

Landmarks: iBUG 68 (62/66 inner lip middles, 48/54 mouth corners), see
:func:`~ggtalker_jax.world.head.annotations.landmark_embedding`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ggtalker_jax.errors import InputError
from ggtalker_jax.outputs import atomic_file, output_file
from ggtalker_jax.types import EXPRESSION_NAMES
from ggtalker_jax.world.head.annotations import landmark_embedding, region_masks, uv_layout
from ggtalker_jax.world.head.blendshapes import (
    DESIGNED_SHAPE_NAMES,
    expression_fields,
    mouth_frame,
    random_lip_field,
    random_smooth_field,
    shape_fields,
)
from ggtalker_jax.world.head.mesh import build_head_mesh
from ggtalker_jax.world.head.rig import (
    PARENTS,
    joint_regressor,
    pose_correctives,
    skinning_weights,
)

__all__ = [
    "EXPRESSION_NAMES",
    "expression_names",
    "make_procedural_head",
    "save_procedural_head",
    "shape_names",
]


def shape_names(n_shape: int) -> list[str]:
    """Names of the first ``n_shape`` shape components (``random_<k>`` past the designed)."""
    names = list(DESIGNED_SHAPE_NAMES)
    names += [f"random_{k}" for k in range(max(n_shape - len(names), 0))]
    return names[:n_shape]


def expression_names(n_exp: int) -> list[str]:
    """Names of the first ``n_exp`` expression components (``mix_<k>`` past the designed)."""
    names = list(EXPRESSION_NAMES)
    names += [f"mix_{k}" for k in range(max(n_exp - len(names), 0))]
    return names[:n_exp]


def make_procedural_head(
    seed: int = 0, n_shape: int = 20, n_exp: int = 10
) -> dict[str, np.ndarray]:
    """Build the procedural head.

    Args:
      seed: draws the random shape components (and the extra expressions past ten); the
        template, rig and designed components do not depend on it.
      n_shape: identity components (the first 14 are designed, the rest random).
      n_exp: expression components (the first 10 are designed, the rest random mixes).

    Returns:
      Arrays in the converted FLAME layout: ``v_template [V, 3]``, ``f [F, 3]`` int32,
      ``shapedirs [V, 3, n_shape + n_exp]``, ``posedirs [V, 3, 36]``, ``J_regressor [5, V]``,
      ``weights [V, 5]``, ``kintree_table [2, 5]`` int64, ``n_shape``/``n_exp`` (int32
      scalars), ``vt [Nvt, 2]``, ``ft [F, 3]`` int32, ``lmk_faces_idx [68]`` int32,
      ``lmk_bary_coords [68, 3]`` and ``mask_<region>`` int32 vertex indices. Floats are
      float32.
    """
    if n_shape < 0 or n_exp < 0:
        raise InputError(f"n_shape and n_exp must be >= 0, got {n_shape} and {n_exp}")
    rng = np.random.default_rng(seed)
    mesh = build_head_mesh()
    frame = mouth_frame(mesh)
    shapes = shape_fields(frame)[:n_shape]
    head_skin = (mesh.eyeball == 0) & (mesh.vertices[:, 1] > -0.11)
    anchors = mesh.vertices[head_skin]
    while len(shapes) < n_shape:
        shapes.append(random_smooth_field(rng, frame, anchors))
    exps = expression_fields(frame)
    base = list(exps)
    while len(exps) < n_exp:
        exps.append(random_lip_field(rng, base, frame))
    exps = exps[:n_exp]
    weights = skinning_weights(mesh)
    columns = shapes + exps
    shapedirs = np.stack(columns, axis=-1) if columns else np.zeros((len(mesh.vertices), 3, 0))
    vt, ft = uv_layout(mesh)
    lmk_faces, lmk_bary = landmark_embedding(mesh)
    out = {
        "v_template": mesh.vertices,
        "f": mesh.faces.astype(np.int32),
        "shapedirs": shapedirs,
        "posedirs": pose_correctives(mesh, weights),
        "J_regressor": joint_regressor(mesh),
        "weights": weights,
        "kintree_table": np.stack([PARENTS, np.arange(5, dtype=np.int64)]),
        "n_shape": np.int32(n_shape),
        "n_exp": np.int32(n_exp),
        "vt": vt,
        "ft": ft.astype(np.int32),
        "lmk_faces_idx": lmk_faces.astype(np.int32),
        "lmk_bary_coords": lmk_bary,
    }
    out.update(region_masks(mesh))
    return {
        k: (np.asarray(a, np.float32) if np.issubdtype(np.asarray(a).dtype, np.floating) else a)
        for k, a in out.items()
    }


def save_procedural_head(
    path: str | Path, force: bool = False, seed: int = 0, n_shape: int = 20, n_exp: int = 10
) -> Path:
    """Write :func:`make_procedural_head` to a compressed ``.npz``.

    Raises:
      InputError: ``path`` exists and ``force`` is false, is not an ``.npz`` name, or
        cannot be written (one line naming the path).
    """
    path = output_file(path, force, what="--out", suffixes=(".npz",))
    arrays = make_procedural_head(seed=seed, n_shape=n_shape, n_exp=n_exp)
    with atomic_file(path) as tmp, tmp.open("wb") as fh:
        np.savez_compressed(fh, **arrays)
    return path
