"""An adaptation phase's loop (``train.adapt_phase.run_phase``) on a least-squares toy: SIGTERM
saves the step under way and raises ``Preempted``, a rerun ends on the parameters of a phase
that was never stopped, and a non-finite loss stops it with one line."""

import dataclasses
import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from ggtalker_jax.errors import Preempted
from ggtalker_jax.train import TrainingDiverged, TrainState
from ggtalker_jax.train.adapt_phase import PhaseSpec, run_phase

SPEC = PhaseSpec(
    name="toy",
    steps=12,
    seconds=600.0,
    eval_every=3,
    checkpoint_every=2,
    patience=100,
    min_gain=0.0,
    score_key="neg_loss",
)
OPTIMIZER = optax.adam(0.05)


def make_toy(rng):
    x = jnp.asarray(rng.normal(size=(SPEC.steps, 16, 4)), jnp.float32)
    y = jnp.asarray(rng.normal(size=(SPEC.steps, 16, 2)), jnp.float32)

    def loss(model, position):
        return jnp.mean((model(x[position]) - y[position]) ** 2)

    @jax.jit
    def step(state, position):
        grads = jax.grad(lambda p: loss(state.model(p), position))(state.params)
        return state.apply_gradients(grads, OPTIMIZER), {"loss": loss(state.model(), position)}

    def evaluate(state):  # a score that grows every step: the phase ends on its last state
        return {"neg_loss": float(state.step) - float(loss(state.model(), 0)) * 1e-6}

    return step, evaluate


def fresh_state():
    return TrainState.from_model(nnx.Linear(4, 2, rngs=nnx.Rngs(0)), OPTIMIZER)


def leaves(state):
    return [np.asarray(a) for a in jax.tree.leaves(state.params)]


def test_sigterm_saves_and_a_rerun_ends_where_an_unstopped_phase_does(tmp_path, rng):
    step, evaluate = make_toy(rng)
    straight, _ = run_phase(SPEC, fresh_state(), step, evaluate, tmp_path / "a", "{}", False)
    stop_at = int(rng.integers(1, SPEC.steps - 1))

    def preempted(state, position):  # the scheduler's SIGTERM arrives during a step
        if position == stop_at:
            os.kill(os.getpid(), signal.SIGTERM)
        return step(state, position)

    with pytest.raises(Preempted, match=f"SIGTERM in the toy phase at step {stop_at + 1}"):
        run_phase(SPEC, fresh_state(), preempted, evaluate, tmp_path / "b", "{}", False)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is handed back
    resumed, result = run_phase(SPEC, fresh_state(), step, evaluate, tmp_path / "b", "{}", False)
    assert result.steps == SPEC.steps == int(resumed.step)
    for a, b in zip(leaves(straight), leaves(resumed), strict=True):
        np.testing.assert_array_equal(b, a)


def test_a_nan_loss_stops_the_phase_in_one_line(tmp_path, rng):
    step, evaluate = make_toy(rng)

    def diverging(state, position):
        state, metrics = step(state, position)
        return state, {"loss": metrics["loss"] * jnp.nan if position == 4 else metrics["loss"]}

    spec = dataclasses.replace(SPEC, eval_every=1)
    with pytest.raises(TrainingDiverged, match="adapt phase toy, step 5: the loss is nan"):
        run_phase(spec, fresh_state(), diverging, evaluate, tmp_path / "c", "{}", False)
