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

# Where each optional part comes from, for the error that names a missing one.
_OPTIONAL_SOURCES = {
    "uv": "--uv head_template.obj (FLAME's texture-space mesh)",
    "landmarks": "--landmarks landmark_embedding.npy (or flame_static_embedding.pkl)",
    "masks": "--masks FLAME_masks.pkl",
}


@dataclasses.dataclass(frozen=True)
class FlameModel:
    """A FLAME-format head model (real FLAME or the procedural head).

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
            raise ValueError(f"unknown FLAME part {part!r}; one of {sorted(present)}")
        if not present[part]:
            raise InputError(
                f"{self.source}: this FLAME model has no {part}; add them with "
                f"`ggtalker flame convert MODEL OUT.npz {_OPTIONAL_SOURCES[part]}`"
            )

    @classmethod
    def from_arrays(
        cls,
        arrays: dict,
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
          InputError: naming the key and the sizes when the dict is not FLAME-shaped.
        """
        missing = [k for k in REQUIRED_KEYS if k not in arrays]
        if missing:
            raise InputError(
                f"{source}: not a FLAME model (missing keys {missing}); expected a FLAME "
                ".pkl/.npz with " + ", ".join(REQUIRED_KEYS)
            )
        a = {k: np.asarray(v) for k, v in arrays.items()}
        v_template = _float(a, "v_template", source)
        n_v = v_template.shape[0]
        _expect(
            v_template.ndim == 2 and v_template.shape[1] == 3,
            source,
            "v_template",
            v_template.shape,
            "[V, 3]",
        )
        faces = a["f"]
        _expect(
            faces.ndim == 2 and faces.shape[1] == 3 and np.issubdtype(faces.dtype, np.integer),
            source,
            "f",
            faces.shape,
            "[F, 3] integers",
        )
        _expect(
            faces.size > 0 and faces.min() >= 0 and faces.max() < n_v,
            source,
            "f",
            faces.shape,
            f"indices in [0, {n_v})",
        )
        kintree = a["kintree_table"].astype(np.int64)
        _expect(
            kintree.ndim == 2 and kintree.shape[0] == 2,
            source,
            "kintree_table",
            kintree.shape,
            "[2, J]",
        )
        n_j = kintree.shape[1]
        parents = tuple(-1 if p >= n_j or p < 0 else int(p) for p in kintree[0])
        if parents[0] != -1 or any(p >= i for i, p in enumerate(parents) if i > 0):
            raise InputError(
                f"{source}: kintree_table parents {list(parents)} are not a "
                "tree rooted at joint 0 with parents before children"
            )
        shapedirs_all = _float(a, "shapedirs", source)
        _expect(
            shapedirs_all.ndim == 3 and shapedirs_all.shape[:2] == (n_v, 3),
            source,
            "shapedirs",
            shapedirs_all.shape,
            f"[{n_v}, 3, S + E]",
        )
        file_s, file_e = _split(a, shapedirs_all.shape[2], source)
        n_shape = file_s if n_shape is None else n_shape
        n_exp = file_e if n_exp is None else n_exp
        if not (0 <= n_shape <= file_s and 0 <= n_exp <= file_e):
            raise InputError(
                f"{source}: asked for n_shape={n_shape}, n_exp={n_exp} but the "
                f"file has {file_s} shape and {file_e} expression components"
            )
        posedirs = _float(a, "posedirs", source)
        _expect(
            posedirs.shape == (n_v, 3, 9 * (n_j - 1)),
            source,
            "posedirs",
            posedirs.shape,
            f"[{n_v}, 3, {9 * (n_j - 1)}]",
        )
        j_reg = _float(a, "J_regressor", source)
        _expect(j_reg.shape == (n_j, n_v), source, "J_regressor", j_reg.shape, f"[{n_j}, {n_v}]")
        weights = _float(a, "weights", source)
        _expect(weights.shape == (n_v, n_j), source, "weights", weights.shape, f"[{n_v}, {n_j}]")
        lmk_f = a.get("lmk_faces_idx", np.zeros((0,), np.int32)).astype(np.int32)
        lmk_b = (
            _float(a, "lmk_bary_coords", source)
            if "lmk_faces_idx" in a
            else np.zeros((0, 3), np.float32)
        )
        _expect(
            lmk_b.shape == (lmk_f.shape[0], 3),
            source,
            "lmk_bary_coords",
            lmk_b.shape,
            f"[{lmk_f.shape[0]}, 3]",
        )
        _expect(
            lmk_f.size == 0 or (lmk_f.min() >= 0 and lmk_f.max() < faces.shape[0]),
            source,
            "lmk_faces_idx",
            lmk_f.shape,
            f"face indices in [0, {faces.shape[0]})",
        )
        vt = _float(a, "vt", source) if "vt" in a else np.zeros((0, 2), np.float32)
        ft = a.get("ft", np.zeros((0, 3), np.int32)).astype(np.int32)
        if vt.shape[0]:
            _expect(
                ft.shape == faces.shape and ft.max() < vt.shape[0],
                source,
                "ft",
                ft.shape,
                f"{faces.shape} indices into vt",
            )
        masks = {
            k[len("mask_") :]: v.astype(np.int32).reshape(-1)
            for k, v in a.items()
            if k.startswith("mask_")
        }
        return cls(
            v_template=v_template,
            faces=faces.astype(np.int32),
            shapedirs=shapedirs_all[..., :n_shape],
            exprdirs=shapedirs_all[..., file_s : file_s + n_exp],
            posedirs=posedirs,
            j_regressor=j_reg,
            weights=weights,
            lmk_faces_idx=lmk_f,
            lmk_bary_coords=lmk_b,
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


def _split(a: dict, total: int, source: str) -> tuple[int, int]:
    """Number of shape and expression columns in ``shapedirs``."""
    if "n_shape" in a and "n_exp" in a:
        s, e = int(a["n_shape"]), int(a["n_exp"])
        if s + e != total:
            raise InputError(f"{source}: n_shape={s} + n_exp={e} != shapedirs columns {total}")
        return s, e
    if total == 400:  # FLAME 2017/2020/2023 .pkl: 300 identity + 100 expression.
        return 300, 100
    raise InputError(
        f"{source}: shapedirs has {total} columns and no n_shape/n_exp keys; "
        "convert it with `ggtalker flame convert` after checking its split"
    )


def _float(a: dict, key: str, source: str) -> np.ndarray:
    value = np.asarray(a[key], dtype=np.float32)
    if not np.all(np.isfinite(value)):
        raise InputError(f"{source}: '{key}' holds NaN/Inf values; the file is corrupt")
    return value


def _expect(ok: bool, source: str, key: str, shape, want: str) -> None:
    if not ok:
        raise InputError(
            f"{source}: '{key}' has shape {tuple(shape)}, expected {want}; "
            "is this a FLAME model file?"
        )
