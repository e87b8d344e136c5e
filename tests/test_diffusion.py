"""Diffusion math: the cosine schedule against its closed form, the forward process's
statistics, DDIM's fixed point and determinism, and the guidance combination."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ggtalker_jax.diffusion import (
    cosine_alphas_cumprod,
    ddim_step,
    ddim_timesteps,
    guide,
    q_sample,
    sample_ddim,
)


def test_cosine_schedule_matches_its_closed_form_until_the_beta_clip():
    k, s = 500, 0.008
    acp = cosine_alphas_cumprod(k, s)
    f = lambda t: np.cos((t / k + s) / (1 + s) * np.pi / 2) ** 2
    closed = f(np.arange(1, k + 1)) / f(0)  # ᾱ_t = f(t + 1) / f(0) without the clip
    unclipped = closed > 1e-3  # the clip at beta 0.999 only bites in the last few steps
    np.testing.assert_allclose(acp[unclipped], closed[unclipped], rtol=1e-5, atol=1e-7)
    assert acp.dtype == np.float32 and acp.shape == (k,)
    assert np.all(np.diff(acp) < 0) and 0.99 < acp[0] < 1 and 0 < acp[-1] < 1e-3


def test_q_sample_has_the_forward_process_statistics(key):
    acp = jnp.asarray(cosine_alphas_cumprod(100))
    t = jnp.array([5, 50, 95])
    x0 = jnp.broadcast_to(jnp.array([1.0, -2.0, 0.5])[:, None], (3, 20000))
    noise = jax.random.normal(key, x0.shape)
    x_t = np.asarray(q_sample(x0, t, noise, acp))
    a = np.asarray(acp)[np.asarray(t)]
    np.testing.assert_allclose(x_t.mean(1), np.sqrt(a) * np.asarray(x0[:, 0]), atol=0.03)
    np.testing.assert_allclose(x_t.std(1), np.sqrt(1 - a), rtol=0.03)


def test_ddim_timesteps_run_down_to_zero():
    steps = ddim_timesteps(500, 50)
    assert steps[0] == 499 and steps[-1] == 0 and steps.shape == (50,)
    assert np.all(np.diff(steps) < 0)
    assert ddim_timesteps(10, 10).tolist() == list(range(9, -1, -1))


def test_ddim_with_a_perfect_predictor_returns_the_clean_sample(key):
    acp = jnp.asarray(cosine_alphas_cumprod(200))
    target = jax.random.normal(key, (2, 7, 3))
    out = sample_ddim(lambda x, t: target, target.shape, key, acp, ddim_timesteps(200, 12))
    np.testing.assert_allclose(np.asarray(out), np.asarray(target), atol=1e-6)
    # One deterministic step from a noised sample lands on its own trajectory: at t_prev the
    # sample equals the forward process of the same noise.
    noise = jax.random.normal(jax.random.fold_in(key, 1), target.shape)
    x_t = q_sample(target, jnp.full((2,), 150), noise, acp)
    x_s = ddim_step(x_t, target, jnp.array(150), jnp.array(60), acp)
    want = q_sample(target, jnp.full((2,), 60), noise, acp)
    np.testing.assert_allclose(np.asarray(x_s), np.asarray(want), atol=1e-5)


def test_ddim_is_a_pure_function_of_its_key(key):
    acp = jnp.asarray(cosine_alphas_cumprod(100))
    steps = ddim_timesteps(100, 8)
    predict = lambda x, t: 0.5 * x  # depends on the noise, so the key matters
    a = sample_ddim(predict, (3, 4), key, acp, steps)
    b = sample_ddim(predict, (3, 4), key, acp, steps)
    c = sample_ddim(predict, (3, 4), jax.random.fold_in(key, 7), acp, steps)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.allclose(np.asarray(a), np.asarray(c))


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_stays_finite_with_and_without_noise(key, eta):
    acp = jnp.asarray(cosine_alphas_cumprod(100))
    out = sample_ddim(lambda x, t: jnp.tanh(x), (4, 5), key, acp, ddim_timesteps(100, 20), eta)
    assert np.all(np.isfinite(np.asarray(out)))


def test_guidance_interpolates_and_extrapolates(rng):
    u, a, f = (jnp.asarray(rng.normal(size=(3, 4)), jnp.float32) for _ in range(3))
    np.testing.assert_allclose(np.asarray(guide(u, a, f, 1.0, 1.0)), np.asarray(f), atol=1e-6)
    np.testing.assert_allclose(np.asarray(guide(u, a, f, 0.0, 0.0)), np.asarray(u), atol=1e-6)
    np.testing.assert_allclose(np.asarray(guide(u, a, f, 1.0, 0.0)), np.asarray(a), atol=1e-6)
    want = np.asarray(u) + 2 * (np.asarray(a) - np.asarray(u)) + 3 * (np.asarray(f) - np.asarray(a))
    np.testing.assert_allclose(np.asarray(guide(u, a, f, 2.0, 3.0)), want, atol=1e-5)
