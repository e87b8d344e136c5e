"""Pytrees shared across the package, the facts every stage agrees on, and the letters used
in every shape comment.

Letters (one meaning each):

====  =====================================  ====  =====================================
``N`` Gaussians                              ``T`` frames
``V`` mesh vertices                          ``B`` batch
``F`` faces                                  ``H``, ``W``  image height and width
``C`` cameras                                ``D`` colour / feature channels
``S`` identity-shape components              ``E`` expression components
``J`` joints                                 ``A`` audio samples
``L`` landmarks                              ``Hu``, ``Wu``  UV-map height and width
====  =====================================  ====  =====================================

A leading ``...`` is any batch shape.

All containers are frozen dataclasses registered as JAX pytrees, so they pass through
``jit``, ``vmap`` and ``grad`` and can be saved with orbax. Shapes are checked by each
container's ``check`` method (trace-time safe: shapes are static); values (NaN) only at host
entry points.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ggtalker_jax.errors import InputError

Array = jax.Array

FPS = 25
"""Video frames per second of the clip format, the visemes and every model."""

SAMPLE_RATE = 16000
"""Audio samples per second (Hz) of the clip format and of every audio model."""

EXPRESSION_NAMES = (
    "lips_part",  # 0: opens the lips without the jaw
    "lips_round",  # 1: pucker
    "lips_spread",  # 2
    "lips_press",  # 3: lips pressed together (bilabial closure)
    "smile",  # 4
    "frown",  # 5
    "upper_lip_raise",  # 6
    "lower_lip_depress",  # 7
    "lips_funnel",  # 8
    "smile_left",  # 9: asymmetric smile / sneer
)
"""Expression components of the procedural head, in coefficient order: the blendshapes that
build it and the visemes that drive it both use this list."""


def _pytree(cls):
    """Frozen dataclass registered as a pytree whose fields are all children."""
    cls = dataclasses.dataclass(frozen=True)(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    return jax.tree_util.register_dataclass(cls, data_fields=names, meta_fields=[])


@_pytree
class FlameParams:
    """Per-frame FLAME parameters (one identity shape, per-frame everything else).

    Attributes:
      shape: ``[..., S]`` identity shape coefficients.
      expression: ``[..., E]`` expression coefficients.
      global_pose: ``[..., 3]`` axis-angle rotation of the whole head (root joint), radians.
      neck_pose: ``[..., 3]`` axis-angle rotation of the neck joint.
      jaw_pose: ``[..., 3]`` axis-angle rotation of the jaw; +x opens the mouth.
      eye_pose: ``[..., 6]`` axis-angle of the left then the right eyeball.
      translation: ``[..., 3]`` translation added after skinning, metres.

    ``shape`` may have fewer leading dims than the rest (one identity, many frames); all
    fields broadcast against each other.
    """

    shape: Array
    expression: Array
    global_pose: Array
    neck_pose: Array
    jaw_pose: Array
    eye_pose: Array
    translation: Array

    @classmethod
    def zeros(cls, n_shape: int, n_exp: int, batch: tuple[int, ...] = ()) -> FlameParams:
        """Neutral parameters: ``shape [S]`` and every per-frame field with leading ``batch``."""
        z = lambda *d: jnp.zeros((*batch, *d), jnp.float32)
        return cls(
            shape=jnp.zeros((n_shape,), jnp.float32),
            expression=z(n_exp),
            global_pose=z(3),
            neck_pose=z(3),
            jaw_pose=z(3),
            eye_pose=z(6),
            translation=z(3),
        )

    def replace(self, **changes) -> FlameParams:
        """A copy with the given fields replaced (arrays are converted to float32)."""
        changes = {k: jnp.asarray(v, jnp.float32) for k, v in changes.items()}
        return dataclasses.replace(self, **changes)

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """Leading shape of the per-frame fields."""
        return tuple(self.expression.shape[:-1])


FLAME_PARAM_FIELDS = tuple(f.name for f in dataclasses.fields(FlameParams))
"""Field names of :class:`FlameParams` in order (also the per-clip keys of ``flame.npz``)."""

FLAME_PARAM_SIZES = {
    "global_pose": 3,
    "neck_pose": 3,
    "jaw_pose": 3,
    "eye_pose": 6,
    "translation": 3,
}
"""Last-dimension size of each per-frame FLAME pose field (``shape`` and ``expression`` take
their sizes from the model). The clip reader, the TFDS features and the parameter checks all
read this table."""


def check_flame_params(params: FlameParams, n_shape: int, n_exp: int, where: str = "") -> None:
    """Validate sizes (always) and values (when concrete) of ``params``.

    Shapes are static, so the size check also runs while tracing under ``jit``. The NaN/Inf
    check runs only on concrete arrays (host entry points); inside ``jit`` it is skipped.

    Raises:
      InputError: one line naming the field, the size or value found and what was expected.
    """
    prefix = f"{where}: " if where else ""
    expected = {"shape": n_shape, "expression": n_exp, **FLAME_PARAM_SIZES}
    for name, size in expected.items():
        value = getattr(params, name)
        if value.ndim == 0 or value.shape[-1] != size:
            raise InputError(
                f"{prefix}FLAME parameter '{name}' has shape {tuple(value.shape)} but the model "
                f"expects last dimension {size}; pass [..., {size}] (load the model with "
                f"n_shape/n_exp to truncate its bases)"
            )
    for name in expected:
        value = getattr(params, name)
        if isinstance(value, jax.core.Tracer):
            continue
        host = np.asarray(value)
        if not np.all(np.isfinite(host)):
            bad = int(np.size(host) - np.count_nonzero(np.isfinite(host)))
            raise InputError(
                f"{prefix}FLAME parameter '{name}' holds {bad} NaN/Inf value(s); "
                "clean the parameters (e.g. np.nan_to_num) before calling"
            )


@_pytree
class FlameOutput:
    """Posed FLAME mesh.

    Attributes:
      vertices: ``[..., V, 3]`` posed vertices, metres.
      joints: ``[..., J, 3]`` posed joint locations.
      landmarks: ``[..., L, 3]`` landmarks (``L = 0`` when the model has no embedding).
    """

    vertices: Array
    joints: Array
    landmarks: Array


def _check_shape(where: str, name: str, value, want: tuple) -> None:
    """Compare ``value.shape`` with ``want`` (ints, or ``None`` for any size)."""
    shape = tuple(value.shape)
    ok = len(shape) >= len(want) and all(
        w is None or s == w for s, w in zip(shape[len(shape) - len(want) :], want, strict=True)
    )
    if not ok:
        pretty = ", ".join("?" if w is None else str(w) for w in want)
        raise InputError(f"{where}: '{name}' has shape {shape}; expected [..., {pretty}]")


@_pytree
class Gaussians:
    """A set of 3D Gaussians (gsplat's conventions, so renderers can be swapped).

    Attributes:
      means: ``[..., N, 3]`` world positions, metres.
      quats: ``[..., N, 4]`` rotations, wxyz (any non-zero norm; normalised where used).
      scales: ``[..., N, 3]`` standard deviations along the rotated axes, linear (not log).
      opacities: ``[..., N]`` in 0..1.
      colors: ``[..., N, D]`` colour or feature channels.
    """

    means: Array
    quats: Array
    scales: Array
    opacities: Array
    colors: Array

    @property
    def count(self) -> int:
        """``N``."""
        return int(self.means.shape[-2])

    def check(self, where: str = "Gaussians") -> Gaussians:
        """Refuse inconsistent shapes (trace-time safe) and an empty set; returns ``self``.

        Raises:
          InputError: one line naming the field and the expected shape.
        """
        _check_shape(where, "means", self.means, (None, 3))
        n = self.means.shape[-2]
        if n == 0:
            raise InputError(f"{where}: holds 0 Gaussians; pass at least one")
        _check_shape(where, "quats", self.quats, (n, 4))
        _check_shape(where, "scales", self.scales, (n, 3))
        _check_shape(where, "opacities", self.opacities, (n,))
        _check_shape(where, "colors", self.colors, (n, None))
        return self


@dataclasses.dataclass(frozen=True)
class Camera:
    """Pinhole cameras (OpenCV convention, as gsplat: +z forward, +y down, pixel centres at
    +0.5).

    Attributes:
      viewmat: ``[..., 4, 4]`` world->camera.
      K: ``[..., 3, 3]`` intrinsics.
      width, height: image size in pixels (static: part of the pytree's structure).
    """

    viewmat: Array
    K: Array
    width: int
    height: int

    def check(self, where: str = "Camera") -> Camera:
        """Refuse wrong matrix shapes, mismatched batch shapes or a non-positive size."""
        _check_shape(where, "viewmat", self.viewmat, (4, 4))
        _check_shape(where, "K", self.K, (3, 3))
        if tuple(self.viewmat.shape[:-2]) != tuple(self.K.shape[:-2]):
            raise InputError(
                f"{where}: viewmat {tuple(self.viewmat.shape)} and K {tuple(self.K.shape)} "
                "have different leading shapes; give one K per viewmat"
            )
        if not (int(self.width) >= 1 and int(self.height) >= 1):
            raise InputError(f"{where}: image size {self.width}x{self.height} must be positive")
        return self


jax.tree_util.register_dataclass(
    Camera, data_fields=["viewmat", "K"], meta_fields=["width", "height"]
)


@_pytree
class Mesh:
    """A textured triangle mesh.

    Attributes:
      vertices: ``[..., V, 3]`` positions, metres.
      faces: ``[F, 3]`` int32 vertex indices, counter-clockwise seen from outside.
      vt: ``[Nvt, 2]`` texture coordinates (v grows upwards, as in OBJ and FLAME).
      ft: ``[F, 3]`` int32 indices into ``vt`` per face corner.
      texture: ``[Ht, Wt, 3]`` colours (row 0 is v = 1): uint8 on disk, float in 0..1 where
        rendered.
    """

    vertices: Array
    faces: Array
    vt: Array
    ft: Array
    texture: Array

    def check(self, where: str = "Mesh") -> Mesh:
        """Refuse inconsistent shapes (trace-time safe)."""
        _check_shape(where, "vertices", self.vertices, (None, 3))
        _check_shape(where, "faces", self.faces, (None, 3))
        _check_shape(where, "vt", self.vt, (None, 2))
        _check_shape(where, "ft", self.ft, (self.faces.shape[-2], 3))
        _check_shape(where, "texture", self.texture, (None, None, 3))
        return self
