"""The FLAME model as a pytree of arrays, built and validated from a dict of arrays.

A dict in the *converted* layout is what both a real FLAME ``.pkl`` (after the safe
unpickler) and the project's ``.npz`` files hold:

==================  =====================  ==============================================
key                 shape                  meaning
==================  =====================  ==============================================
v_template          [V, 3]                 rest vertices, metres, +y up, +z out of the face
f                   [F, 3]                 triangles (vertex indices)
shapedirs           [V, 3, S + E]          identity shape then expression blendshapes
posedirs            [V, 3, 9 (J - 1)]      pose correctives on (R_j - I) of joints 1..J-1
J_regressor         [J, V]                 joints from vertices (dense or sparse on disk)
weights             [V, J]                 linear blend skinning weights
kintree_table       [2, J]                 row 0: parents (root: -1 or 2**32 - 1)
n_shape, n_exp      scalars (npz only)     split of shapedirs; FLAME .pkl: 300 / 100
vt, ft              [Nvt, 2], [F, 3]       optional UVs per face corner
lmk_faces_idx       [L]                    optional landmark embedding: face per landmark
lmk_bary_coords     [L, 3]                 and barycentric weights
mask_<region>       [k]                    optional vertex-index sets (lips, face, ...)
==================  =====================  ==============================================
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax
import numpy as np

from ggtalker_jax.errors import InputError

REQUIRED_KEYS = (
    "v_template",
    "f",
    "shapedirs",
    "posedirs",
    "J_regressor",
    "weights",
    "kintree_table",
)

# The last clause of a shape or value error in a model file: what the user should check.
_FIX = "is this a FLAME model file?"

# Where each optional part comes from, for the error that names a missing one.
_OPTIONAL_SOURCES = {
    "uv": "--uv head_template.obj (FLAME's texture-space mesh)",
    "landmarks": "--landmarks landmark_embedding.npy (or flame_static_embedding.pkl)",
    "masks": "--masks FLAME_masks.pkl",
}


@dataclasses.dataclass(frozen=True)
class FlameModel:
    """A FLAME-format head model (a real FLAME, or any model file in its layout).

    Arrays are JAX-ready float32/int32; ``parents`` and ``source`` are static metadata, so
    the model can be closed over or passed through ``jit`` as a pytree.

    Attributes:
      v_template: ``[V, 3]``.  faces: ``[F, 3]`` int32.
      shapedirs: ``[V, 3, S]``.  exprdirs: ``[V, 3, E]``.
      posedirs: ``[V, 3, P]`` with ``P = 9 (J - 1)``.
      j_regressor: ``[J, V]``.  weights: ``[V, J]``.
      lmk_faces_idx: ``[L]`` int32.  lmk_bary_coords: ``[L, 3]`` (``L = 0`` if absent).
      vt: ``[Nvt, 2]``.  ft: ``[F, 3]`` int32 (``Nvt = 0`` if absent).
      masks: region name -> ``[k]`` int32 vertex indices (empty dict if absent).
      parents: parent joint index per joint, ``-1`` for the root.
      source: the file it came from (for error messages).
    """

    v_template: jax.Array
    faces: jax.Array
    shapedirs: jax.Array
    exprdirs: jax.Array
    posedirs: jax.Array
    j_regressor: jax.Array
    weights: jax.Array
    lmk_faces_idx: jax.Array
    lmk_bary_coords: jax.Array
    vt: jax.Array
    ft: jax.Array
    masks: dict
    parents: tuple[int, ...]
    source: str = "<arrays>"

    @property
    def n_shape(self) -> int:
        return int(self.shapedirs.shape[-1])

    @property
    def n_exp(self) -> int:
        return int(self.exprdirs.shape[-1])

    @property
    def n_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def n_joints(self) -> int:
        return len(self.parents)

    def require(self, part: str) -> None:
        """Raise a one-line :class:`InputError` if an optional part (uv, landmarks, masks)
        is missing, naming where it comes from."""
        present = {
            "uv": self.vt.shape[0] > 0,
            "landmarks": self.lmk_faces_idx.shape[0] > 0,
            "masks": bool(self.masks),
        }
        if part not in present:
            raise InputError(f"unknown FLAME part {part!r}; one of {sorted(present)}")
        if not present[part]:
            raise InputError(
                f"{self.source}: this FLAME model has no {part}; add them with "
                f"`ggtalker flame convert MODEL OUT.npz {_OPTIONAL_SOURCES[part]}`"
            )

    @classmethod
    def from_arrays(
        cls,
        arrays: Mapping,
        source: str = "<arrays>",
        n_shape: int | None = None,
        n_exp: int | None = None,
    ) -> FlameModel:
        """Validate a dict in the converted layout (module docstring) and build the model.

        Args:
          arrays: the dict; sparse ``J_regressor`` must already be dense.
          source: file name used in error messages.
          n_shape, n_exp: keep only the first components (like DECA's 100/50); by default
            the file's ``n_shape``/``n_exp`` keys, else FLAME's 300/100 split of 400 columns.

        Raises:
          InputError: naming the key, what it holds and what a FLAME model holds there, when
            the dict is not FLAME-shaped (wrong type, shape or dtype, NaN, index out of range).
        """
        if not isinstance(arrays, Mapping):
            raise InputError(f"{source}: holds a {type(arrays).__name__}, not a dict of arrays")
        missing = [k for k in REQUIRED_KEYS if k not in arrays]
        if missing:
            raise InputError(
                f"{source}: not a FLAME model (missing keys {missing}); expected a FLAME "
                ".pkl/.npz with " + ", ".join(REQUIRED_KEYS)
            )
        v_template = _float(arrays, "v_template", source)
        _expect(
            v_template.ndim == 2 and v_template.shape[1] == 3 and v_template.shape[0] > 0,
            source,
            "v_template",
            v_template.shape,
            "[V, 3] with V > 0",
        )
        n_v = v_template.shape[0]
        faces = index_array(arrays["f"], n_v, source, "f", width=3)
        _expect(faces.shape[0] > 0, source, "f", faces.shape, "[F, 3] with F > 0")
        parents = _parents(arrays, source)
        n_j = len(parents)
        shapedirs_all = _float(arrays, "shapedirs", source)
        _expect(
            shapedirs_all.ndim == 3 and shapedirs_all.shape[:2] == (n_v, 3),
            source,
            "shapedirs",
            shapedirs_all.shape,
            f"[{n_v}, 3, S + E]",
        )
        file_s, file_e = _split(arrays, shapedirs_all.shape[2], source)
        n_shape = file_s if n_shape is None else n_shape
        n_exp = file_e if n_exp is None else n_exp
        if not (0 <= n_shape <= file_s and 0 <= n_exp <= file_e):
            raise InputError(
                f"{source}: asked for n_shape={n_shape}, n_exp={n_exp} but the "
                f"file has {file_s} shape and {file_e} expression components"
            )
        lmk_faces_idx, lmk_bary_coords = _landmarks(arrays, faces.shape[0], source)
        vt, ft = _uv(arrays, faces.shape, source)
        masks = {
            k[len("mask_") :]: index_array(v, n_v, source, k)
            for k, v in arrays.items()
            if isinstance(k, str) and k.startswith("mask_")
        }
        return cls(
            v_template=v_template,
            faces=faces,
            shapedirs=shapedirs_all[..., :n_shape],
            exprdirs=shapedirs_all[..., file_s : file_s + n_exp],
            posedirs=_float(arrays, "posedirs", source, (n_v, 3, 9 * (n_j - 1))),
            j_regressor=_float(arrays, "J_regressor", source, (n_j, n_v)),
            weights=_float(arrays, "weights", source, (n_v, n_j)),
            lmk_faces_idx=lmk_faces_idx,
            lmk_bary_coords=lmk_bary_coords,
            vt=vt,
            ft=ft,
            masks=masks,
            parents=parents,
            source=source,
        )

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The converted layout (inverse of :meth:`from_arrays`), ready for ``np.savez``."""
        out = {
            "v_template": np.asarray(self.v_template),
            "f": np.asarray(self.faces),
            "shapedirs": np.concatenate(
                [np.asarray(self.shapedirs), np.asarray(self.exprdirs)], axis=-1
            ),
            "posedirs": np.asarray(self.posedirs),
            "J_regressor": np.asarray(self.j_regressor),
            "weights": np.asarray(self.weights),
            "kintree_table": np.stack(
                [np.array(self.parents, np.int64), np.arange(self.n_joints, dtype=np.int64)]
            ),
            "n_shape": np.int32(self.n_shape),
            "n_exp": np.int32(self.n_exp),
        }
        if self.lmk_faces_idx.shape[0]:
            out["lmk_faces_idx"] = np.asarray(self.lmk_faces_idx)
            out["lmk_bary_coords"] = np.asarray(self.lmk_bary_coords)
        if self.vt.shape[0]:
            out["vt"] = np.asarray(self.vt)
            out["ft"] = np.asarray(self.ft)
        out.update({f"mask_{k}": np.asarray(v) for k, v in self.masks.items()})
        return out


_ARRAY_FIELDS = [
    "v_template",
    "faces",
    "shapedirs",
    "exprdirs",
    "posedirs",
    "j_regressor",
    "weights",
    "lmk_faces_idx",
    "lmk_bary_coords",
    "vt",
    "ft",
    "masks",
]
jax.tree_util.register_dataclass(
    FlameModel, data_fields=_ARRAY_FIELDS, meta_fields=["parents", "source"]
)


def _split(a: Mapping, total: int, source: str) -> tuple[int, int]:
    """Number of shape and expression columns in ``shapedirs``."""
    if "n_shape" in a and "n_exp" in a:
        s, e = _count(a, "n_shape", source), _count(a, "n_exp", source)
        if s + e != total:
            raise InputError(f"{source}: n_shape={s} + n_exp={e} != shapedirs columns {total}")
        return s, e
    if total == 400:  # FLAME 2017/2020/2023 .pkl: 300 identity + 100 expression.
        return 300, 100
    raise InputError(
        f"{source}: shapedirs has {total} columns and no n_shape/n_exp keys; "
        "convert it with `ggtalker flame convert` after checking its split"
    )


def _count(a: Mapping, key: str, source: str) -> int:
    value = numeric_array(a[key], source, key).reshape(-1)
    if value.shape != (1,) or value.dtype.kind not in "iu" or value[0] < 0:
        raise InputError(
            f"{source}: '{key}' is {value[:4].tolist()} ({value.dtype}, {value.size} values), "
            "expected one whole number >= 0; is this a FLAME model file?"
        )
    return int(value[0])


def _parents(a: Mapping, source: str) -> tuple[int, ...]:
    """Parent joint of each joint, ``-1`` for the root, from row 0 of ``kintree_table``.

    FLAME writes the root's parent as uint32 ``-1`` (``2**32 - 1``), so any value outside
    ``[0, J)`` marks the root; every other joint's parent must come before it, which is the
    order LBS composes the joint transforms in.
    """
    kintree = numeric_array(a["kintree_table"], source, "kintree_table")
    _expect(
        kintree.ndim == 2
        and kintree.shape[0] == 2
        and kintree.shape[1] > 0
        and kintree.dtype.kind in "iu",
        source,
        "kintree_table",
        kintree.shape,
        "[2, J] integers with J > 0",
    )
    row = kintree[0].astype(np.int64)  # uint64 -1 wraps to -1, uint32 -1 stays 2**32 - 1
    n_j = row.shape[0]
    if 0 <= row[0] < n_j:
        raise InputError(
            f"{source}: kintree_table gives the root joint 0 the parent {row[0]}; FLAME "
            "marks the root with -1 (or 2**32 - 1)"
        )
    bad = np.nonzero((row[1:] < 0) | (row[1:] >= np.arange(1, n_j)))[0]
    if bad.size:
        joint = int(bad[0]) + 1
        raise InputError(
            f"{source}: kintree_table gives joint {joint} the parent {row[joint]}; each "
            "joint's parent must be a joint before it (only joint 0 is a root)"
        )
    return (-1, *(int(p) for p in row[1:]))


def _landmarks(a: Mapping, n_faces: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    """The optional landmark embedding: faces ``[L]`` and barycentrics ``[L, 3]``."""
    if "lmk_faces_idx" not in a:
        return np.zeros((0,), np.int32), np.zeros((0, 3), np.float32)
    if "lmk_bary_coords" not in a:
        raise InputError(
            f"{source}: has 'lmk_faces_idx' but no 'lmk_bary_coords'; convert the model "
            "again with --landmarks"
        )
    faces = index_array(a["lmk_faces_idx"], n_faces, source, "lmk_faces_idx")
    bary = _float(a, "lmk_bary_coords", source, (faces.shape[0], 3))
    return faces, bary


def _uv(a: Mapping, faces_shape: tuple, source: str) -> tuple[np.ndarray, np.ndarray]:
    """The optional UVs: ``vt [Nvt, 2]`` and one UV triangle per face, ``ft [F, 3]``."""
    if "vt" not in a:
        return np.zeros((0, 2), np.float32), np.zeros((0, 3), np.int32)
    vt = _float(a, "vt", source)
    _expect(vt.ndim == 2 and vt.shape[1] == 2, source, "vt", vt.shape, "[Nvt, 2]")
    if vt.shape[0] == 0:
        return vt, np.zeros((0, 3), np.int32)
    if "ft" not in a:
        raise InputError(f"{source}: has 'vt' but no 'ft'; convert the model again with --uv")
    ft = index_array(a["ft"], vt.shape[0], source, "ft", width=3)
    _expect(ft.shape == faces_shape, source, "ft", ft.shape, f"{list(faces_shape)}, one per face")
    return vt, ft


def numeric_array(value, source: str, key: str, fix: str = _FIX) -> np.ndarray:
    """``value`` as a numpy array of booleans, integers or floats, else an InputError."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError, OverflowError):  # ragged nesting, huge Python ints
        array = np.empty(0, object)  # reported below as the type it came as
    if array.dtype.kind not in "biuf":
        if array.dtype.hasobject and not isinstance(value, np.ndarray):
            what = f"is of type {type(value).__name__}"  # None, a dict, a ragged list...
        else:
            what = f"holds {array.dtype} values"
        raise InputError(f"{source}: '{key}' {what}, expected an array of numbers; {fix}")
    return array


def index_array(
    value, bound: int, source: str, key: str, width: int | None = None, fix: str = _FIX
) -> np.ndarray:
    """``value`` as int32 indices in ``[0, bound)``, else a one-line InputError naming ``key``.

    Args:
      value: integers (floats that hold whole numbers pass too); ``[N, width]``, or any shape,
        flattened to ``[N]``, when ``width`` is None.
      bound: how many things the indices point into (vertices, faces, UVs).
      source, key: the file and the array, for the error.
      width: row length of a 2-D index array (3 for triangles).
      fix: the error's last clause, telling the user what to do.

    Returns:
      int32 ``[N, width]`` or ``[N]``.
    """
    array = numeric_array(value, source, key, fix)
    if width is None:
        array = array.reshape(-1)
    else:
        ok = array.ndim == 2 and array.shape[1] == width
        _expect(ok, source, key, array.shape, f"[N, {width}]", fix)
    if array.dtype.kind == "b":
        raise InputError(f"{source}: '{key}' holds booleans, expected integer indices; {fix}")
    if array.dtype.kind == "f":
        whole = np.isfinite(array) & (array == np.round(array))
        if not whole.all():
            raise InputError(
                f"{source}: '{key}' holds {array[~whole][0]}, expected integer indices; {fix}"
            )
    outside = (array < 0) | (array >= bound)
    if outside.any():
        raise InputError(
            f"{source}: '{key}' holds index {int(array[outside][0])}, outside [0, {bound}); {fix}"
        )
    return array.astype(np.int32)


def _float(a: Mapping, key: str, source: str, shape: tuple | None = None) -> np.ndarray:
    """``a[key]`` as finite float32, of ``shape`` when given."""
    value = numeric_array(a[key], source, key).astype(np.float32)
    if shape is not None:
        _expect(value.shape == shape, source, key, value.shape, f"[{', '.join(map(str, shape))}]")
    if not np.all(np.isfinite(value)):
        raise InputError(f"{source}: '{key}' holds NaN/Inf values; the file is corrupt")
    return value


def _expect(ok: bool, source: str, key: str, shape, want: str, fix: str = _FIX) -> None:
    if not ok:
        raise InputError(f"{source}: '{key}' has shape {tuple(shape)}, expected {want}; {fix}")
