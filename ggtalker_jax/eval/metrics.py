"""Image metrics inside JAX (jit-able, differentiable): PSNR and SSIM, whole-frame and masked.

Images are ``[..., H, W, 3]`` floats in 0..1 (the peak value is 1); masks ``[..., H, W]``
(float weights or bool). Every function is jitted (for eager callers; inside a jit it
inlines) and returns one value per image, ``[...]``. SSIM is dm-pix's (Wang et al. 2004: an
11-tap Gaussian window, sigma 1.5, k1 0.01, k2 0.03, valid convolution), the mean over the
three channels. Masked SSIM averages the SSIM map over the mask cropped to the map's valid
region (5 pixels off each side). An empty mask gives NaN: there is nothing to measure.
"""

from __future__ import annotations

import dm_pix as pix
import jax
import jax.numpy as jnp

SSIM_FILTER = 11
"""Width of SSIM's Gaussian window; the map loses ``SSIM_FILTER // 2`` pixels per side."""


def _weights(mask, image) -> jax.Array:
    return jnp.asarray(mask, image.dtype)[..., None]  # [..., H, W, 1]


def _masked_mean(values, weights) -> jax.Array:
    """Mean of ``values [..., H, W, C]`` under ``weights [..., H, W, 1]``, per image."""
    total = jnp.sum(values * weights, axis=(-3, -2, -1))
    count = jnp.sum(weights, axis=(-3, -2, -1)) * values.shape[-1]
    return total / count


def _psnr_of_mse(mse) -> jax.Array:
    return -10.0 * jnp.log10(mse)


@jax.jit
def psnr(pred, target) -> jax.Array:
    """Peak signal-to-noise ratio in dB, per image ``[...]`` (peak 1).

    Args:
      pred: ``[..., H, W, 3]`` in 0..1.
      target: ``[..., H, W, 3]`` in 0..1.
    """
    return _psnr_of_mse(jnp.mean((pred - target) ** 2, axis=(-3, -2, -1)))


@jax.jit
def masked_psnr(pred, target, mask) -> jax.Array:
    """PSNR in dB over the pixels where ``mask [..., H, W]`` is set (weighted), per image."""
    return _psnr_of_mse(_masked_mean((pred - target) ** 2, _weights(mask, pred)))


def _batched(fn, ndim_image: int = 4):
    """``fn`` of ``[B, H, W, C]`` extended to any number of leading axes by vmap (dm-pix
    takes rank 3 or 4 only, and a reshape would merge a sharded batch axis)."""

    def apply(*images):
        extra = images[0].ndim - ndim_image
        f = fn
        for _ in range(extra):
            f = jax.vmap(f)
        return f(*images)

    return apply


def _pix_ssim(a, b, return_map: bool) -> jax.Array:
    # dm-pix builds its Gaussian window from an int arange and a float shift, which strict
    # dtype promotion (the test suite's setting) refuses; the computation is float32 either way.
    with jax.numpy_dtype_promotion("standard"):
        return pix.ssim(a, b, filter_size=SSIM_FILTER, return_map=return_map)


@jax.jit
def ssim_map(pred, target) -> jax.Array:
    """The SSIM map, mean over channels: ``[..., H - 10, W - 10]``."""
    return _batched(lambda a, b: _pix_ssim(a, b, True).mean(axis=-1), 3)(pred, target)


@jax.jit
def ssim(pred, target) -> jax.Array:
    """Mean SSIM per image ``[...]`` (dm-pix; the mean over pixels and channels)."""
    return _batched(lambda a, b: _pix_ssim(a, b, False), 3)(pred, target)


@jax.jit
def masked_ssim(pred, target, mask) -> jax.Array:
    """The SSIM map averaged over ``mask [..., H, W]`` (cropped to the map), per image."""
    r = SSIM_FILTER // 2
    weights = jnp.asarray(mask, pred.dtype)[..., r:-r, r:-r]
    values = ssim_map(pred, target)
    return jnp.sum(values * weights, axis=(-2, -1)) / jnp.sum(weights, axis=(-2, -1))
