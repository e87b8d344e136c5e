"""Small Flax NNX building blocks of the image encoder and the UV U-Net, and bilinear sampling
of a feature map at pixel positions.

Dtypes: parameters are always float32 (what the optimizer and the checkpoints hold);
activations run in the module's ``dtype`` (``float32`` or ``bfloat16``, from
``E2VConfig.compute_dtype``): flax casts the parameters to ``dtype`` inside each conv and
linear layer; GroupNorm and its SiLU run in float32 (statistics of bfloat16 activations lose
too much), and their output is cast back to ``dtype`` before the conv.

Every block is pre-activation (GroupNorm → SiLU → Conv), so a residual block's skip path stays
a clean identity and a zero-initialised last conv makes the whole network start as a constant.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = [
    "ConvBlock",
    "Downsample",
    "ResBlock",
    "Upsample",
    "compute_dtype",
    "group_count",
    "sample_bilinear",
    "upsample_nearest",
]

MAX_GROUPS = 8  # GroupNorm groups: 8 (or the largest divisor below) suits 16-512 channels


def compute_dtype(name: str) -> jnp.dtype:
    """``"float32"`` / ``"bfloat16"`` (``E2VConfig.compute_dtype``) -> the activation dtype."""
    return {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[name]


def group_count(channels: int) -> int:
    """GroupNorm groups for ``channels``: the largest divisor of ``channels`` up to 8."""
    return max(g for g in range(1, MAX_GROUPS + 1) if channels % g == 0)


class ConvBlock(nnx.Module):
    """GroupNorm → SiLU → Conv (pre-activation): ``[B, H, W, Cin] -> [B, H/s, W/s, Cout]``.

    Args:
      in_features, out_features: channels ``Cin``, ``Cout``.
      rngs: parameter initialisation keys.
      kernel_size: square kernel side (``SAME`` padding).
      strides: 1, or 2 to halve the resolution.
      dtype: activation dtype.
      kernel_init: the conv's kernel initialiser (default: flax's lecun normal).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rngs: nnx.Rngs,
        *,
        kernel_size: int = 3,
        strides: int = 1,
        dtype=jnp.float32,
        kernel_init=None,
    ):
        self.dtype = dtype
        # The norm runs in float32 whatever ``dtype`` (flax's GroupNorm promotes bfloat16
        # statistics to float32 anyway); the conv input is cast back to ``dtype``.
        self.norm = nnx.GroupNorm(in_features, num_groups=group_count(in_features), rngs=rngs)
        extra = {} if kernel_init is None else {"kernel_init": kernel_init}
        self.conv = nnx.Conv(
            in_features,
            out_features,
            (kernel_size, kernel_size),
            strides=strides,
            dtype=dtype,
            rngs=rngs,
            **extra,
        )

    def __call__(self, x: jax.Array) -> jax.Array:  # [B, H, W, Cin] -> [B, H', W', Cout]
        h = jax.nn.silu(self.norm(x.astype(jnp.float32)))
        return self.conv(h.astype(self.dtype))


class ResBlock(nnx.Module):
    """Two :class:`ConvBlock` plus a skip (a 1x1 conv when the width changes):
    ``[B, H, W, Cin] -> [B, H, W, Cout]``."""

    def __init__(self, in_features: int, out_features: int, rngs: nnx.Rngs, *, dtype=jnp.float32):
        self.dtype = dtype
        self.block1 = ConvBlock(in_features, out_features, rngs, dtype=dtype)
        self.block2 = ConvBlock(out_features, out_features, rngs, dtype=dtype)
        self.skip = (
            nnx.Conv(in_features, out_features, (1, 1), dtype=dtype, rngs=rngs)
            if in_features != out_features
            else None
        )

    def __call__(self, x: jax.Array) -> jax.Array:  # [B, H, W, Cin] -> [B, H, W, Cout]
        x = x.astype(self.dtype)
        skip = x if self.skip is None else self.skip(x)
        return skip + self.block2(self.block1(x))


class Downsample(nnx.Module):
    """A stride-2 3x3 conv: ``[B, H, W, Cin] -> [B, H/2, W/2, Cout]`` (H, W even)."""

    def __init__(self, in_features: int, out_features: int, rngs: nnx.Rngs, *, dtype=jnp.float32):
        self.conv = nnx.Conv(in_features, out_features, (3, 3), strides=2, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.conv(x)


class Upsample(nnx.Module):
    """Nearest-neighbour 2x resize then a 3x3 conv (no checkerboard artefacts of a transposed
    conv): ``[B, H, W, Cin] -> [B, 2H, 2W, Cout]``."""

    def __init__(self, in_features: int, out_features: int, rngs: nnx.Rngs, *, dtype=jnp.float32):
        self.conv = nnx.Conv(in_features, out_features, (3, 3), dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.conv(upsample_nearest(x))


def upsample_nearest(x: jax.Array, factor: int = 2) -> jax.Array:
    """``[B, H, W, C] -> [B, fH, fW, C]`` by repeating pixels (exact, no interpolation)."""
    return jnp.repeat(jnp.repeat(x, factor, axis=-3), factor, axis=-2)


def sample_bilinear(
    feature: jax.Array, points_px: jax.Array, image_size: int | tuple[int, int]
) -> jax.Array:
    """Bilinearly sample a feature map at image pixel positions.

    The feature map covers the same field of view as an ``image_size`` image (a strided
    encoder's output): image pixel ``(u, v)`` (centres at ``+0.5``, the package's convention)
    maps to feature coordinate ``u · w / W - 0.5`` in units of feature pixels, whose centres
    sit at integers. Neighbours outside the map contribute zero (``grid_sample`` with zero
    padding, ``align_corners=False``), so points off the image read zeros.

    Args:
      feature: ``[B, h, w, C]`` feature map (any float dtype; kept).
      points_px: ``[B, N, 2]`` pixel positions ``(u, v)`` = (column, row) in the image.
      image_size: ``(H, W)`` of the image the points live in, or one int for a square image.

    Returns:
      ``[B, N, C]`` samples in ``feature``'s dtype; differentiable in ``feature`` (a scatter-
      add) and in ``points_px``.
    """
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    _, h, w, c = feature.shape
    x = points_px[..., 0] * (w / width) - 0.5  # [B, N] feature-pixel coordinates
    y = points_px[..., 1] * (h / height) - 0.5
    x0, y0 = jnp.floor(x), jnp.floor(y)
    fx, fy = x - x0, y - y0  # [B, N] weights of the +1 neighbours
    x0, y0 = x0.astype(jnp.int32), y0.astype(jnp.int32)
    flat = feature.reshape(feature.shape[0], h * w, c)  # [B, h*w, C]

    def corner(dx: int, dy: int, weight: jax.Array) -> jax.Array:  # -> [B, N, C]
        xi, yi = x0 + dx, y0 + dy
        inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        index = jnp.clip(yi, 0, h - 1) * w + jnp.clip(xi, 0, w - 1)  # [B, N]
        values = jnp.take_along_axis(flat, index[..., None], axis=1)
        weight = jnp.where(inside, weight, 0.0).astype(feature.dtype)
        return values * weight[..., None]

    return (
        corner(0, 0, (1 - fx) * (1 - fy))
        + corner(1, 0, fx * (1 - fy))
        + corner(0, 1, (1 - fx) * fy)
        + corner(1, 1, fx * fy)
    )
