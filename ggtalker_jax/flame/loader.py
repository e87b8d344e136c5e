"""Read FLAME models: real ``.pkl`` files without chumpy, and the project's ``.npz``.

FLAME's ``generic_model.pkl`` is a Python 2 pickle holding chumpy arrays and a scipy sparse
``J_regressor``. Unpickling runs whatever callables the file names, so a model file from
the internet could run code. :class:`SafeFlameUnpickler` therefore resolves only an explicit
allow-list (numpy array reconstruction, ``copyreg``'s reconstructor, plain builtins) and maps
every chumpy and scipy-sparse class to inert stand-ins that only record their state; the
stand-ins become plain numpy arrays afterwards. Anything else is refused before it runs.
"""

from __future__ import annotations

import codecs
import copyreg
import importlib
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np

from ggtalker_jax.errors import InputError
from ggtalker_jax.flame.model import FlameModel


class _ChumpyStandIn:
    """Records the state of a chumpy object; its array is under ``x``."""

    def __setstate__(self, state):
        self.state = state


class _SparseStandIn:
    """Records the state of a scipy sparse matrix (csc/csr/coo)."""

    format = "csc"

    def __setstate__(self, state):
        self.state = state


class _CsrStandIn(_SparseStandIn):
    format = "csr"


class _CooStandIn(_SparseStandIn):
    format = "coo"


def _numpy_attr(module: str, name: str):
    # numpy 2 moved numpy.core to numpy._core; old pickles name the former.
    return getattr(importlib.import_module(module.replace("numpy.core", "numpy._core")), name)


