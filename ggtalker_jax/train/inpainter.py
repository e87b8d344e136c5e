"""Training the Body Inpainter's prior (``ggtalker inpainter train``).

A batch is frames and head masks (:mod:`ggtalker_jax.data.inpainter`); the step's key draws,
per example, the hole radius, the drawn head's jitter, edge softness and colour, and the
examples are made on the device (:func:`~ggtalker_jax.data.inpainter.examples_from_draws`).
The loss is measured over the hole only (outside it the output is the frame itself):
``L1 + ssim_weight · D-SSIM``, where ``L1`` is the mean absolute error over the hole's
pixels and channels and ``D-SSIM = (1 - SSIM) / 2`` with the SSIM map (dm-pix) averaged over
the hole. Reported beside it: PSNR over the hole (``hole_psnr``), over the full frame
(``psnr``), and the hole PSNR of the trivial answer, the drawn head composited over the holed
frame (``baseline_hole_psnr``: what a fresh network outputs).

The random draws are made for the global batch before the network runs, so one device and
eight give the same numbers; each device then makes and scores its slice under
``jax.shard_map``.

Sections: mesh -> data -> model/optimizer -> restore -> step -> evals -> loop.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ggtalker_jax.config import Config
from ggtalker_jax.config.inpainter import InpainterConfig
from ggtalker_jax.data.inpainter import (
    InpainterBatch,
    ProceduralInpainter,
    draw_example_randomness,
    examples_from_draws,
    make_examples,
    make_inpainter_source,
)
from ggtalker_jax.eval import metrics
from ggtalker_jax.models.inpainter import BodyInpainter
from ggtalker_jax.render.compose import composite, over
from ggtalker_jax.train.checkpoint import read_run_config, restore_newest_model
from ggtalker_jax.train.loop import TrainResult, train_module
from ggtalker_jax.train.optim import section_optimizer
from ggtalker_jax.train.parallel import (
    check_batch,
    make_data_mesh,
    mean_loss,
    sharded_example_terms,
)

MAX_PSNR_MSE = 1e-10
"""MSE floor of the reported PSNRs (100 dB): a perfect region is not infinitely good."""

# -- data --------------------------------------------------------------------------------


def heldout_source(model, config: InpainterConfig) -> ProceduralInpainter:
    """The held-out people (a procedural world of seed ``data.seed + 1``), whatever
    ``data.source`` the run trained on.

    Raises:
      InputError: ``data.heldout`` is 0.
    """
    data = dataclasses.replace(config.data, source="procedural")
    return ProceduralInpainter(model, data, 1, split="heldout")


# -- model/optimizer -------------------------------------------------------------------


def build_inpainter(config: InpainterConfig, seed: int = 0) -> BodyInpainter:
    """A freshly initialised Body Inpainter (outputs the drawn head over the holed frame)."""
    return BodyInpainter(config, nnx.Rngs(seed))


# -- restore -----------------------------------------------------------------------------


def restore_inpainter_run(workdir: str | Path):
    """The inpainter of a run's newest checkpoint.

    Returns:
      ``(inpainter, InpainterConfig, run config dict, step)``.

    Raises:
      InputError: no run there, or no checkpoint yet.
    """
    from ggtalker_jax.config.inpainter import inpainter_config_from_dict

    text, run_config, config = read_run_config(
        workdir, "inpainter", inpainter_config_from_dict, "an inpainter", "ggtalker inpainter train"
    )
    inpainter = build_inpainter(config, int(run_config.get("seed", 0)))
    inpainter, step = restore_newest_model(
        workdir, text, inpainter, section_optimizer(config), config.checkpoint_every
    )
    return inpainter, config, run_config, step


# -- step --------------------------------------------------------------------------------


def _psnr_of(mse: jax.Array) -> jax.Array:
    return -10.0 * jnp.log10(jnp.maximum(mse, MAX_PSNR_MSE))


def _hole_mean(values: jax.Array, hole: jax.Array) -> jax.Array:
    """Mean of ``values [B, H, W, C]`` over the hole ``[B, H, W]`` (0 for an empty hole)."""
    total = jnp.sum(values * hole[..., None], axis=(-3, -2, -1))
    return total / (jnp.maximum(jnp.sum(hole, axis=(-2, -1)), 1.0) * values.shape[-1])


def baseline_prediction(batch: InpainterBatch) -> jax.Array:
    """The trivial answer ``[B, H, W, 3]``: the drawn head over the holed frame, the rest of
    the hole black, composited into the frame (what a fresh inpainter outputs)."""
    holed = batch.frame * (1.0 - batch.hole)[..., None]
    return composite(over(batch.head_rgb, batch.head_alpha, holed), batch.frame, batch.hole)


def example_terms(inpainter, batch: InpainterBatch, config: InpainterConfig) -> dict:
    """Per-example loss terms and metrics ``[B]`` of any :class:`InpainterBatch`: ``loss``
    (module docstring), ``l1``, ``dssim``, ``hole_psnr``, ``psnr`` (full frame) and
    ``baseline_hole_psnr``. Only ``config.ssim_weight`` is read."""
    pred = inpainter(batch.head_rgb, batch.head_alpha, batch.frame, batch.hole)
    target, hole = batch.target, batch.hole
    l1 = _hole_mean(jnp.abs(pred - target), hole)
    r = metrics.SSIM_FILTER // 2
    ssim_hole = metrics.ssim_map(pred, target)  # [B, H - 2r, W - 2r]
    inner = hole[..., r:-r, r:-r]
    ssim = jnp.sum(ssim_hole * inner, axis=(-2, -1)) / jnp.maximum(
        jnp.sum(inner, axis=(-2, -1)), 1.0
    )
    dssim = (1.0 - ssim) / 2.0
    baseline = baseline_prediction(batch)
    return {
        "loss": l1 + config.ssim_weight * dssim,
        "l1": l1,
        "dssim": dssim,
        "hole_psnr": _psnr_of(_hole_mean((pred - target) ** 2, hole)),
        "psnr": _psnr_of(jnp.mean((pred - target) ** 2, axis=(-3, -2, -1))),
        "baseline_hole_psnr": _psnr_of(_hole_mean((baseline - target) ** 2, hole)),
    }


def make_loss_fn(config: InpainterConfig, mesh):
    """``loss_fn(inpainter, batch, key) -> (loss, metrics)`` over a
    :class:`~ggtalker_jax.data.inpainter.FrameBatch` (module docstring): the draws for the
    global batch from ``key``, then each device's examples and terms under ``shard_map``."""

    def terms_of(inpainter, batch, draws):
        examples = examples_from_draws(batch.frames, batch.head_mask, draws, config.data)
        return example_terms(inpainter, examples, config)

    def loss_fn(inpainter, batch, key):
        size, height = batch.frames.shape[:2]
        draws = draw_example_randomness(key, size, height, config.data)
        return mean_loss(sharded_example_terms(terms_of, mesh, inpainter, batch, draws))

    return loss_fn


