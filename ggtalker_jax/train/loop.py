"""The training loop every prior shares: restore or start, step, log, check, save, evaluate.

The loop owns no model knowledge: a stage hands it a state, a jitted step
(:func:`ggtalker_jax.train.step.make_train_step`), a data source and a checkpointer. The host
waits for the device only when it must look at numbers: at a log step, before a save (a
checkpoint is written only after its losses are known to be finite) and at an evaluation.
A data source is deterministic in its position, so a resumed run reads exactly the batches
the uninterrupted run would have read, and with the saved run key (each step folds its own
step count into it, inside the jitted step) draws the same randomness: a
run killed at any moment (SIGKILL included) and rerun ends on the parameters of a run that was
never interrupted, having lost at most one save interval.

A checkpoint is written only once the loss, gradient norm and parameter norm of the steps
that led to it are known to be finite; a fresh run saves its starting state first. SIGTERM (a
scheduler's preemption) ends the step under way, saves it, and raises :class:`Preempted`.
Every log step also records the learning rate, the gradient and parameter norms, the
throughput and (on a GPU) the device's peak memory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import jax
import numpy as np
from jax.sharding import Mesh

from ggtalker_jax.errors import InputError, Preempted
from ggtalker_jax.train.checkpoint import Checkpointer
from ggtalker_jax.train.logging import ProgressBar, TrainLogger
from ggtalker_jax.train.optim import section_optimizer, section_schedule
from ggtalker_jax.train.parallel import replicate, shard_batch
from ggtalker_jax.train.state import TrainState
from ggtalker_jax.train.step import make_train_step

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
      key: the run's key (each step folds its step count into it).
    """

    state: TrainState
    history: list[dict]
    position: int
    key: jax.Array


@dataclasses.dataclass
class _Window:
    """Metrics of the steps since the last log, still on the device."""

    first_step: int = 0
    batch_size: int = 1
    started: float = dataclasses.field(default_factory=time.perf_counter)
    # The run's first window holds the step's compile (and a restore or the step-0 save):
    # its rate would be no rate of training, so the perf scalars start with the second.
    timed: bool = False
    metrics: list[Metrics] = dataclasses.field(default_factory=list)

    def host(self) -> list[dict]:
        return jax.device_get(self.metrics)


# What must be finite for a state to count as good: the loss the step was computed from, its
# gradient, and the parameters it returned (a finite loss can still step to inf parameters).
_FINITE = (
    ("loss", "the loss"),
    ("grad_norm", "the gradient norm"),
    ("param_norm", "the parameter norm"),
)


def _check_finite(values: list[dict], first_step: int, checkpointer: Checkpointer) -> None:
    for offset, metrics in enumerate(values):
        for name, what in _FINITE:
            if name not in metrics:
                continue
            value = float(metrics[name])
            if math.isfinite(value):
                continue
            checkpointer.wait()
            last = checkpointer.latest_step()
            where = (
                f"the last good checkpoint is step {last} in {checkpointer.workdir}"
                if last is not None
                else "no checkpoint was saved"
            )
            raise TrainingDiverged(
                f"step {first_step + offset + 1}: {what} is {value} (not finite); training "
                f"stopped and {where}; lower the learning rate or check the data, then rerun to "
                "resume from it"
            )


def device_memory_gib() -> float | None:
    """Peak bytes in use on the first local device, in GiB, or ``None`` where the backend
    keeps no statistics (CPU)."""
    stats = jax.local_devices()[0].memory_stats()
    if not stats:
        return None
    peak = stats.get("peak_bytes_in_use", stats.get("bytes_in_use"))
    return None if peak is None else peak / 2**30


def _log(window: _Window, step: int, checkpointer, logger, bar, history: list) -> None:
    values = window.host()
    _check_finite(values, window.first_step, checkpointer)
    means = {f"train/{k}": float(np.mean([v[k] for v in values])) for k in values[0]}
    now = time.perf_counter()
    seconds = now - window.started
    if window.timed and seconds > 0 and step > window.first_step:
        means["perf/steps_per_second"] = (step - window.first_step) / seconds
        means["perf/samples_per_second"] = means["perf/steps_per_second"] * window.batch_size
    memory = device_memory_gib()
    if memory is not None:
        means["perf/device_memory_gib"] = memory
    history.append({"step": step, **means})
    if logger is not None:
        logger.scalars(step, means)
    if bar is not None:
        bar.update(step, means["train/loss"])
    window.first_step, window.metrics, window.started = step, [], now
    window.timed = True


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
    elif int(state.step) == 0:
        # A fresh run saves its starting state, so even a run that diverges at its first
        # step leaves a checkpoint to load (and a kill before the first interval resumes).
        checkpointer.save(0, state, position, key)
    return state, position, replicate(key, mesh)


