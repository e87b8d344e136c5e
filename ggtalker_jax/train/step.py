"""The jitted training step every stage builds: ``train_step(state, batch, key)``.

A stage writes only its loss, ``loss_fn(model, batch, key) -> (loss, metrics)`` over the global
batch (the mesh's explicit shardings make a mean over the batch a mean over all devices);
:func:`make_train_step` adds the gradient, the optimizer update and the shardings, and jits
it with the state donated, so parameters and optimizer moments are updated in place.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import optax
from flax import nnx
from jax.sharding import Mesh

from ggtalker_jax.train.parallel import batch_sharding, replicated
from ggtalker_jax.train.state import TrainState

LossFn = Callable[[nnx.Module, object, jax.Array], tuple[jax.Array, dict[str, jax.Array]]]


def make_train_step(
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    mesh: Mesh,
    schedule: optax.Schedule | None = None,
) -> Callable[[TrainState, object, jax.Array], tuple[TrainState, dict[str, jax.Array]]]:
    """Build ``train_step(state, batch, key) -> (state, metrics)``.

    ``key`` is the run's key: the step folds its own step count into it, so a loop passes the
    same key every time and dispatches no key op of its own (an eager split of a replicated
    key between steps cost more host time than the A2E step on an H200).

    Args:
      loss_fn: ``(model, batch, key) -> (loss, metrics)``: ``model`` is the module rebuilt from
        the state (``state.model(params)``), ``batch`` the sharded batch pytree, ``loss`` a
        scalar, ``metrics`` a dict of scalars (already averaged over the batch).
      optimizer: the transformation the state was created with.
      mesh: the data mesh: the state and key are replicated, the batch split on its leading
        axis (a batch that the devices do not divide fails in ``shard_batch`` first).
      schedule: the optimizer's learning-rate schedule, reported as ``learning_rate`` (the
        rate this step used); ``None``: not reported.

    Returns:
      The jitted step. ``state`` is donated: do not use it after the call. ``metrics`` holds
      ``loss``, ``grad_norm`` (before clipping), ``param_norm`` (after the update, so a
      finite value vouches for the state the step returns), ``learning_rate`` (with a
      schedule) and the loss function's own entries, as device arrays (reading them is the
      caller's host sync).
    """

    def train_step(state: TrainState, batch, key: jax.Array):
        key = jax.random.fold_in(key, state.step)  # one key per step, made on the device

        def objective(params):
            return loss_fn(state.model(params), batch, key)

        (loss, metrics), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        metrics = {**metrics, "loss": loss, "grad_norm": optax.tree.norm(grads)}
        if schedule is not None:
            with jax.numpy_dtype_promotion("standard"):  # optax mixes the int32 step in
                metrics["learning_rate"] = schedule(state.step)
        state = state.apply_gradients(grads, optimizer)
        metrics["param_norm"] = optax.tree.norm(state.params)
        return state, metrics

    rep = replicated(mesh)
    return jax.jit(
        train_step,
        in_shardings=(rep, batch_sharding(mesh), rep),
        out_shardings=(rep, rep),
        donate_argnums=0,
    )
