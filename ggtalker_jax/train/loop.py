"""The training loop every prior shares: restore or start, step, log, check, save, evaluate.

The loop owns no model knowledge: a stage hands it a state, a jitted step
(:func:`ggtalker_jax.train.step.make_train_step`), a data source and a checkpointer. The host
waits for the device only when it must look at numbers: at a log step, before a save (a
checkpoint is written only after its losses are known to be finite) and at an evaluation.
A data source is deterministic in its position, so a resumed run reads exactly the batches
the uninterrupted run would have read, and with the saved key draws the same randomness.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import jax
import numpy as np
from jax.sharding import Mesh

from ggtalker_jax.errors import InputError
from ggtalker_jax.train.checkpoint import Checkpointer
from ggtalker_jax.train.logging import ProgressBar, TrainLogger
from ggtalker_jax.train.parallel import replicate, shard_batch
from ggtalker_jax.train.state import TrainState

Metrics = dict[str, jax.Array]
StepFn = Callable[[TrainState, Any, jax.Array], tuple[TrainState, Metrics]]
EvalFn = Callable[[TrainState, int], Mapping[str, float]]


class DataSource(Protocol):
    """Batches by position: ``batch(position)`` is the same pytree every time it is asked."""

    batch_size: int

    def batch(self, position: int) -> Any: ...


class TrainingDiverged(InputError):
    """A step produced a non-finite loss; the run stopped without saving that state."""


@dataclasses.dataclass
class TrainResult:
    """What :func:`run_training` returns.

    Attributes:
      state: the final state (replicated on the mesh).
      history: one dict per log step and per evaluation: ``{"step": s, "train/loss": ...}``.
      position: the data position the next step would read.
      key: the key the next step would split.
    """

    state: TrainState
    history: list[dict]
    position: int
    key: jax.Array


@dataclasses.dataclass
class _Window:
    """Metrics of the steps since the last log, still on the device."""

    first_step: int = 0
    metrics: list[Metrics] = dataclasses.field(default_factory=list)

    def host(self) -> list[dict]:
        return jax.device_get(self.metrics)


def _check_finite(values: list[dict], first_step: int, checkpointer: Checkpointer) -> None:
    for offset, metrics in enumerate(values):
        loss = float(metrics["loss"])
        if not math.isfinite(loss):
            checkpointer.wait()
            last = checkpointer.latest_step()
            where = (
                f"the last good checkpoint is step {last} in {checkpointer.workdir}"
                if last is not None
                else "no checkpoint was saved"
            )
            raise TrainingDiverged(
                f"step {first_step + offset + 1}: the loss is {loss} (not finite); training "
                f"stopped and {where}; lower the learning rate or check the data, then rerun to "
                "resume from it"
            )


def _log(window: _Window, step: int, checkpointer, logger, bar, history: list) -> None:
    values = window.host()
    _check_finite(values, window.first_step, checkpointer)
    means = {f"train/{k}": float(np.mean([v[k] for v in values])) for k in values[0]}
    history.append({"step": step, **means})
    if logger is not None:
        logger.scalars(step, means)
    if bar is not None:
        bar.update(step, means["train/loss"])
    window.first_step, window.metrics = step, []


def _evaluate(eval_fn: EvalFn, state, step: int, logger, history: list) -> None:
    scores = {f"eval/{k}": float(v) for k, v in eval_fn(state, step).items()}
    history.append({"step": step, **scores})
    if logger is not None:
        logger.scalars(step, scores)


def _restore_or_start(checkpointer, state, key, mesh):
    state = replicate(state, mesh)
    restored = checkpointer.restore(state)
    position = 0
    if restored is not None:
        state, position, key = restored
    return state, position, replicate(key, mesh)


def run_training(
    state: TrainState,
    train_step: StepFn,
    data: DataSource,
    checkpointer: Checkpointer,
    *,
    mesh: Mesh,
    key: jax.Array,
    steps: int,
    log_every: int = 10,
    logger: TrainLogger | None = None,
    eval_fn: EvalFn | None = None,
    eval_every: int = 0,
    progress: bool = True,
    time_limit: float | None = None,
) -> TrainResult:
    """Train ``state`` to ``steps`` steps, resuming from ``checkpointer``'s newest checkpoint.

    Args:
      state: the freshly initialised state (the template a checkpoint restores into).
      train_step: the jitted, donating step.
      data: the batches (:class:`DataSource`); position ``p`` is step ``p``'s batch on a
        fresh run.
      checkpointer: saves every ``checkpointer.every`` steps and at the end.
      mesh: the data mesh (the batch is split on it, the state and key replicated).
      key: the run's key (replaced by the checkpoint's on a resume).
      steps: the step to stop at (a resumed run past it only saves).
      log_every: steps between scalar logs (the host syncs only then).
      logger: TensorBoard scalars, or ``None``.
      eval_fn: ``(state, step) -> {name: value}``, called every ``eval_every`` steps (0: never).
      progress: show the progress bar.
      time_limit: seconds after which the run stops early with a checkpoint (a rerun
        continues from it); ``None``: no limit.

    Raises:
      TrainingDiverged: a non-finite loss (one line: the step and the last good checkpoint).
      KeyboardInterrupt: after saving the current state (when its losses are finite).
    """
    state, position, key = _restore_or_start(checkpointer, state, key, mesh)
    step = int(state.step)
    history: list[dict] = []
    window = _Window(first_step=step)
    bar = ProgressBar(steps, step, data.batch_size) if progress else None
    start = time.perf_counter()
    try:
        while step < steps:
            if time_limit is not None and time.perf_counter() - start > time_limit:
                if window.metrics:
                    _log(window, step, checkpointer, logger, bar, history)
                break
            # The key advances only once the step has run, so a Ctrl-C inside the data
            # source or the step saves the key the resumed step must split again.
            next_key, step_key = jax.random.split(key)
            batch = shard_batch(data.batch(position), mesh)
            state, metrics = train_step(state, batch, step_key)
            key, step, position = next_key, step + 1, position + 1
            window.metrics.append(metrics)
            last = step == steps
            if step % log_every == 0 or last:
                _log(window, step, checkpointer, logger, bar, history)
            if checkpointer.should_save(step) or last:
                _check_finite(window.host(), window.first_step, checkpointer)
                checkpointer.save(step, state, position, key)
            if eval_fn is not None and eval_every and (step % eval_every == 0 or last):
                _evaluate(eval_fn, state, step, logger, history)
            if bar is not None:
                bar.update(step)
        checkpointer.save(step, state, position, key)  # a no-op unless nothing ran
    except KeyboardInterrupt:
        _check_finite(window.host(), window.first_step, checkpointer)
        checkpointer.save(step, state, position, key)
        checkpointer.wait()
        raise
    finally:
        if bar is not None:
            bar.close()
        if logger is not None:
            logger.flush()
    checkpointer.wait()
    return TrainResult(state=state, history=history, position=position, key=key)


@dataclasses.dataclass
class StageRun:
    """What :func:`train_in_workdir` returns: the loop's result and its wall-clock rate."""

    result: TrainResult
    seconds: float
    samples_per_second: float