# -- evals -------------------------------------------------------------------------------

EVAL_FRAMES_PER_PERSON = 4
GRID_ROWS = 8
"""Examples shown in the grid (all are scored)."""
GRID_COLUMNS = ("holed frame", "drawn head", "ours", "ground truth", "error x4")
_EVAL_STREAM = 7  # fold_in of the data seed's key: the held-out draws


def heldout_examples(source, config: InpainterConfig) -> InpainterBatch:
    """The evaluation set: :data:`EVAL_FRAMES_PER_PERSON` evenly spaced frames of every
    person of ``source``, with draws of the training distribution from a key fixed by the
    data seed (so a run and its exported prior are scored on the same examples)."""
    frames = source.evaluation_frames(EVAL_FRAMES_PER_PERSON)
    key = jax.random.fold_in(jax.random.key(config.data.seed), _EVAL_STREAM)
    return make_examples(frames.frames, frames.head_mask, key, config.data)


@jax.jit
def _predict(graphdef, state, batch: InpainterBatch):
    return nnx.merge(graphdef, state)(batch.head_rgb, batch.head_alpha, batch.frame, batch.hole)


def predict(inpainter, batch: InpainterBatch, chunk: int = 16) -> np.ndarray:
    """The inpainter's frames ``[B, H, W, 3]`` (host), in fixed-size chunks (the last one
    padded), so one compiled call serves any batch."""
    graphdef, state = nnx.split(inpainter)
    size = batch.batch_size
    parts = []
    for start in range(0, size, chunk):
        pick = np.minimum(np.arange(start, start + chunk), size - 1)
        part = jax.tree.map(lambda x, p=pick: x[p], batch)
        parts.append(np.asarray(_predict(graphdef, state, part))[: min(chunk, size - start)])
    return np.concatenate(parts)


