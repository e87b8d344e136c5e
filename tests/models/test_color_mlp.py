"""The color MLP: zero at initialisation, identity features selected by filter, one optimizer
step, save -> load, no retracing, head-local view directions, shape errors."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from ggtalker_jax.config.e2v import E2VConfig
from ggtalker_jax.errors import InputError
from ggtalker_jax.geometry.rotations import axis_angle_to_matrix
from ggtalker_jax.models.color_mlp import ColorMLP, head_local_view_dirs, rotation_6d
from ggtalker_jax.models.variables import IDENTITY, PRIOR, IdentityParam
from ggtalker_jax.types import FlameParams

T, N, E, S = 3, 64, 10, 20
TINY = E2VConfig(color_feature_dim=8, color_hidden=16, color_layers=2)


def _inputs(rng):
    means = rng.normal(scale=0.1, size=(T, N, 3)).astype(np.float32)
    params = FlameParams.zeros(S, E, (T,)).replace(
        expression=rng.normal(size=(T, E)),
        jaw_pose=rng.uniform(0, 0.3, size=(T, 3)),
        global_pose=rng.normal(scale=0.2, size=(T, 3)),
    )
    return (
        jnp.asarray(rng.uniform(size=(T, N, 3)), jnp.float32),
        jnp.asarray(means),
        params,
        jnp.asarray(rng.normal(size=(T, 3)) + np.array([0.0, 0.0, 1.0]), jnp.float32),
    )


@jax.jit
def _apply(graphdef, state, inputs):
    return nnx.merge(graphdef, state)(*inputs)


def _toy_loss(graphdef, state, inputs, target):
    return jnp.mean((nnx.merge(graphdef, state)(*inputs) - target) ** 2)


@functools.partial(jax.jit, static_argnums=(0,))
def _train_step(optimizer, graphdef, state, opt_state, inputs, target):
    loss, grads = jax.value_and_grad(_toy_loss, argnums=1)(graphdef, state, inputs, target)
    with jax.numpy_dtype_promotion("standard"):  # optax mixes its int32 count with floats
        updates, opt_state = optimizer.update(grads, opt_state, state)
    return optax.apply_updates(state, updates), opt_state, loss


def test_zero_at_initialisation(rng):
    mlp = ColorMLP(N, E, TINY, nnx.Rngs(0))
    out = _apply(*nnx.split(mlp), _inputs(rng))
    assert out.shape == (T, N, 3) and out.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(out), 0.0)


def test_identity_features_are_selected_by_filter():
    mlp = ColorMLP(N, E, TINY, nnx.Rngs(0))
    identity = jax.tree.leaves(nnx.state(mlp, IDENTITY))
    assert [x.shape for x in identity] == [(N, TINY.color_feature_dim)]
    assert isinstance(mlp.features, IdentityParam)
    assert np.std(np.asarray(identity[0])) > 0  # random: each texel starts with its own code
    prior = jax.tree.leaves(nnx.state(mlp, PRIOR))
    everything = jax.tree.leaves(nnx.state(mlp, nnx.Param))
    assert len(prior) + 1 == len(everything)
    assert all(x.dtype == jnp.float32 for x in everything)


def test_one_optimizer_step_lowers_a_toy_loss(rng):
    mlp = ColorMLP(N, E, TINY, nnx.Rngs(1))
    inputs = _inputs(rng)
    target = jnp.asarray(rng.normal(scale=0.1, size=(T, N, 3)), jnp.float32)
    graphdef, state = nnx.split(mlp)
    optimizer = optax.adam(1e-3)
    opt_state = optimizer.init(state)
    state1, opt_state, loss0 = _train_step(optimizer, graphdef, state, opt_state, inputs, target)
    _, _, loss1 = _train_step(optimizer, graphdef, state1, opt_state, inputs, target)
    assert float(loss1) < float(loss0)
    # After one step the output moves (the zero last layer got a gradient).
    assert np.abs(np.asarray(_apply(graphdef, state1, inputs))).max() > 0


def test_save_load_gives_identical_outputs_without_retracing(rng, count_traces):
    mlp = ColorMLP(N, E, TINY, nnx.Rngs(2))
    # Make the output non-trivial: a non-zero last layer.
    mlp.out.kernel[...] = jnp.asarray(rng.normal(size=mlp.out.kernel.shape), jnp.float32)
    inputs = _inputs(rng)
    out = _apply(*nnx.split(mlp), inputs)
    assert np.abs(np.asarray(out)).max() > 0
    saved = jax.tree.map(np.asarray, nnx.state(mlp))
    fresh = ColorMLP(N, E, TINY, nnx.Rngs(3))
    nnx.update(fresh, saved)
    with count_traces() as traces:
        again = _apply(*nnx.split(fresh), inputs)
    np.testing.assert_array_equal(np.asarray(again), np.asarray(out))
    assert traces() == 0


def test_bfloat16_activations_keep_float32_params(rng):
    config = dataclasses.replace(TINY, compute_dtype="bfloat16")
    mlp = ColorMLP(N, E, config, nnx.Rngs(0))
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(nnx.state(mlp)))
    out = _apply(*nnx.split(mlp), _inputs(rng))
    assert out.dtype == jnp.float32 and out.shape == (T, N, 3)


def test_view_directions_are_head_local(rng):
    """Turning the head and the camera together about the head leaves the view unchanged."""
    means = jnp.asarray(rng.normal(scale=0.1, size=(T, N, 3)), jnp.float32)
    center = jnp.asarray(rng.normal(size=(T, 3)) + np.array([0.0, 0.0, 1.0]), jnp.float32)
    pose = jnp.asarray(rng.normal(scale=0.5, size=(T, 3)), jnp.float32)
    rotation = axis_angle_to_matrix(pose)  # [T, 3, 3]
    turn = lambda x: jnp.einsum("tij,t...j->t...i", rotation, x, precision="highest")
    still = head_local_view_dirs(means, center, jnp.zeros((T, 3), jnp.float32))
    turned = head_local_view_dirs(turn(means), turn(center), pose)
    np.testing.assert_allclose(np.asarray(turned), np.asarray(still), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(still), axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(
        np.asarray(rotation_6d(jnp.zeros((3,), jnp.float32))), [1, 0, 0, 1, 0, 0]
    )


def test_refuses_inputs_of_the_wrong_size(rng):
    mlp = ColorMLP(N, E, TINY, nnx.Rngs(0))
    colors, means, params, center = _inputs(rng)
    with pytest.raises(InputError, match=r"means has shape \(3, 63, 3\)"):
        mlp(colors[:, 1:], means[:, 1:], params, center)
    with pytest.raises(InputError, match="params.expression"):
        mlp(colors, means, params.replace(expression=jnp.zeros((T, E + 1))), center)
