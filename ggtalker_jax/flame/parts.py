"""The parts a real FLAME ``.pkl`` lacks, each read from its own file: UVs from
``head_template.obj``, the landmark embedding, the region masks. Each is checked on its own
and against the model it joins (:func:`~ggtalker_jax.flame.loader.convert_flame`)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ggtalker_jax.errors import InputError
from ggtalker_jax.flame.model import FlameModel, index_array, numeric_array
from ggtalker_jax.flame.safe_npz import read_npz_safely, read_pickle_safely_npy
from ggtalker_jax.flame.safe_pickle import brief, read_pickle_safely

INT32_LIMIT = 2**31 - 1  # index bound for a part read without its model


def read_obj_uv(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """UVs from a Wavefront ``.obj`` (FLAME's ``head_template.obj``).

    Reads ``vt u v [w]`` lines and the texture index of each ``f`` corner (``v/vt[/vn]``),
    fanning polygons into triangles. An index counts the ``vt`` lines before the face from
    1, or, when negative, back from the latest one (``-1``), as the OBJ format defines.

    Returns:
      ``vt [Nvt, 2]`` float32 and ``ft [F, 3]`` int32, 0-based.

    Raises:
      InputError: naming the file, the line number and the line for a malformed line.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    vt, ft = [], []
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise InputError(f"{path}:{number}: not UTF-8 text: {raw[:80]!r}") from None
            parts = line.split()
            if parts and parts[0] == "vt":
                vt.append(_obj_uv(parts, f"{path}:{number}", line))
            elif parts and parts[0] == "f":
                idx = _obj_face(parts, len(vt), f"{path}:{number}", line)
                ft.extend([idx[0], idx[i], idx[i + 1]] for i in range(1, len(idx) - 1))
    if not vt or not ft:
        raise InputError(f"{path}: no 'vt' lines or no textured faces; not a UV template")
    return np.asarray(vt, np.float32), np.asarray(ft, np.int32)


def _obj_uv(parts: list[str], where: str, line: str) -> list[float]:
    try:
        uv = [float(p) for p in parts[1:3]]
    except ValueError:
        uv = []
    if len(uv) != 2 or not all(math.isfinite(c) for c in uv):
        raise InputError(f"{where}: expected 'vt U V' with two finite numbers: {line[:80]!r}")
    return uv


def _obj_face(parts: list[str], n_vt: int, where: str, line: str) -> list[int]:
    """0-based texture indices of a face's corners (``n_vt``: ``vt`` lines so far)."""
    corners = [p.split("/") for p in parts[1:]]
    if len(corners) < 3:
        raise InputError(f"{where}: a face needs 3 or more corners: {line[:80]!r}")
    if any(len(c) < 2 or not c[1] for c in corners):
        raise InputError(f"{where}: face without texture indices: {line[:80]!r}")
    try:
        given = [int(c[1]) for c in corners]
    except ValueError:
        raise InputError(f"{where}: a texture index is not an integer: {line[:80]!r}") from None
    for k in given:
        if not (1 <= k <= n_vt or -n_vt <= k <= -1):
            raise InputError(
                f"{where}: texture index {k} is not among the {n_vt} 'vt' lines before it "
                f"(1..{n_vt}, or -1 for the latest): {line[:80]!r}"
            )
    return [k - 1 if k > 0 else n_vt + k for k in given]


_LANDMARK_KEYS = (
    ("full_lmk_faces_idx", "full_lmk_bary_coords"),
    ("lmk_faces_idx", "lmk_bary_coords"),
    ("lmk_face_idx", "lmk_b_coords"),
)


def read_landmark_embedding(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Landmark faces ``[L]`` and barycentrics ``[L, 3]`` from FLAME's static embedding
    (``.pkl``: ``lmk_face_idx``/``lmk_b_coords``) or a 68-point ``.npy``/``.npz`` dict
    (``full_lmk_faces_idx``/``full_lmk_bary_coords``, or ``lmk_faces_idx``/``lmk_bary_coords``).

    Raises:
      InputError: naming the file for a damaged file, missing keys, indices that are not
        whole numbers >= 0, or barycentrics that are not three per landmark.
    """
    path = Path(path)
    obj = _read_landmark_file(path)
    for faces_key, bary_key in _LANDMARK_KEYS:
        if isinstance(obj, dict) and faces_key in obj and bary_key in obj:
            fix = "is this a FLAME landmark embedding?"
            faces = index_array(obj[faces_key], INT32_LIMIT, str(path), faces_key, fix=fix)
            bary = numeric_array(obj[bary_key], str(path), bary_key, fix).astype(np.float32)
            if bary.size != 3 * faces.size or bary.shape[-1:] != (3,):
                raise InputError(
                    f"{path}: '{bary_key}' has shape {bary.shape}, expected [{faces.size}, 3] "
                    f"barycentrics for the {faces.size} faces of '{faces_key}'; {fix}"
                )
            if not np.all(np.isfinite(bary)):
                raise InputError(f"{path}: '{bary_key}' holds NaN/Inf values; {fix}")
            return faces, bary.reshape(-1, 3)
    found = sorted(obj) if isinstance(obj, dict) else f"a {type(obj).__name__}"
    raise InputError(
        f"{path}: no landmark faces/barycentrics: expected one of the key pairs "
        f"{[list(p) for p in _LANDMARK_KEYS]}, found {brief(found, 100)}"
    )


def _read_landmark_file(path: Path) -> object:
    if path.suffix == ".pkl":
        return read_pickle_safely(path)
    if path.suffix == ".npz":
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        return read_npz_safely(path)
    if path.suffix == ".npy":
        return read_pickle_safely_npy(path)
    raise InputError(f"{path}: unknown landmark file type '{path.suffix}'; use .pkl/.npy/.npz")


def read_masks(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Region masks (``FLAME_masks.pkl``: region -> vertex indices) as ``mask_<region>``.

    Raises:
      InputError: naming the file and the region for a damaged file or indices that are not
        whole numbers >= 0.
    """
    obj = read_pickle_safely(path)
    if not isinstance(obj, dict) or not obj:
        raise InputError(f"{path}: expected a dict of region -> vertex indices")
    fix = "is this FLAME_masks.pkl?"
    return {
        f"mask_{k}": index_array(v, INT32_LIMIT, str(path), f"mask_{k}", fix=fix)
        for k, v in obj.items()
    }


def uv_for(model: FlameModel, path: Path) -> dict[str, np.ndarray]:
    vt, ft = read_obj_uv(path)
    if ft.shape[0] != model.faces.shape[0]:
        raise InputError(
            f"{path}: {ft.shape[0]} UV triangles but the model has {model.faces.shape[0]} "
            "faces; use the head_template.obj of this FLAME version"
        )
    return {"vt": vt, "ft": ft}


def landmarks_for(model: FlameModel, path: Path) -> dict[str, np.ndarray]:
    faces, bary = read_landmark_embedding(path)
    fix = "use the landmark embedding made for this FLAME version"
    faces = index_array(faces, model.faces.shape[0], str(path), "landmark faces", fix=fix)
    return {"lmk_faces_idx": faces, "lmk_bary_coords": bary}


def masks_for(model: FlameModel, path: Path) -> dict[str, np.ndarray]:
    fix = "use the FLAME_masks.pkl made for this FLAME version"
    return {
        k: index_array(v, model.n_vertices, str(path), k, fix=fix)
        for k, v in read_masks(path).items()
    }