@contextlib.contextmanager
def stop_on_sigterm():
    """An event set by SIGTERM while the block runs (main thread only: elsewhere signals
    cannot be caught, and the event never sets); the previous handler comes back after."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)


def save_preempted(
    checkpointer: Checkpointer, step: int, state, position: int, key, where: str = ""
) -> Preempted:
    """Save ``state`` as step ``step``, wait until it is on disk, and return the
    :class:`Preempted` error to raise (``where``: the job's part, e.g. ``"in the head phase "``)."""
    checkpointer.save(step, state, position, key)
    checkpointer.wait()
    return Preempted(
        f"stopped by SIGTERM {where}at step {step}: saved it in {checkpointer.workdir}; rerun "
        "the same command to resume"
    )


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
      state: the freshly initialised state (the template a checkpoint restores into); it is
        donated to the step, so do not use it (or arrays it shares) after the call.
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
      TrainingDiverged: a non-finite loss, gradient or parameter norm (one line: the step
        and the last good checkpoint, which stays loadable).
      Preempted: SIGTERM arrived; the state after the step under way was saved first.
      KeyboardInterrupt: after saving the current state (when its losses are finite).
    """
    state, position, key = _restore_or_start(checkpointer, state, key, mesh)
    step = int(state.step)
    history: list[dict] = []
    window = _Window(first_step=step, batch_size=data.batch_size)
    # One bar per job: in a multi-process run, process 0 shows it.
    show = progress and jax.process_index() == 0
    bar = ProgressBar(steps, step, data.batch_size) if show else None
    start = time.perf_counter()
    with stop_on_sigterm() as sigterm:
        try:
            while step < steps:
                if sigterm.is_set():
                    if window.metrics:
                        _log(window, step, checkpointer, logger, bar, history)
                    raise save_preempted(checkpointer, step, state, position, key)
                if time_limit is not None and time.perf_counter() - start > time_limit:
                    if window.metrics:
                        _log(window, step, checkpointer, logger, bar, history)
                    break
                # The run's key goes to every step unchanged: the step folds its own step count
                # in (make_train_step), so no key op is dispatched here. On an H200 an eager
                # jax.random.split of the replicated key cost more host time than the A2E step.
                batch = shard_batch(data.batch(position), mesh)
                state, metrics = train_step(state, batch, key)
                step, position = step + 1, position + 1
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
        ``checkpoint_every``, ``keep_checkpoints``, ``eval_every``).
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
    keep = section.keep_checkpoints
    with Checkpointer(workdir, config_json, every, keep, force=force) as ckpt:
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


def train_module(
    module,
    loss_fn,
    data: DataSource,
    workdir,
    config,
    section,
    *,
    mesh: Mesh,
    force: bool = False,
    progress: bool = True,
    time_limit: float | None = None,
    eval_fn: Callable | None = None,
    make_eval: Callable[[TrainLogger], EvalFn] | None = None,
    on_open: Callable[[Checkpointer], None] | None = None,
) -> StageRun:
    """A prior's run from its freshly built module: the section's optimizer and schedule,
    the jitted step over ``loss_fn``, and :func:`train_in_workdir`.

    Args:
      module: the NNX module to train (its ``PRIOR`` parameters).
      loss_fn: ``(module, batch, key) -> (loss, metrics)`` (:func:`make_train_step`).
      data, workdir, mesh, force, progress, time_limit, make_eval, on_open: as
        :func:`train_in_workdir`.
      config: the whole resolved config (its JSON is the run's ``config.json``; its ``seed``
        the run's key).
      section: the stage's config section (the optimizer's fields and the intervals).
      eval_fn: ``(module, step) -> {name: value}`` every ``section.eval_every`` steps.
    """
    optimizer = section_optimizer(section)
    state = TrainState.from_model(module, optimizer)
    train_step = make_train_step(loss_fn, optimizer, mesh, section_schedule(section))
    return train_in_workdir(
        state,
        train_step,
        data,
        workdir,
        config.to_json(),
        section,
        mesh=mesh,
        seed=config.seed,
        force=force,
        progress=progress,
        time_limit=time_limit,
        eval_fn=None if eval_fn is None else (lambda s, step: eval_fn(s.model(), step)),
        make_eval=make_eval,
        on_open=on_open,
    )
