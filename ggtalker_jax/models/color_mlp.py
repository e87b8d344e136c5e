"""The color MLP: a per-Gaussian, per-frame colour correction (shading, wrinkles, the mouth
interior under the lips) on top of the map colour.

Per Gaussian ``n`` and frame ``t`` the input is

    [ feature_n (IdentityParam, color_feature_dim) | 2·colour_tn − 1 (3) | view_tn (3) |
      expression_t (E) | jaw_pose_t (3) | rot6d(global_pose_t) (6) ]

with ``view`` the unit direction from the camera centre to the Gaussian's mean, turned into
head-local coordinates by the inverse global head rotation (a head turning in front of a fixed
camera and a camera orbiting a fixed head then read the same), and ``rot6d`` the first two
columns of the head rotation (Zhou et al. 2019: continuous, unlike axis-angle). The output is
``Δcolour [T, N, 3]`` from a zero-initialised last layer: at initialisation the MLP returns
exactly zero and the render is the map's colour.

The first layer is one linear map of that concatenation, evaluated in three parts that are
summed before the activation: the per-texel part ``[N, Fc] @ W`` once for all frames, the
per-frame part ``[T, E+9] @ W`` once for all texels, and only the 6 per-(frame, texel)
inputs at ``T x N``. Exactly the same function as concatenating, without materialising a
``[T, N, Fc+E+15]`` input.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from ggtalker_jax.config.e2v import E2VConfig
from ggtalker_jax.errors import InputError
from ggtalker_jax.geometry.rotations import axis_angle_to_matrix
from ggtalker_jax.models.layers import compute_dtype
from ggtalker_jax.models.variables import IdentityParam
from ggtalker_jax.types import FlameParams

__all__ = ["ColorMLP", "head_local_view_dirs", "rotation_6d"]

FEATURE_INIT_STD = 0.1


def rotation_6d(rotvec: jax.Array) -> jax.Array:
    """Axis-angle ``[..., 3]`` -> the first two columns of its rotation matrix ``[..., 6]``."""
    rotation = axis_angle_to_matrix(rotvec)  # [..., 3, 3]
    return rotation[..., :, :2].reshape(*rotation.shape[:-2], 6)


def head_local_view_dirs(
    means: jax.Array, camera_center: jax.Array, global_pose: jax.Array
) -> jax.Array:
    """Unit directions camera -> Gaussian, in head-local axes.

    Args:
      means: ``[T, N, 3]`` world positions.  camera_center: ``[T, 3]`` world positions.
      global_pose: ``[T, 3]`` axis-angle head rotation (FLAME's root).

    Returns:
      ``[T, N, 3]`` unit vectors ``R_tᵀ (μ − c) / |μ − c|``.
    """
    d = means - camera_center[:, None, :]  # [T, N, 3]
    d = d / jnp.maximum(jnp.linalg.norm(d, axis=-1, keepdims=True), 1e-12)
    rotation = axis_angle_to_matrix(global_pose)  # [T, 3, 3]
    # Rᵀ d, elementwise (a [T, N, 3] x [3, 3] dot is slow on XLA:CPU and TF32 on GPUs).
    return jnp.sum(rotation[:, None, :, :] * d[..., :, None], axis=-2)


class ColorMLP(nnx.Module):
    """Per-texel features + frame state + view -> Δcolour (module docstring).

    Args:
      n_texels: ``N`` (``template.layout.n``).
      n_exp: ``E``, the FLAME model's expression components.
      config: ``color_feature_dim`` (Fc), ``color_hidden`` (H), ``color_layers`` (hidden
        layers, each linear + SiLU; then the zero-initialised output layer) and
        ``compute_dtype``.
      rngs: parameter initialisation keys.
      feature_init_std: std of the per-texel features' normal initialisation (not in
        :class:`E2VConfig`). Random rather than zero so each texel starts with its own code
        (the MLP can tell texels apart from the first step, like a positional code); small so
        the features do not swamp the pose and view inputs through a lecun-initialised first
        layer, and so adaptation's small learning rate can still reshape them.
    """

    def __init__(
        self,
        n_texels: int,
        n_exp: int,
        config: E2VConfig,
        rngs: nnx.Rngs,
        *,
        feature_init_std: float = FEATURE_INIT_STD,
    ):
        self.n_texels, self.n_exp = int(n_texels), int(n_exp)
        self.dtype = compute_dtype(config.compute_dtype)
        fc, hidden = config.color_feature_dim, config.color_hidden
        self.features = IdentityParam(
            feature_init_std * jax.random.normal(rngs.params(), (n_texels, fc), jnp.float32)
        )
        dense = dict(dtype=self.dtype, rngs=rngs)
        self.texel_in = nnx.Linear(fc, hidden, use_bias=False, **dense)
        self.frame_in = nnx.Linear(n_exp + 3 + 6, hidden, **dense)
        self.point_in = nnx.Linear(6, hidden, use_bias=False, **dense)
        self.hidden = nnx.List(
            [nnx.Linear(hidden, hidden, **dense) for _ in range(config.color_layers - 1)]
        )
        zeros = nnx.initializers.zeros
        self.out = nnx.Linear(hidden, 3, kernel_init=zeros, bias_init=zeros, **dense)

    def __call__(
        self,
        colors: jax.Array,  # [T, N, 3] map colours in 0..1
        means: jax.Array,  # [T, N, 3] world Gaussian means
        params: FlameParams,  # [T]
        camera_center: jax.Array,  # [T, 3] world camera centres
    ) -> jax.Array:
        """Returns ``Δcolour [T, N, 3]`` float32 (add to the colours, then clip to 0..1)."""
        self._check(colors, means, params, camera_center)
        t, n = means.shape[:2]
        colors = jnp.broadcast_to(colors, (t, n, 3))
        view = head_local_view_dirs(means, camera_center, params.global_pose)  # [T, N, 3]
        frame = jnp.concatenate(
            [params.expression, params.jaw_pose, rotation_6d(params.global_pose)], axis=-1
        )  # [T, E + 9]
        point = jnp.concatenate([colors * 2.0 - 1.0, view], axis=-1)  # [T, N, 6]
        h = (
            self.texel_in(self.features[...])[None]  # [1, N, H]
            + self.frame_in(frame)[:, None]  # [T, 1, H]
            + self.point_in(point)  # [T, N, H]
        )
        h = jax.nn.silu(h)
        for layer in self.hidden:
            h = jax.nn.silu(layer(h))
        return self.out(h).astype(jnp.float32)

    def _check(self, colors, means, params, camera_center) -> None:
        """One-line InputErrors for shapes that do not fit (trace-time safe)."""
        n, e = self.n_texels, self.n_exp
        problems = [
            (means.ndim == 3 and means.shape[1:] == (n, 3), "means", f"[T, {n}, 3]", means),
            (colors.shape[-2:] == (n, 3), "colors", f"[T, {n}, 3]", colors),
            (camera_center.shape == (means.shape[0], 3), "camera_center", "[T, 3]", camera_center),
            (
                params.expression.shape == (means.shape[0], e),
                "params.expression",
                f"[T, {e}]",
                params.expression,
            ),
        ]
        for ok, name, want, value in problems:
            if not ok:
                raise InputError(
                    f"ColorMLP: {name} has shape {tuple(value.shape)}; expected {want} "
                    "(one row per frame T, one Gaussian per texel N)"
                )
