"""Photometric losses over image batches: L1, D-SSIM and PSNR, each one scalar over the batch.

Images are ``[..., H, W, 3]`` floats in 0..1; masks ``[..., H, W]`` weights. The per-image
metrics behind them live in :mod:`ggtalker_jax.eval.metrics` (one definition of SSIM and PSNR).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ggtalker_jax.eval import metrics


def l1(pred, target, mask=None) -> jax.Array:
    """Mean absolute error over pixels and channels (under ``mask`` if given), batch mean."""
    error = jnp.abs(pred - target)
    if mask is None:
        return jnp.mean(error)
    weights = jnp.asarray(mask, pred.dtype)[..., None]
    return jnp.sum(error * weights) / (jnp.sum(weights) * pred.shape[-1])


def dssim(pred, target, mask=None) -> jax.Array:
    """Structural dissimilarity ``(1 - SSIM) / 2`` (dm-pix SSIM; masked SSIM with ``mask``),
    batch mean, in 0..1."""
    value = metrics.ssim(pred, target) if mask is None else metrics.masked_ssim(pred, target, mask)
    return jnp.mean((1.0 - value) / 2.0)


def psnr(pred, target, mask=None) -> jax.Array:
    """PSNR in dB, the batch mean of the per-image values (masked with ``mask``)."""
    value = metrics.psnr(pred, target) if mask is None else metrics.masked_psnr(pred, target, mask)
    return jnp.mean(value)