def _scores(pred, target, hole) -> dict[str, float]:
    return {
        "hole_psnr": float(jnp.mean(metrics.masked_psnr(pred, target, hole))),
        "hole_ssim": float(jnp.mean(metrics.masked_ssim(pred, target, hole))),
        "psnr": float(jnp.mean(metrics.psnr(pred, target))),
        "ssim": float(jnp.mean(metrics.ssim(pred, target))),
    }


def comparison_grid(batch: InpainterBatch, pred: np.ndarray, rows: int = GRID_ROWS):
    """A PIL image: per example, :data:`GRID_COLUMNS` (error = absolute error x4)."""
    from ggtalker_jax.eval.report import contact_sheet

    to_u8 = lambda x: (np.clip(np.asarray(x), 0.0, 1.0) * 255.0).round().astype(np.uint8)
    frame, hole = np.asarray(batch.frame), np.asarray(batch.hole)[..., None]
    lines = []
    for i in range(min(rows, frame.shape[0])):
        error = 4.0 * np.abs(pred[i] - frame[i])
        cells = (frame[i] * (1.0 - hole[i]), batch.head_rgb[i], pred[i], frame[i], error)
        lines.append(np.stack([to_u8(c) for c in cells]))
    return contact_sheet(lines, col_labels=GRID_COLUMNS)


def evaluate_inpainter(inpainter, examples: InpainterBatch, out_dir=None) -> dict:
    """Score an inpainter and the baseline (:func:`baseline_prediction`) on ``examples``.

    Args:
      inpainter: the network.
      examples: e.g. :func:`heldout_examples`.
      out_dir: where ``metrics.json`` and ``grid.png`` go (``None``: nothing written).

    Returns:
      ``{"examples", "image_size", "ours": {metric: mean}, "baseline": {...},
      "hole_psnr_gain_db"}`` with metrics ``hole_psnr``, ``hole_ssim``, ``psnr``, ``ssim``.
    """
    pred = predict(inpainter, examples)
    target, hole = np.asarray(examples.target), np.asarray(examples.hole)
    ours = _scores(pred, target, hole)
    baseline = _scores(np.asarray(baseline_prediction(examples)), target, hole)
    report = {
        "examples": examples.batch_size,
        "image_size": int(target.shape[1]),
        "ours": ours,
        "baseline": baseline,
        "hole_psnr_gain_db": ours["hole_psnr"] - baseline["hole_psnr"],
    }
    if out_dir is not None:
        _write_report(Path(out_dir), report, comparison_grid(examples, pred))
    return report


def _write_report(out: Path, report: dict, grid) -> None:
    """``grid.png``, then ``metrics.json`` (last: a folder with it is complete)."""
    from ggtalker_jax.outputs import atomic_file, write_text_atomic

    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").unlink(missing_ok=True)
    with atomic_file(out / "grid.png") as tmp:
        grid.save(tmp)
    write_text_atomic(out / "metrics.json", json.dumps(report, indent=2, sort_keys=True) + "\n")


def summary_table(report: dict) -> list[str]:
    """The one-screen table of a report."""
    lines = [f"{'':<10}{'hole PSNR':>11}{'hole SSIM':>11}{'PSNR':>8}{'SSIM':>8}"]
    for name in ("ours", "baseline"):
        row = report[name]
        lines.append(
            f"{name:<10}{row['hole_psnr']:>11.2f}{row['hole_ssim']:>11.3f}"
            f"{row['psnr']:>8.2f}{row['ssim']:>8.3f}"
        )
    lines.append(
        f"{report['examples']} held-out frames at {report['image_size']}²; the inpainter "
        f"gains {report['hole_psnr_gain_db']:+.2f} dB of hole PSNR over the drawn head "
        "composited on the holed frame"
    )
    return lines


