"""Diffusion schedules, the training corruption and the DDIM sampler: pure functions.

Notation (Ho et al. 2020; Song et al. 2021, DDIM): a clean sample ``x0`` is corrupted at step
``t`` in ``0..K-1`` to ``x_t = sqrt(ᾱ_t)·x0 + sqrt(1 - ᾱ_t)·ε`` with ``ε ~ N(0, I)``, where
``ᾱ_t`` is the cumulative product of ``1 - β``. The network predicts ``x0`` directly (x0
parameterisation, as DiffPoseTalk does), so a DDIM step recovers the noise it implies,
``ε̂ = (x_t - sqrt(ᾱ_t)·x̂0) / sqrt(1 - ᾱ_t)``, and moves to an earlier step ``s``:
``x_s = sqrt(ᾱ_s)·x̂0 + sqrt(1 - ᾱ_s - σ²)·ε̂ + σ·z``, with
``σ = η·sqrt((1 - ᾱ_s)/(1 - ᾱ_t))·sqrt(1 - ᾱ_t/ᾱ_s)``; ``η = 0`` is deterministic.

Classifier-free guidance (Ho & Salimans 2022) combines predictions of one network under
dropped conditions; :func:`guide` writes the two-condition form used for audio and identity.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "cosine_alphas_cumprod",
    "ddim_step",
    "ddim_timesteps",
    "guide",
    "q_sample",
    "sample_ddim",
]


def cosine_alphas_cumprod(steps: int, s: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
    """ᾱ_t of the cosine schedule (Nichol & Dhariwal 2021), ``[K]`` float32, host numpy.

    ``f(t) = cos²((t/K + s)/(1 + s) · π/2)``, ``β_t = min(1 - f(t+1)/f(t), max_beta)``; the
    clip keeps the last steps from being pure noise with a singular ``ᾱ``.
    """
    t = np.arange(steps + 1, dtype=np.float64) / steps
    f = np.cos((t + s) / (1 + s) * np.pi / 2) ** 2
    betas = np.minimum(1.0 - f[1:] / f[:-1], max_beta)
    return np.cumprod(1.0 - betas).astype(np.float32)


def q_sample(
    x0: jax.Array,  # [B, ...]
    t: jax.Array,  # [B] int
    noise: jax.Array,  # [B, ...]
    alphas_cumprod: jax.Array,  # [K]
) -> jax.Array:  # [B, ...]
    """The forward process: ``x_t = sqrt(ᾱ_t)·x0 + sqrt(1 - ᾱ_t)·ε`` per batch element."""
    a = alphas_cumprod[t].reshape((-1,) + (1,) * (x0.ndim - 1)).astype(x0.dtype)
    return jnp.sqrt(a) * x0 + jnp.sqrt(1.0 - a) * noise


def ddim_timesteps(diffusion_steps: int, sample_steps: int) -> np.ndarray:
    """The ``sample_steps`` steps DDIM visits, from ``K - 1`` down to 0, evenly spaced
    (``[S]`` int32, strictly decreasing; the last is always 0)."""
    steps = np.round(np.linspace(diffusion_steps - 1, 0, sample_steps)).astype(np.int32)
    return np.unique(steps)[::-1].copy()


def ddim_step(
    x_t: jax.Array,  # [B, ...]
    x0: jax.Array,  # [B, ...] predicted clean sample
    t: jax.Array,  # [] int
    t_prev: jax.Array,  # [] int, -1 for the final step (ᾱ = 1)
    alphas_cumprod: jax.Array,  # [K]
    eta: float = 0.0,
    noise: jax.Array | None = None,  # [B, ...], needed when eta > 0
) -> jax.Array:
    """One DDIM update from step ``t`` to ``t_prev`` given the prediction ``x0``."""
    a_t = alphas_cumprod[t]
    a_s = jnp.where(t_prev >= 0, alphas_cumprod[jnp.maximum(t_prev, 0)], 1.0)
    eps = (x_t - jnp.sqrt(a_t) * x0) / jnp.sqrt(jnp.maximum(1.0 - a_t, 1e-12))
    sigma = eta * jnp.sqrt((1.0 - a_s) / (1.0 - a_t) * (1.0 - a_t / a_s))
    x_s = jnp.sqrt(a_s) * x0 + jnp.sqrt(jnp.maximum(1.0 - a_s - sigma**2, 0.0)) * eps
    if noise is not None:
        x_s = x_s + sigma * noise
    return x_s.astype(x_t.dtype)


def sample_ddim(
    predict_x0: Callable[[jax.Array, jax.Array], jax.Array],
    shape: tuple[int, ...],
    key: jax.Array,
    alphas_cumprod: jax.Array,  # [K]
    timesteps: np.ndarray,  # [S] from ddim_timesteps
    eta: float = 0.0,
) -> jax.Array:
    """Sample ``x0`` by DDIM, starting from ``N(0, I)`` at the first of ``timesteps``.

    Args:
      predict_x0: ``(x_t [shape], t [] int32) -> x̂0 [shape]`` (guidance applied inside).
      shape: the sample's shape.
      key: noise key (the result is a pure function of it).
      alphas_cumprod: the schedule.
      timesteps: the steps to visit, decreasing (host array: the loop is unrolled by scan).
      eta: 0 for deterministic DDIM; 1 recovers DDPM-like noise.

    Returns:
      The final ``x̂0`` (the prediction at step 0; no noise is added after it).
    """
    timesteps = np.asarray(timesteps, np.int32)
    prev = np.concatenate([timesteps[1:], [-1]]).astype(np.int32)
    init_key, step_key = jax.random.split(key)
    x = jax.random.normal(init_key, shape, jnp.float32)

    def body(carry, inputs):
        x, _ = carry
        t, t_prev, k = inputs
        x0 = predict_x0(x, t)
        noise = jax.random.normal(k, shape, jnp.float32) if eta > 0 else None
        return (ddim_step(x, x0, t, t_prev, alphas_cumprod, eta, noise), x0), None

    keys = jax.random.split(step_key, timesteps.shape[0])
    (_, x0), _ = jax.lax.scan(
        body, (x, jnp.zeros(shape, jnp.float32)), (jnp.asarray(timesteps), jnp.asarray(prev), keys)
    )
    return x0


def guide(
    uncond: jax.Array, audio: jax.Array, full: jax.Array, audio_scale: float, identity_scale: float
) -> jax.Array:
    """Two-condition classifier-free guidance on x0 predictions.

    ``uncond`` has neither condition, ``audio`` the audio only, ``full`` audio and identity:
    ``x̂ = uncond + s_a·(audio - uncond) + s_i·(full - audio)``. Scales of 1 give ``full``.
    """
    return uncond + audio_scale * (audio - uncond) + identity_scale * (full - audio)