_ALLOWED = {
    ("copy_reg", "_reconstructor"): copyreg._reconstructor,
    ("copyreg", "_reconstructor"): copyreg._reconstructor,
    ("__builtin__", "object"): object,
    ("builtins", "object"): object,
    ("__builtin__", "set"): set,
    ("builtins", "set"): set,
    ("collections", "OrderedDict"): dict,
    # Python 3 writes bytes in protocol-2 pickles as _codecs.encode(text, "latin1").
    ("_codecs", "encode"): codecs.encode,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
_NUMPY_FUNCS = {"_reconstruct", "scalar", "_frombuffer"}


class SafeFlameUnpickler(pickle.Unpickler):
    """An unpickler that builds only arrays, dicts and inert stand-ins (module docstring)."""

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module.split(".")[0] == "numpy" and name in _NUMPY_FUNCS:
            return _numpy_attr(module, name)
        if module.split(".")[0] == "chumpy":
            return _ChumpyStandIn
        if module.startswith("scipy.sparse"):
            stand_in = {"csc": _SparseStandIn, "csr": _CsrStandIn, "coo": _CooStandIn}
            kind = name.split("_")[0]
            if kind in stand_in:
                return stand_in[kind]
        return _refuse(module, name)


class RefusedPickle(pickle.UnpicklingError):
    """The pickle names a callable outside the allow-list; nothing of it was run."""


def _refuse(module: str, name: str):
    raise RefusedPickle(
        f"refused to load {module}.{name}: a FLAME file holds only arrays, and this pickle "
        "asks to run other code"
    )


def _to_plain(obj, key: str, source: str):
    """Turn stand-ins into numpy arrays, recursively through dicts, lists and tuples."""
    if isinstance(obj, _ChumpyStandIn):
        state = obj.state if isinstance(obj.state, dict) else {}
        if "x" not in state:
            raise InputError(
                f"{source}: '{key}' is a chumpy expression without data; "
                "only plain chumpy arrays can be read"
            )
        return np.asarray(_to_plain(state["x"], key, source))
    if isinstance(obj, _SparseStandIn):
        return _sparse_to_dense(obj, key, source)
    if isinstance(obj, dict):
        return {k: _to_plain(v, k, source) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_to_plain(v, key, source) for v in obj)
    return obj


def _sparse_to_dense(obj: _SparseStandIn, key: str, source: str) -> np.ndarray:
    s = obj.state if isinstance(obj.state, dict) else {}
    shape = s.get("_shape", s.get("shape"))
    try:
        dense = np.zeros(tuple(int(d) for d in shape), np.float64)
        data = np.asarray(s["data"], np.float64)
        if obj.format == "coo":
            np.add.at(dense, (np.asarray(s["row"]), np.asarray(s["col"])), data)
            return dense
        indices, indptr = np.asarray(s["indices"]), np.asarray(s["indptr"])
        for major in range(len(indptr) - 1):
            sl = slice(indptr[major], indptr[major + 1])
            if obj.format == "csc":
                dense[indices[sl], major] += data[sl]
            else:
                dense[major, indices[sl]] += data[sl]
        return dense
    except (KeyError, TypeError, IndexError, ValueError) as e:
        raise InputError(f"{source}: sparse '{key}' is corrupt ({e})") from None


def read_pickle_safely(path: str | os.PathLike) -> object:
    """Unpickle a FLAME-family file (model, masks, landmark embedding) without running code.

    Returns plain Python/numpy objects. Raises :class:`InputError` naming the file for a
    missing file, a corrupt pickle, or a pickle that names anything outside the allow-list.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        with open(path, "rb") as fh:
            obj = SafeFlameUnpickler(fh, encoding="latin1").load()
    except RefusedPickle as e:
        raise InputError(f"{path}: {e}") from None
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
    ) as e:
        raise InputError(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from None
    return _to_plain(obj, "<root>", str(path))


def read_model_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The raw dict of a FLAME ``.pkl`` or ``.npz`` (no validation, sparse made dense)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file; pass a FLAME .pkl or a converted .npz")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
            raise InputError(f"{path}: not a readable .npz ({e})") from None
    if path.suffix == ".pkl":
        obj = read_pickle_safely(path)
        if not isinstance(obj, dict):
            raise InputError(f"{path}: holds a {type(obj).__name__}, not a FLAME dict of " "arrays")
        return obj
    raise InputError(f"{path}: unknown FLAME file type '{path.suffix}'; expected .pkl or .npz")


def load_flame(
    path: str | os.PathLike | None = None, n_shape: int | None = None, n_exp: int | None = None
) -> FlameModel:
    """Load a FLAME model.

    Args:
      path: a real FLAME 2017/2020/2023 ``.pkl``, or an ``.npz`` in the converted layout
        (see :mod:`ggtalker_jax.flame.model`). ``None`` loads the procedural head that ships
        with the package.
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
    """Path of the procedural FLAME-format head shipped in the package."""
    return Path(__file__).parent / "assets" / "procedural_head.npz"


def read_obj_uv(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """UVs from a Wavefront ``.obj`` (FLAME's ``head_template.obj``): ``vt [Nvt, 2]``,
    ``ft [F, 3]`` (0-based; polygons are fanned into triangles)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    vt, ft = [], []
    for line in open(path, encoding="utf-8", errors="replace"):
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "vt":
            vt.append([float(parts[1]), float(parts[2])])
        elif parts[0] == "f":
            corners = [p.split("/") for p in parts[1:]]
            if any(len(c) < 2 or not c[1] for c in corners):
                raise InputError(f"{path}: face without texture indices: {line.strip()}")
            idx = [int(c[1]) - 1 for c in corners]
            ft.extend([idx[0], idx[i], idx[i + 1]] for i in range(1, len(idx) - 1))
    if not vt or not ft:
        raise InputError(f"{path}: no 'vt' lines or no textured faces; not a UV template")
    return np.asarray(vt, np.float32), np.asarray(ft, np.int32)


def read_landmark_embedding(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Landmark faces ``[L]`` and barycentrics ``[L, 3]`` from FLAME's static embedding
    (``.pkl``: ``lmk_face_idx``/``lmk_b_coords``) or a 68-point ``.npy``/``.npz`` dict
    (``full_lmk_faces_idx``/``full_lmk_bary_coords``, or ``lmk_faces_idx``/``lmk_bary_coords``)."""
    path = Path(path)
    if path.suffix == ".pkl":
        obj = read_pickle_safely(path)
    elif path.suffix in (".npy", ".npz"):
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        try:
            # A landmark .npy is a pickled dict; np.load would unpickle it unsafely.
            obj = read_pickle_safely_npy(path) if path.suffix == ".npy" else dict(np.load(path))
        except (ValueError, OSError, zipfile.BadZipFile) as e:
            raise InputError(f"{path}: not readable ({e})") from None
    else:
        raise InputError(f"{path}: unknown landmark file type '{path.suffix}'")
    pairs = [
        ("full_lmk_faces_idx", "full_lmk_bary_coords"),
        ("lmk_faces_idx", "lmk_bary_coords"),
        ("lmk_face_idx", "lmk_b_coords"),
    ]
    for fk, bk in pairs:
        if isinstance(obj, dict) and fk in obj and bk in obj:
            faces = np.asarray(obj[fk]).reshape(-1).astype(np.int32)
            bary = np.asarray(obj[bk], np.float32).reshape(-1, 3)
            return faces, bary
    raise InputError(f"{path}: no landmark faces/barycentrics found (keys {pairs})")


def read_pickle_safely_npy(path: Path) -> object:
    """A ``.npy`` holding a pickled object, read through :class:`SafeFlameUnpickler`."""
    with open(path, "rb") as fh:
        fmt = np.lib.format
        version = fmt.read_magic(fh)
        read_header = (
            fmt.read_array_header_1_0 if version == (1, 0) else (fmt.read_array_header_2_0)
        )
        _, _, dtype = read_header(fh)
        if dtype.hasobject:
            try:
                return _to_plain(
                    SafeFlameUnpickler(fh, encoding="latin1").load(), "<root>", str(path)
                )
            except RefusedPickle as e:
                raise InputError(f"{path}: {e}") from None
            except (pickle.UnpicklingError, EOFError, ValueError) as e:
                raise InputError(f"{path}: not a readable pickle ({e})") from None
    return np.load(path, allow_pickle=False)


def read_masks(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Region masks (``FLAME_masks.pkl``: region -> vertex indices) as ``mask_<region>``."""
    obj = read_pickle_safely(path)
    if not isinstance(obj, dict) or not obj:
        raise InputError(f"{path}: expected a dict of region -> vertex indices")
    return {f"mask_{k}": np.asarray(v).reshape(-1).astype(np.int32) for k, v in obj.items()}


def convert_flame(
    model_path, out_path, uv=None, landmarks=None, masks=None, force: bool = False
) -> FlameModel:
    """Convert a FLAME ``.pkl`` (plus optional UV, landmark and mask files) to ``.npz``.

    The real ``.pkl`` has no UVs, landmarks or masks; each comes from its own file, and only a
    later step that needs a missing part fails, naming it (:meth:`FlameModel.require`).
    """
    out_path = Path(out_path)
    if out_path.exists() and not force:
        raise InputError(f"{out_path}: already exists; pass --force to overwrite it")
    arrays = dict(read_model_arrays(model_path))
    if uv is not None:
        arrays["vt"], arrays["ft"] = read_obj_uv(uv)
    if landmarks is not None:
        arrays["lmk_faces_idx"], arrays["lmk_bary_coords"] = read_landmark_embedding(landmarks)
    if masks is not None:
        arrays.update(read_masks(masks))
    model = FlameModel.from_arrays(arrays, source=str(model_path))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out_path, **model.to_arrays())
    return model
