"""One adaptation phase's run: steps until its step count, its time budget or a plateau of
its held-out score, with checkpoints it resumes from after a kill.

A phase keeps its own folder ``IDENTITY/phases/<name>/`` (a
:class:`~ggtalker_jax.train.checkpoint.Checkpointer` work directory, one checkpoint kept)
plus ``curve.json`` (the held-out scores so far, rewritten at each checkpoint) and, once
done, ``result.json``; a rerun skips a done phase (restoring its final state) and resumes an
unfinished one from its last checkpoint, with the evaluations up to it. The time budget of a
resumed phase starts again: a kill loses at most ``checkpoint_every`` steps, never the
budget's accounting of a finished phase. SIGTERM saves the step under way and raises
:class:`~ggtalker_jax.errors.Preempted` (``ggtalker adapt`` then exits with status 143).

A phase's budget runs from its first finished step, so the compile of its step (tens of
seconds on a GPU, a minute on a loaded CPU) does not eat a short phase's share. The state it
starts from is evaluated first, and the phase ends on its best evaluated state (early
stopping): a phase that only overfits (FLAME corrections on exact tracking) gives back what
it was handed.

The step function owns the model: ``step(state, position) -> (state, metrics)``, with
``metrics["loss"]`` a device scalar; ``evaluate(state) -> {name: float}`` whose
``score_key`` entry grows as the phase improves (a PSNR, or a negated loss).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import jax

from ggtalker_jax.outputs import write_text_atomic
from ggtalker_jax.train.checkpoint import Checkpointer
from ggtalker_jax.train.loop import TrainingDiverged, save_preempted, stop_on_sigterm
from ggtalker_jax.train.state import TrainState

RESULT_NAME = "result.json"
CURVE_NAME = "curve.json"


@dataclasses.dataclass
class PhaseResult:
    """A finished phase.

    Attributes:
      name: the phase.  steps: steps taken in all.  seconds: wall time of its last run.
      curve: ``[{"step", "t", <scores>}]`` held-out scores (``t``: seconds since the
        adaptation began, for the curve over time).
      best: the best ``score_key`` value seen (the state the phase ended on), or ``None``
        (skipped).
      stop: why it stopped: ``steps``, ``time``, ``plateau`` or ``skipped``.
    """

    name: str
    steps: int
    seconds: float
    curve: list[dict]
    best: float | None
    stop: str

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class PhaseSpec:
    """What to run: the phase's name, limits and cadence."""

    name: str
    steps: int
    seconds: float
    eval_every: int
    checkpoint_every: int
    patience: int
    min_gain: float
    score_key: str
    t_offset: float = 0.0  # seconds of adaptation before this phase began


class _Best:
    """The best evaluation so far and a device copy of its state (the next step donates the
    live one)."""

    def __init__(self, key: str):
        self.key, self.score, self.state = key, -math.inf, None

    def offer(self, entry: dict, state: TrainState) -> None:
        if entry[self.key] > self.score:
            self.score = entry[self.key]
            self.state = jax.tree.map(lambda x: x.copy(), state)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None


def _plateaued(curve: list[dict], key: str, patience: int, min_gain: float) -> bool:
    """No evaluation in the last ``patience`` beat the best before them by ``min_gain``."""
    if len(curve) <= patience:
        return False
    before = max(c[key] for c in curve[:-patience])
    return max(c[key] for c in curve[-patience:]) < before + min_gain


def _check_loss(loss: float, spec: PhaseSpec, step: int, workdir: Path) -> None:
    if not math.isfinite(loss):
        raise TrainingDiverged(
            f"adapt phase {spec.name}, step {step}: the loss is {loss} (not finite); the last "
            f"good checkpoint is in {workdir}; lower the adapt.lr_* rates, then rerun to resume"
        )