def make_heldout_eval(model, config: InpainterConfig, logger):
    """The run's own evaluation every ``eval_every`` steps: the held-out scores and the grid
    in TensorBoard."""
    examples = heldout_examples(heldout_source(model, config), config)

    def evaluate(state, step: int) -> dict:
        inpainter = state.model()
        pred = predict(inpainter, examples)
        logger.images(step, "heldout", np.asarray(comparison_grid(examples, pred)))
        psnr = metrics.masked_psnr(pred, np.asarray(examples.target), np.asarray(examples.hole))
        return {"heldout_hole_psnr": float(jnp.mean(psnr))}

    return evaluate


# -- loop --------------------------------------------------------------------------------


@dataclasses.dataclass
class InpainterRun:
    """What :func:`train_inpainter` returns: the trained network and the run's record."""

    inpainter: BodyInpainter
    result: TrainResult
    seconds: float
    samples_per_second: float


def train_inpainter(
    config: Config,
    workdir: str | Path,
    force: bool = False,
    progress: bool = True,
    time_limit: float | None = None,
    *,
    model=None,
    data=None,
    eval_fn=None,
) -> InpainterRun:
    """Train (or resume) the Body Inpainter of ``config.inpainter`` in ``workdir``.

    Args:
      config: the whole resolved config (written beside the checkpoints).
      workdir: the run's folder: ``config.json``, ``checkpoints/``, ``tensorboard/``.
      force: start over (removes only the run's own files).
      progress: show the progress bar.
      time_limit: stop after this many seconds with a checkpoint (a rerun continues).
      model: the FLAME model of the procedural world (default: ``config.flame_model``, or
        the shipped head).
      data: the training source, if already made (a ``DataSource`` of
        :class:`~ggtalker_jax.data.inpainter.FrameBatch` es); default
        :func:`~ggtalker_jax.data.inpainter.make_inpainter_source`.
      eval_fn: ``(inpainter, step) -> {name: value}`` every ``inpainter.eval_every`` steps
        (default: :func:`make_heldout_eval`, the held-out scores and grid in TensorBoard).

    Raises:
      InputError: a workdir of another config, a batch the devices do not divide, bad data.
      TrainingDiverged: a non-finite loss.
    """
    from ggtalker_jax.flame import load_flame

    section = config.inpainter
    # mesh
    mesh = make_data_mesh()
    check_batch({"x": jnp.zeros((section.batch_size,))}, mesh)
    # data
    if model is None and (data is None or (section.eval_every and eval_fn is None)):
        model = load_flame(config.flame_model or None)
    if data is None:
        data = make_inpainter_source(model, section.data, section.batch_size, "train")
    # model/optimizer
    inpainter = build_inpainter(section, seed=config.seed)
    # restore + step + evals + loop
    make_eval = None
    if eval_fn is None and section.eval_every and section.data.heldout:
        make_eval = functools.partial(make_heldout_eval, model, section)
    run = train_module(
        inpainter,
        make_loss_fn(section, mesh),
        data,
        workdir,
        config,
        section,
        mesh=mesh,
        force=force,
        progress=progress,
        time_limit=time_limit,
        eval_fn=eval_fn,
        make_eval=make_eval,
    )
    return InpainterRun(
        inpainter=run.result.state.model(),
        result=run.result,
        seconds=run.seconds,
        samples_per_second=run.samples_per_second,
    )


def evaluate_run(inpainter, config: InpainterConfig, out_dir, model=None) -> dict:
    """:func:`evaluate_inpainter` on the held-out people (:func:`heldout_source`), written
    to ``out_dir`` (``WORKDIR/eval`` for a run, :data:`EVAL`).

    Args:
      inpainter: the network.
      config: the section it was trained with (its held-out world).
      out_dir: output folder, or ``None``.
      model: the FLAME model of the world (default: the shipped head).
    """
    from ggtalker_jax.flame import load_flame

    model = load_flame(None) if model is None else model
    examples = heldout_examples(heldout_source(model, config), config)
    return evaluate_inpainter(inpainter, examples, out_dir)
