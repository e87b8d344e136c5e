"""Read FLAME models: real ``.pkl`` files without chumpy, and the project's ``.npz``.

FLAME's ``generic_model.pkl`` is a Python 2 pickle of chumpy arrays and a scipy sparse
``J_regressor``; unpickling it normally runs whatever the file names. It is read by
:mod:`ggtalker_jax.flame.safe_pickle` (an allow-list unpickler behind an opcode pre-scan and
size limits: that module says why each guard exists), ``.npz`` files by
:mod:`ggtalker_jax.flame.safe_npz`, and the parts the ``.pkl`` lacks (UVs, landmarks, masks)
by :mod:`ggtalker_jax.flame.parts`. chumpy need not be installed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ggtalker_jax.errors import InputError
from ggtalker_jax.flame.model import FlameModel
from ggtalker_jax.flame.parts import landmarks_for, masks_for, uv_for
from ggtalker_jax.flame.safe_npz import read_npz_safely
from ggtalker_jax.flame.safe_pickle import read_pickle_safely
from ggtalker_jax.outputs import atomic_file, output_file


def read_model_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The raw dict of a FLAME ``.pkl`` or ``.npz`` (no validation, sparse made dense)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file; pass a FLAME .pkl or a converted .npz")
    if path.suffix == ".npz":
        return read_npz_safely(path)
    if path.suffix == ".pkl":
        obj = read_pickle_safely(path)
        if not isinstance(obj, dict):
            raise InputError(f"{path}: holds a {type(obj).__name__}, not a FLAME dict of arrays")
        return obj
    raise InputError(f"{path}: unknown FLAME file type '{path.suffix}'; expected .pkl or .npz")


def load_flame(
    path: str | os.PathLike | None = None, n_shape: int | None = None, n_exp: int | None = None
) -> FlameModel:
    """Load a FLAME model.

    Args:
      path: a real FLAME 2017/2020/2023 ``.pkl``, or an ``.npz`` in the converted layout
        (see :mod:`ggtalker_jax.flame.model`). ``None`` loads the default head that ships
        with the package (:func:`default_head_path`).
      n_shape, n_exp: keep only the first shape/expression components.

    Returns:
      The validated :class:`FlameModel`.

    Raises:
      InputError: missing file, refused or corrupt pickle, or arrays that are not FLAME-shaped.
    """
    if path is None:
        path = default_head_path()
    return FlameModel.from_arrays(
        read_model_arrays(path), source=str(path), n_shape=n_shape, n_exp=n_exp
    )


def default_head_path() -> Path:
    """Path of the default FLAME-format head shipped in the package (built in world/head)."""
    return Path(__file__).parent / "assets" / "procedural_head.npz"


def convert_flame(
    model_path, out_path, uv=None, landmarks=None, masks=None, force: bool = False
) -> FlameModel:
    """Convert a FLAME ``.pkl`` (plus optional UV, landmark and mask files) to ``.npz``.

    The real ``.pkl`` has no UVs, landmarks or masks; each comes from its own file, and only a
    later step that needs a missing part fails, naming it (:meth:`FlameModel.require`). Each
    part is checked against the model first, so a part made for another mesh is reported
    with its own file name.
    """
    out_path = output_file(out_path, force, what="output", suffixes=(".npz",))
    base = FlameModel.from_arrays(read_model_arrays(model_path), source=str(model_path))
    arrays = base.to_arrays()
    if uv is not None:
        arrays.update(uv_for(base, Path(uv)))
    if landmarks is not None:
        arrays.update(landmarks_for(base, Path(landmarks)))
    if masks is not None:
        arrays.update(masks_for(base, Path(masks)))
    model = FlameModel.from_arrays(arrays, source=str(model_path))
    with atomic_file(out_path) as tmp:
        np.savez_compressed(tmp, **model.to_arrays())
    return model
