"""Losses and image metrics against direct numpy computations."""

import jax
import numpy as np
import pytest

from ggtalker_jax import train
from ggtalker_jax.eval import metrics
from ggtalker_jax.train import losses


def _gaussian_window(size=11, sigma=1.5):
    x = np.arange(size) - size // 2
    g = np.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def _blur_valid(z, g):
    # Separable valid convolution over H and W of [H, W, C].
    n = len(g)
    h, w = z.shape[0] - n + 1, z.shape[1] - n + 1
    rows = sum(g[i] * z[i : i + h] for i in range(n))
    return sum(g[j] * rows[:, j : j + w] for j in range(n))


def _ssim_map_numpy(a, b, c1=0.01**2, c2=0.03**2):
    a, b, g = a.astype(np.float64), b.astype(np.float64), _gaussian_window()
    mu_a, mu_b = _blur_valid(a, g), _blur_valid(b, g)
    var_a = _blur_valid(a * a, g) - mu_a**2
    var_b = _blur_valid(b * b, g) - mu_b**2
    cov = _blur_valid(a * b, g) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )


def _images(rng, shape=(2, 16, 16, 3)):
    target = rng.uniform(size=shape).astype(np.float32)
    pred = np.clip(target + 0.1 * rng.normal(size=shape), 0, 1).astype(np.float32)
    return pred, target


def test_psnr_matches_numpy(rng):
    pred, target = _images(rng)
    mse = ((pred.astype(np.float64) - target) ** 2).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(metrics.psnr(pred, target), 10 * np.log10(1 / mse), rtol=1e-5)
    np.testing.assert_allclose(
        losses.psnr(pred, target), (10 * np.log10(1 / mse)).mean(), rtol=1e-5
    )


def test_ssim_and_dssim_match_numpy(rng):
    pred, target = _images(rng)
    want = np.array([_ssim_map_numpy(p, t).mean() for p, t in zip(pred, target, strict=True)])
    np.testing.assert_allclose(metrics.ssim(pred, target), want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(losses.dssim(pred, target), ((1 - want) / 2).mean(), atol=1e-5)


def test_masked_psnr_ignores_pixels_outside_the_mask(rng):
    pred, target = _images(rng)
    mask = np.zeros(pred.shape[:-1], np.float32)
    mask[:, 4:12, 2:10] = 1.0
    scrambled = np.where(mask[..., None] > 0, pred, rng.uniform(size=pred.shape)).astype(np.float32)
    np.testing.assert_allclose(
        metrics.masked_psnr(scrambled, target, mask),
        metrics.masked_psnr(pred, target, mask),
        rtol=1e-6,
    )
    inside = ((pred - target) ** 2)[:, 4:12, 2:10].astype(np.float64).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(
        metrics.masked_psnr(pred, target, mask), -10 * np.log10(inside), rtol=1e-5
    )
    full = np.ones_like(mask)
    np.testing.assert_allclose(
        metrics.masked_psnr(pred, target, full), metrics.psnr(pred, target), rtol=1e-5
    )


def test_masked_ssim(rng):
    pred, target = _images(rng, (1, 20, 20, 3))
    full = np.ones(pred.shape[:-1], bool)
    np.testing.assert_allclose(
        metrics.masked_ssim(pred, target, full), metrics.ssim(pred, target), rtol=1e-5
    )
    mask = np.zeros(pred.shape[:-1], np.float32)
    mask[:, 5:12, 5:15] = 1.0  # map pixels [0:7, 0:10]
    want = _ssim_map_numpy(pred[0], target[0]).mean(axis=-1)[0:7, 0:10].mean()
    np.testing.assert_allclose(metrics.masked_ssim(pred, target, mask), [want], rtol=1e-4)


def test_l1(rng):
    pred, target = _images(rng)
    np.testing.assert_allclose(losses.l1(pred, target), np.abs(pred - target).mean(), rtol=1e-5)
    mask = np.zeros(pred.shape[:-1], np.float32)
    mask[:, :8] = 1.0
    np.testing.assert_allclose(
        losses.l1(pred, target, mask), np.abs(pred - target)[:, :8].mean(), rtol=1e-5
    )


def test_leading_axes(rng):
    pred, target = _images(rng, (2, 2, 16, 16, 3))
    assert metrics.ssim(pred, target).shape == (2, 2)
    assert metrics.psnr(pred, target).shape == (2, 2)
    np.testing.assert_allclose(
        metrics.ssim(pred, target)[1], metrics.ssim(pred[1], target[1]), rtol=1e-6
    )


@jax.jit
def _photometric(pred, target, mask):
    return losses.l1(pred, target, mask) + 0.2 * losses.dssim(pred, target), losses.psnr(
        pred, target, mask
    )


@pytest.mark.parametrize("sharded", [False, True])
def test_losses_on_a_sharded_batch(rng, tiny, sharded):
    pred, target = _images(rng, (8, 16, 16, 3))
    mask = (rng.uniform(size=pred.shape[:-1]) > 0.3).astype(np.float32)
    args = (pred, target, mask)
    got = _photometric(*(train.shard_batch(args, tiny.mesh) if sharded else args))
    want = _photometric(*args)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5)
