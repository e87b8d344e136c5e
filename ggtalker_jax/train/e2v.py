"""Training the Expression-Visual prior (``ggtalker e2v train``).

One reference image of an identity -> the Identity-Gaussian Generator -> a raw UV Gaussian
map -> rigged to the target frame's posed FLAME mesh -> splatted from the target camera ->
``L1 + ssim_weight · D-SSIM`` against the target frame, plus two regularisers on the local
Gaussians (DESIGN.md, "The Gaussian head"):

- offsets: ``mean(relu(|offset| - offset_radius / 2)²)``: points stay near their texel;
- scales: ``mean(relu(exp(s_local) - limit))`` with ``limit = max(0.6, 2·exp(s_base))``
  per texel: GaussianAvatars' 0.6 (no splat much larger than its triangle), widened where a
  texel spans several triangles (coarse UV maps), so the initial map itself is not penalised.

The sections below follow the trainer's order: mesh -> data -> model/optimizer -> restore
-> step -> evals -> loop. Each device renders its own slice of the batch: the whole
per-example computation runs under ``jax.shard_map`` (the Pallas rasterizer cannot be
partitioned by the compiler), and the gradient of the replicated parameters is averaged
across devices by shard_map's transpose.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ggtalker_jax.config import Config
from ggtalker_jax.config.e2v import E2VConfig
from ggtalker_jax.eval import metrics
from ggtalker_jax.flame.model import FlameModel
from ggtalker_jax.geometry.rigging import decode_texels
from ggtalker_jax.kernels.splat import resolve_backend
from ggtalker_jax.kernels.splat.binning import round_capacity
from ggtalker_jax.render.head import (
    HeadRender,
    HeadTemplate,
    make_head_template,
    map_to_gaussians,
    pose_mesh,
    render_gaussians,
)
from ggtalker_jax.train.checkpoint import read_run_config, restore_newest_model
from ggtalker_jax.train.logging import TrainLogger
from ggtalker_jax.train.loop import TrainResult, train_module
from ggtalker_jax.train.optim import section_optimizer
from ggtalker_jax.train.parallel import make_data_mesh, mean_loss, sharded_example_terms
from ggtalker_jax.types import Camera

SCALE_LIMIT = 0.6
"""Local scale above which the scale regulariser pushes back (units of the triangle scale)."""

TILES_PER_GAUSSIAN = {"pallas": 8, "xla": 16}
"""Tile-intersection slots reserved per Gaussian and image, by backend. The default head
needs 2.2 per Gaussian at 16-px tiles (Pallas) and 4.1 at the 8-px tiles the CPU path uses
(measured on the 15k-Gaussian head at 128², 2026-12-01); splats are larger early in
training, so both keep about 3.6x headroom. Binning sorts every slot: no more than needed."""


# -- model -------------------------------------------------------------------------------


def build_generator(model: FlameModel, config: E2VConfig, seed: int = 0):
    """The head template and a freshly initialised Identity-Gaussian Generator.

    Returns:
      ``(HeadTemplate, IdentityGenerator)``.
    """
    from ggtalker_jax.models.identity_generator import IdentityGenerator

    template = make_head_template(model, config.uv_size)
    return template, IdentityGenerator(template, config, nnx.Rngs(seed))


def capacity_for(template: HeadTemplate, images: int, backend: str = "auto") -> int:
    """Static tile-intersection capacity for ``images`` renders of the head (the reference
    backend composites densely and ignores it)."""
    factor = TILES_PER_GAUSSIAN.get(resolve_backend(backend), max(TILES_PER_GAUSSIAN.values()))
    return round_capacity(images * template.n * factor)


def scale_limits(template: HeadTemplate, config: E2VConfig) -> jax.Array:
    """``[N, 3]`` local scale above which the scale regulariser acts (module docstring)."""
    base = decode_texels(
        template.layout.gather(jnp.asarray(template.base_map)),
        config.offset_radius,
        config.max_log_scale,
    )
    return jnp.maximum(SCALE_LIMIT, 2.0 * jnp.exp(base.log_scales))


# -- the forward pass every stage and the evaluation share ------------------------------


def render_targets(
    generator, batch, config: E2VConfig, capacity: int | None = None
) -> tuple[HeadRender, object, dict]:
    """The generator's head for each batch element, seen from the target camera.

    Args:
      generator: an :class:`~ggtalker_jax.models.identity_generator.IdentityGenerator`.
      batch: an :class:`~ggtalker_jax.data.e2v.E2VBatch` of ``B`` elements.
      config: the E2V section (decoding bounds, splatting backend).
      capacity: static tile-intersection slots.

    Returns:
      ``(HeadRender [B, H, W], LocalGaussians [B, N], meta)``: ``meta`` is the splatting's,
      plus ``zbuffer_dropped [B]`` (the generator's visibility z-buffer, :class:`TexelLift`).
    """
    uv_map, zbuffer_dropped = generator.predict(
        batch.source_image, batch.source_params, batch.source_viewmat, batch.source_K
    )  # [B, Hu, Wu, 14], [B]
    template = generator.template
    vertices = pose_mesh(template.model, batch.target_params)  # [B, V, 3]
    gaussians, local = map_to_gaussians(
        template, uv_map, vertices, config.offset_radius, config.max_log_scale
    )
    height, width = batch.target_image.shape[1:3]
    camera = Camera(batch.target_viewmat, batch.target_K, int(width), int(height))
    render, meta = render_gaussians(
        gaussians, camera, batch.background, backend=config.backend, capacity=capacity
    )
    return render, local, {**meta, "zbuffer_dropped": zbuffer_dropped}


def example_terms(generator, batch, config: E2VConfig, capacity: int | None) -> dict:
    """Per-example loss terms and metrics, each ``[B]``."""
    render, local, meta = render_targets(generator, batch, config, capacity)
    pred, target, mask = render.rgb, batch.target_image, batch.target_mask
    l1 = jnp.mean(jnp.abs(pred - target), axis=(-3, -2, -1))
    dssim = (1.0 - metrics.ssim(pred, target)) / 2.0
    norm = jnp.sqrt(jnp.sum(local.offsets * local.offsets, axis=-1) + 1e-12)  # [B, N]
    offset_reg = jnp.mean(jax.nn.relu(norm - 0.5 * config.offset_radius) ** 2, axis=-1)
    scale_reg = jnp.mean(
        jax.nn.relu(jnp.exp(local.log_scales) - scale_limits(generator.template, config)[None]),
        axis=(-2, -1),
    )
    loss = (
        l1
        + config.ssim_weight * dssim
        + config.offset_weight * offset_reg
        + config.scale_weight * scale_reg
    )
    batch_size = l1.shape[0]
    dropped = jnp.broadcast_to(jnp.asarray(meta["dropped"], jnp.float32), (batch_size,))
    return {
        "loss": loss,
        "l1": l1,
        "dssim": dssim,
        "offset_reg": offset_reg,
        "scale_reg": scale_reg,
        "psnr": metrics.psnr(pred, target),
        "head_psnr": metrics.masked_psnr(pred, target, mask),
        # Intersections beyond the capacity (never silently: the loop logs it).
        "dropped": dropped / batch_size,
        # Mesh-rasterizer windows beyond their fixed work: the generator's z-buffer and the
        # procedural source's renders (0 expected; logged like the above).
        "raster_dropped": (meta["zbuffer_dropped"] + batch.dropped).astype(jnp.float32),
    }


# -- step ----------------------------------------------------------------------------------


def make_loss_fn(config: E2VConfig, mesh, capacity: int):
    """``loss_fn(generator, batch, key) -> (loss, metrics)`` over the global batch, each
    device computing its own slice (module docstring)."""

    def terms_of(generator, batch, draws):
        del draws  # the E2V loss draws no randomness
        return example_terms(generator, batch, config, capacity)

    def loss_fn(generator, batch, key):
        del key
        # The Pallas rasterizer's outputs are not typed for shard_map's replication checks.
        terms = sharded_example_terms(terms_of, mesh, generator, batch, {}, check_vma=False)
        loss, means = mean_loss(terms)
        means["dropped"] = jnp.sum(terms["dropped"])
        means["raster_dropped"] = jnp.sum(terms["raster_dropped"])
        return loss, means

    return loss_fn


# -- the run -------------------------------------------------------------------------------


@dataclasses.dataclass
class E2VRun:
    """What :func:`train_e2v` returns: the trained generator and the run's record."""

    generator: object
    template: HeadTemplate
    result: TrainResult
    seconds: float
    samples_per_second: float


def train_e2v(
    config: Config,
    workdir: str | Path,
    model: FlameModel,
    *,
    force: bool = False,
    progress: bool = True,
    eval_fn=None,
    time_limit: float | None = None,
) -> E2VRun:
    """Train (or resume) the E2V prior of ``config.e2v`` in ``workdir``.

    Args:
      config: the whole resolved config (written beside the checkpoints; its ``e2v`` section
        is the run).
      workdir: the run's folder: ``config.json``, ``checkpoints/``, ``tensorboard/``.
      model: the FLAME model (with UVs and masks).
      force: start over (removes only the run's own files).
      progress: show the progress bar.
      eval_fn: ``(generator, step) -> {name: value}`` every ``e2v.eval_every`` steps
        (default: :func:`make_preview_eval`, a preview grid and scores in TensorBoard).
      time_limit: stop after this many seconds with a checkpoint (a rerun continues).

    Returns:
      :class:`E2VRun`.

    Raises:
      InputError: a workdir of another config, a batch the devices do not divide, bad data.
      TrainingDiverged: a non-finite loss.
    """
    from ggtalker_jax.data.e2v import make_e2v_source
    from ggtalker_jax.train.parallel import check_batch

    e2v = config.e2v
    # mesh
    mesh = make_data_mesh()
    check_batch({"x": jnp.zeros((e2v.batch_size,))}, mesh)
    # data
    data = make_e2v_source(model, e2v.data, e2v.batch_size, split="train")
    # model/optimizer
    template, generator = build_generator(model, e2v, seed=config.seed)
    capacity = capacity_for(template, e2v.batch_size // mesh.size, e2v.backend)
    # restore + step + loop
    run = train_module(
        generator,
        make_loss_fn(e2v, mesh, capacity),
        data,
        workdir,
        config,
        e2v,
        mesh=mesh,
        force=force,
        progress=progress,
        time_limit=time_limit,
        eval_fn=eval_fn,
        make_eval=(lambda logger: make_preview_eval(model, e2v, logger))
        if e2v.eval_every
        else None,
    )
    return E2VRun(
        generator=run.result.state.model(),
        template=template,
        result=run.result,
        seconds=run.seconds,
        samples_per_second=run.samples_per_second,
    )


PREVIEW_IDENTITIES = 4


def make_preview_eval(model: FlameModel, config: E2VConfig, logger: TrainLogger):
    """The training run's own evaluation every ``eval_every`` steps: a few held-out
    identities (training ones when there are none) re-enacted from their reference camera
    and seen from 30° to the side, as a TensorBoard grid (reference | ground truth | ours |
    error) and their mean head PSNR."""
    from ggtalker_jax.data.e2v import ProceduralE2V
    from ggtalker_jax.eval.e2v import comparison_grid

    data = dataclasses.replace(config.data, source="procedural")
    first = data.identities if data.heldout else 0
    count = min(PREVIEW_IDENTITIES, data.heldout or data.identities)
    source = ProceduralE2V(model, data, 1, range(first, first + count))
    batch = source.views(source.identities, [0.0, 0.5236], position=0)

    def evaluate(state, step: int) -> dict:
        render = predict_batch(state.model(), batch, config)
        pred, target = np.asarray(render.rgb), np.asarray(batch.target_image)
        logger.images(
            step, "preview", comparison_grid(np.asarray(batch.source_image), target, pred)
        )
        psnr = metrics.masked_psnr(render.rgb, batch.target_image, batch.target_mask)
        return {"preview_head_psnr": float(jnp.mean(psnr))}

    return evaluate


@functools.partial(jax.jit, static_argnames=("config", "capacity"))
def _predict_jit(graphdef, state, batch, config: E2VConfig, capacity: int):
    render, _, meta = render_targets(nnx.merge(graphdef, state), batch, config, capacity)
    return render, meta["dropped"], jnp.sum(meta["zbuffer_dropped"] + batch.dropped)


def predict_batch(generator, batch, config: E2VConfig) -> HeadRender:
    """Render a batch with a generator outside training (one jitted call, one device).

    Raises:
      InputError: intersections dropped for lack of capacity (cannot happen with the
        default sizing unless splats are huge; names the count), or mesh-rasterizer windows
        left untested by the generator's z-buffer or the batch's procedural render (a head
        far larger in its image than the portrait framing).
    """
    from ggtalker_jax.errors import InputError

    graphdef, state = nnx.split(generator)
    images = int(batch.target_image.shape[0])
    capacity = capacity_for(generator.template, images, config.backend)
    render, dropped, raster_dropped = _predict_jit(graphdef, state, batch, config, capacity)
    if int(dropped):
        raise InputError(
            f"rendering {images} heads dropped {int(dropped)} tile intersections; render "
            "fewer images per call"
        )
    if int(raster_dropped):
        raise InputError(
            f"rendering {images} heads: the mesh rasterizer left {int(raster_dropped)} windows "
            "untested (the generator's z-buffer or the batch's own render): a head is far "
            "larger in its image than the portrait framing; frame the heads smaller"
        )
    return render


def restore_e2v_run(workdir: str | Path, model: FlameModel | None = None):
    """The generator of a run's newest checkpoint.

    Args:
      workdir: a folder written by :func:`train_e2v`.
      model: the FLAME model (default: the run's ``flame_model``, or the shipped head).

    Returns:
      ``(generator, E2VConfig, run config dict, step)``.

    Raises:
      InputError: no run there, or no checkpoint yet.
    """
    from ggtalker_jax.config.e2v import e2v_config_from_dict
    from ggtalker_jax.flame import load_flame

    text, run_config, e2v = read_run_config(
        workdir, "e2v", e2v_config_from_dict, "an E2V", "ggtalker e2v train"
    )
    if model is None:
        model = load_flame(run_config.get("flame_model") or None)
    _, generator = build_generator(model, e2v, seed=int(run_config.get("seed", 0)))
    optimizer = section_optimizer(e2v)
    generator, step = restore_newest_model(
        workdir, text, generator, optimizer, e2v.checkpoint_every
    )
    return generator, e2v, run_config, step