def run_phase(
    spec: PhaseSpec,
    state: TrainState,
    step_fn: Callable[[TrainState, int], tuple[TrainState, dict]],
    evaluate: Callable[[TrainState], dict[str, float]],
    workdir: Path,
    config_json: str,
    progress: bool = True,
) -> tuple[TrainState, PhaseResult]:
    """Run (or resume, or skip as done) one phase (module docstring).

    Args:
      spec: the phase's limits.
      state: the freshly built state (the template a checkpoint restores into).
      step_fn: one step at a data position.
      evaluate: the held-out scores of a state (host floats).
      workdir: the phase's folder.
      config_json: the resolved config (a resume with another config is refused).
      progress: show a progress bar with the held-out score.

    Raises:
      TrainingDiverged: a non-finite loss.
      InputError: as :class:`~ggtalker_jax.train.checkpoint.Checkpointer`.
    """
    key = jax.random.key(0)  # the phase's randomness comes from its positions, not a key
    with Checkpointer(workdir, config_json, spec.checkpoint_every, keep=1) as ckpt:
        done = _read_json(workdir / RESULT_NAME)
        restored = ckpt.restore(state)
        if restored is not None:
            state = restored[0]
        if done is not None and restored is not None:
            return state, PhaseResult(**done)
        step = int(state.step)
        curve = [c for c in (_read_json(workdir / CURVE_NAME) or []) if c["step"] <= step]
        stop = "steps"
        bar = None
        if progress and spec.steps > step:
            from tqdm import tqdm

            bar = tqdm(
                total=spec.steps,
                initial=step,
                desc=f"adapt {spec.name}",
                unit="step",
                dynamic_ncols=True,
            )
        start = time.perf_counter()
        best = _Best(spec.score_key)
        if not curve:  # the starting point: a phase that never beats it keeps it
            curve.append({"step": step, "t": round(spec.t_offset, 2), **evaluate(state)})
        best.offer(curve[-1], state)
        clock = None  # the budget runs from the first finished step (compiles excluded)
        metrics = None
        with stop_on_sigterm() as stopping:
            try:
                while step < spec.steps:
                    if stopping.is_set():  # a scheduler's preemption: keep the step under way
                        if metrics is not None:
                            _check_loss(float(metrics["loss"]), spec, step, workdir)
                        write_text_atomic(workdir / CURVE_NAME, json.dumps(curve))
                        where = f"in the {spec.name} phase "
                        raise save_preempted(ckpt, step, state, step, key, where)
                    if clock is not None and time.perf_counter() - clock > spec.seconds:
                        stop = "time"
                        break
                    state, metrics = step_fn(state, step)
                    step += 1
                    if clock is None:
                        jax.block_until_ready(metrics["loss"])
                        clock = time.perf_counter()
                    if bar is not None:
                        bar.update(1)
                    if step % spec.eval_every == 0 or step == spec.steps:
                        _check_loss(float(metrics["loss"]), spec, step, workdir)
                        scores = evaluate(state)
                        t = spec.t_offset + time.perf_counter() - start
                        curve.append({"step": step, "t": round(t, 2), **scores})
                        best.offer(curve[-1], state)
                        if bar is not None:
                            bar.set_postfix({k: f"{v:.2f}" for k, v in scores.items()})
                        if _plateaued(curve, spec.score_key, spec.patience, spec.min_gain):
                            stop = "plateau"
                            break
                    if step % spec.checkpoint_every == 0:
                        _check_loss(float(metrics["loss"]), spec, step, workdir)
                        ckpt.save(step, state, step, key)
                        write_text_atomic(workdir / CURVE_NAME, json.dumps(curve))
            finally:
                if bar is not None:
                    bar.close()
        if metrics is not None:
            _check_loss(float(metrics["loss"]), spec, step, workdir)
        if curve[-1]["step"] != step:
            scores = evaluate(state)
            t = spec.t_offset + time.perf_counter() - start
            curve.append({"step": step, "t": round(t, 2), **scores})
            best.offer(curve[-1], state)
        if best.state is not None and best.score > curve[-1][spec.score_key]:
            # Keep the best held-out state (early stopping); its step count stays the run's.
            state = best.state.replace(step=state.step)
        ckpt.save(step, state, step, key)
        ckpt.wait()
        seconds = time.perf_counter() - start
        result = PhaseResult(spec.name, step, round(seconds, 2), curve, best.score, stop)
        write_text_atomic(workdir / CURVE_NAME, json.dumps(curve))
        write_text_atomic(workdir / RESULT_NAME, json.dumps(result.to_json(), indent=2))
    return state, result