def train_in_workdir(
    state: TrainState,
    train_step: StepFn,
    data: DataSource,
    workdir,
    config_json: str,
    section,
    *,
    mesh: Mesh,
    seed: int,
    force: bool = False,
    progress: bool = True,
    time_limit: float | None = None,
    eval_fn: EvalFn | None = None,
    make_eval: Callable[[TrainLogger], EvalFn] | None = None,
    on_open: Callable[[Checkpointer], None] | None = None,
) -> StageRun:
    """A stage's whole run in its work directory: open (or resume) the checkpoints, log to
    TensorBoard, run :func:`run_training`, and time it.

    Args:
      state, train_step, data, mesh: as :func:`run_training`.
      workdir: the run's folder (:class:`Checkpointer`).
      config_json: the resolved config, compared with the folder's.
      section: the stage's config section (``steps``, ``batch_size``, ``log_every``,
        ``checkpoint_every``, ``eval_every``).
      seed: the run's key seed (a resume uses the checkpoint's key).
      force: start over (removes only the run's own files).
      progress: show the progress bar.
      time_limit: stop after this many seconds with a checkpoint.
      eval_fn: ``(state, step) -> {name: value}`` every ``section.eval_every`` steps, or
      make_eval: ``logger -> eval_fn``, for an evaluation that writes to the run's logs.
      on_open: called with the open checkpointer before training (a stage's own files).

    Raises:
      InputError: as :class:`Checkpointer` and :func:`run_training`.
    """
    from pathlib import Path

    start = time.perf_counter()
    every = section.checkpoint_every
    with Checkpointer(workdir, config_json, every, force=force) as ckpt:
        if on_open is not None:
            on_open(ckpt)
        first = ckpt.latest_step() or 0
        logger = TrainLogger(Path(workdir))
        if eval_fn is None and make_eval is not None:
            eval_fn = make_eval(logger)
        try:
            result = run_training(
                state,
                train_step,
                data,
                ckpt,
                mesh=mesh,
                key=jax.random.key(seed),
                steps=section.steps,
                log_every=section.log_every,
                logger=logger,
                eval_fn=eval_fn,
                eval_every=section.eval_every,
                progress=progress,
                time_limit=time_limit,
            )
        finally:
            logger.close()
    seconds = time.perf_counter() - start
    done = max(int(result.state.step) - first, 0)
    return StageRun(result, seconds, done * section.batch_size / max(seconds, 1e-9))
