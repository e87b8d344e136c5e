"""Pytrees shared across the package, and the letters used in every shape comment.

Letters: ``N`` Gaussians, ``V`` mesh vertices, ``F`` faces, ``C`` cameras, ``T`` frames,
``B`` batch, ``H, W`` image size, ``D`` colour/feature channels, ``S`` identity-shape
components, ``E`` expression components, ``J`` joints. A leading ``...`` is any batch shape.

All containers are frozen dataclasses registered as JAX pytrees, so they pass through
``jit``, ``vmap`` and ``grad`` and can be saved with orbax.
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
