"""Customized adaptation (``ggtalker adapt``): the shipped priors fitted to one person's clip.

0. **Map from the prior**: the Identity-Gaussian Generator reads one reference frame (the most
   frontal training frame with a closed mouth) and predicts the UV Gaussian map, moved to the
   identity's UV size (:func:`~ggtalker_jax.models.gaussian_head.upsample_map`).
1. ``head``: the map as a free tensor and a fresh color MLP
   (:mod:`ggtalker_jax.train.adapt_head`).
2. ``joint``: the same plus per-frame FLAME corrections of the clip's frames.
3. ``inpainter``: the Body Inpainter prior fine-tuned on the adapted head drawn into the
   clip's frames (hole: the drawn head and the frame's own head, grown by the radius
   inference uses).
4. ``a2e``: the A2E decoder fine-tuned on the clip's speech and motion (speaking style) at a
   low rate, early-stopped on the clip's held-out tail; the best held-out state is kept.

Each phase is one jitted step over a batch of frames, stopped by its step count, its share
of ``--minutes`` or a plateau of its held-out score (:mod:`ggtalker_jax.train.adapt_phase`,
which also checkpoints and resumes). The identity folder it writes is what
:class:`ggtalker_jax.infer.TalkingHead` loads (:mod:`ggtalker_jax.identity`).

Sections: priors -> data -> phases (head, joint, inpainter, a2e) -> the run.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from flax import nnx

from ggtalker_jax.config import Config
from ggtalker_jax.config.adapt import AdaptConfig
from ggtalker_jax.data.adapt import AdaptClips, load_adapt_clips
from ggtalker_jax.errors import InputError
from ggtalker_jax.models.gaussian_head import GaussianHead, upsample_map
from ggtalker_jax.render.head import make_head_template, render_gaussians
from ggtalker_jax.train.adapt_head import (
    AdaptHead,
    DeviceClip,
    FlameCorrections,
    HeadSettings,
    heldout_psnr,
    make_head_optimizer,
    make_head_step,
)
from ggtalker_jax.train.adapt_phase import PhaseResult, PhaseSpec, run_phase
from ggtalker_jax.train.state import TrainState

PRIOR_KINDS = ("e2v", "a2e", "inpainter")

# -- priors ----------------------------------------------------------------------------------


def resolve_priors(adapt: AdaptConfig, priors: str | Path | None) -> dict[str, Path]:
    """The prior folder of each kind: ``DIR/e2v``, ``DIR/a2e``, ``DIR/inpainter`` of
    ``priors``, or the shipped ones ``adapt.priors`` names.

    Raises:
      InputError: a ``priors`` folder without one of the three.
    """
    from ggtalker_jax.priors import shipped_prior

    if priors is None:
        return {k: shipped_prior(n) for k, n in zip(PRIOR_KINDS, adapt.priors, strict=True)}
    root = Path(priors)
    if not root.is_dir():
        raise InputError(f"--priors {root}: no such folder; it should hold e2v/, a2e/, inpainter/")
    missing = [k for k in PRIOR_KINDS if not (root / k / "prior.json").is_file()]
    if missing:
        raise InputError(
            f"--priors {root}: has no {missing[0]}/prior.json; the folder must hold one prior "
            f"folder per kind ({', '.join(k + '/' for k in PRIOR_KINDS)}), as written by "
            "`ggtalker <kind> export`"
        )
    return {k: root / k for k in PRIOR_KINDS}


# -- data ------------------------------------------------------------------------------------


def reference_frame(clips: AdaptClips, adapt: AdaptConfig) -> int:
    """The generator's reference: ``adapt.reference_frame``, or the training frame with the
    smallest head rotation plus jaw opening (most frontal, mouth closed)."""
    if adapt.reference_frame >= 0:
        if adapt.reference_frame >= clips.n_frames:
            raise InputError(
                f"config: adapt.reference_frame={adapt.reference_frame} is past the clips' "
                f"{clips.n_frames} frames; use -1 (auto) or a smaller index"
            )
        return int(adapt.reference_frame)
    p = clips.params
    cost = np.linalg.norm(p.global_pose, axis=-1) + np.linalg.norm(p.jaw_pose, axis=-1)
    train = clips.train
    return int(train[np.argmin(cost[train])])


def generator_map(generator, e2v, clips: AdaptClips, frame: int) -> np.ndarray:
    """The generator's raw map ``[Hu, Wu, 14]`` from frame ``frame`` (the head masked out
    of the frame and resized to the generator's reference size, as in E2V training).

    Raises:
      InputError: the generator's z-buffer could not be completed (a head far larger in the
        frame than any portrait framing; :class:`~ggtalker_jax.models.TexelLift`).
    """
    from PIL import Image

    from ggtalker_jax.types import FlameParams

    crop = e2v.data.crop_size
    image = clips.frames[frame] * clips.head_mask[frame][..., None]
    w = image.shape[1]
    if image.shape[:2] != (crop, crop):
        image = np.asarray(Image.fromarray(image).resize((crop, crop), Image.BILINEAR))
    k = clips.K[frame].copy()
    k[:2] *= crop / w
    p = clips.params
    params = FlameParams(
        shape=jnp.asarray(p.shape)[None],
        **{
            n: jnp.asarray(getattr(p, n)[frame])[None]
            for n in (
                "expression",
                "global_pose",
                "neck_pose",
                "jaw_pose",
                "eye_pose",
                "translation",
            )
        },
    )
    uv_map, dropped = generator.predict(
        jnp.asarray(image, jnp.float32)[None] / 255.0,
        params,
        jnp.asarray(clips.viewmat[frame])[None],
        jnp.asarray(k)[None],
    )
    if int(dropped[0]):
        raise InputError(
            f"adaptation frame {frame}: the head is too large in the frame for the generator's "
            f"visibility z-buffer ({int(dropped[0])} rasterizer windows left untested); use "
            "video in which the head fills less of the frame"
        )
    return np.asarray(uv_map[0])


def _draw(adapt: AdaptConfig, phase: int, position: int, frames: np.ndarray) -> np.ndarray:
    """The frames of step ``position`` of a phase (deterministic: resumes draw the same)."""
    rng = np.random.default_rng([adapt.seed, phase, position])
    return rng.choice(frames, size=adapt.batch_frames, replace=len(frames) < adapt.batch_frames)


def head_capacity(head: GaussianHead, clips: AdaptClips, adapt: AdaptConfig) -> int:
    """Tile-intersection slots for a step's ``batch_frames`` frames: the most any of a few
    frames needs (measured eagerly), times ``batch_frames``, with 2.5x headroom for splats
    that grow during fitting."""
    from ggtalker_jax.kernels.splat.binning import round_capacity
    from ggtalker_jax.types import Camera, FlameParams

    picks = np.linspace(0, clips.n_frames - 1, 4).round().astype(int)
    p = clips.params
    params = FlameParams(
        shape=jnp.asarray(p.shape),
        **{n: jnp.asarray(getattr(p, n)[picks]) for n in p.__dataclass_fields__ if n != "shape"},
    )
    h, w = clips.size
    camera = Camera(jnp.asarray(clips.viewmat[picks]), jnp.asarray(clips.K[picks]), w, h)
    gaussians, _ = head.gaussians(params, camera.viewmat)
    _, meta = render_gaussians(gaussians, camera, None, head.backend)
    per_frame = int(np.asarray(meta["n_intersections"]).max()) / len(picks)
    return round_capacity(int(2.5 * per_frame * adapt.batch_frames) + 1024)


# -- the run ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Adapted:
    """What :func:`adapt_identity` returns (and writes, through :mod:`ggtalker_jax.identity`).

    Attributes:
      head: the :class:`GaussianHead`.  corrections: per-frame FLAME corrections
        ``{field: [T, ...]}`` of the clips' frames.  inpainter: the fine-tuned Body
        Inpainter.  speaker: the fine-tuned :class:`~ggtalker_jax.motion.Speaker`.
      clips: the adaptation clips.  phases: each phase's result.  info: the run's record.
    """

    head: GaussianHead
    corrections: dict[str, np.ndarray]
    inpainter: object
    speaker: object
    clips: AdaptClips
    phases: dict[str, PhaseResult]
    info: dict


class _Run:
    """One adaptation's shared state (the phase functions below read it)."""

    def __init__(self, config: Config, clips: AdaptClips, workdir: Path, minutes: float, progress):
        self.config, self.adapt = config, config.adapt
        self.clips, self.workdir, self.minutes, self.progress = clips, workdir, minutes, progress
        self.config_json = config.to_json()
        self.dclip = DeviceClip.from_clips(clips)
        self.start = time.perf_counter()
        self.phases: dict[str, PhaseResult] = {}
        self.info: dict = {}  # what the phases record for the identity folder

    def spec(self, name: str, score_key: str) -> PhaseSpec:
        a = self.adapt
        return PhaseSpec(
            name=name,
            steps=a.phase_steps(name),
            seconds=a.phase_seconds(name, self.minutes),
            eval_every=a.eval_every,
            checkpoint_every=a.checkpoint_every,
            patience=a.patience,
            min_gain=a.min_gain_db if score_key == "psnr" else 0.0,
            score_key=score_key,
            t_offset=time.perf_counter() - self.start,
        )

    def run(self, spec: PhaseSpec, state, step_fn, evaluate):
        if spec.steps == 0:
            result = PhaseResult(spec.name, 0, 0.0, [], None, "skipped")
        else:
            folder = self.workdir / "phases" / spec.name
            state, result = run_phase(
                spec, state, step_fn, evaluate, folder, self.config_json, self.progress
            )
        self.phases[spec.name] = result
        return state


def _head_phases(run: _Run, generator, e2v) -> tuple[TrainState, HeadSettings]:
    clips, adapt = run.clips, run.adapt
    uv_size = adapt.uv_size or e2v.uv_size
    template = make_head_template(generator.template.model, uv_size)
    frame = reference_frame(clips, adapt)
    run.info["reference_frame"] = frame
    run.info["e2v"] = dataclasses.asdict(e2v)
    uv_map = upsample_map(generator_map(generator, e2v, clips, frame), generator.template, template)
    head = GaussianHead(template, uv_map, e2v, nnx.Rngs(adapt.seed))
    settings = HeadSettings(adapt, e2v, head_capacity(head, clips, adapt))
    optimizer = make_head_optimizer(adapt)
    chunk = adapt.batch_frames

    def evaluate(state):
        return {"psnr": heldout_psnr(state, run.dclip, clips.heldout, chunk, settings.capacity)}

    model, state = AdaptHead(head), None
    for phase, name in enumerate(("head", "joint")):
        if name == "joint":  # the fitted head, now with per-frame FLAME corrections
            head = state.model().head
            model = AdaptHead(head, FlameCorrections(clips.n_frames, head.template.model.n_exp))
        state = TrainState.from_model(model, optimizer, wrt=nnx.Param)
        step = make_head_step(optimizer, settings)
        state = run.run(
            run.spec(name, "psnr"),
            state,
            lambda s, p, step=step, phase=phase: step(
                s, run.dclip, jnp.asarray(_draw(adapt, phase, p, clips.train))
            ),
            evaluate,
        )
    return state, settings


def adapt_identity(
    clips: Sequence,
    out: str | Path,
    config: Config,
    priors: str | Path | None = None,
    minutes: float | None = None,
    force: bool = False,
    progress: bool = True,
) -> Adapted:
    """Adapt the priors to the person of ``clips`` and write the identity folder ``out``.

    Args:
      clips: the person's clip folders (one resolution), or clips in memory.
      out: the identity folder (created; an unfinished one is resumed).
      config: the resolved config (``adapt``, ``inpainter``; the priors carry their own
        E2V and A2E sections).
      priors: a folder with ``e2v/``, ``a2e/``, ``inpainter/`` priors (default: the shipped
        ones ``config.adapt.priors`` names).
      minutes: the time budget (default ``config.adapt.minutes``).
      force: redo a finished identity folder (removes only what adaptation wrote).
      progress: show progress bars.

    Raises:
      InputError: bad clips (:func:`~ggtalker_jax.data.adapt.load_adapt_clips`), priors,
        an existing identity without ``force``, a folder holding other files.
    """
    from ggtalker_jax.flame import load_flame
    from ggtalker_jax.identity import claim_identity_dir, write_identity
    from ggtalker_jax.outputs import exclusive
    from ggtalker_jax.priors.e2v import load_e2v_prior

    minutes = config.adapt.minutes if minutes is None else float(minutes)
    if not 0 < minutes <= 24 * 60:
        raise InputError(f"--minutes {minutes}: expected a number above 0, at most 1440")
    paths = resolve_priors(config.adapt, priors)
    out = claim_identity_dir(out, force)
    model = load_flame(config.flame_model or None)
    data = load_adapt_clips(clips, model, config.adapt.heldout_every)
    generator, e2v, _ = load_e2v_prior(paths["e2v"], model)
    with exclusive(out, "adaptation"):
        run = _Run(config, data, out, minutes, progress)
        state, settings = _head_phases(run, generator, e2v)
        from ggtalker_jax.train.adapt_priors import a2e_phase, inpainter_phase

        inpainter = inpainter_phase(run, state, settings, paths["inpainter"])
        speaker = a2e_phase(run, model, paths["a2e"])
        model_ = state.model()
        adapted = Adapted(
            head=model_.head,
            corrections=model_.corrections.as_dict(),
            inpainter=inpainter,
            speaker=speaker,
            clips=data,
            phases=run.phases,
            info={
                **run.info,
                "priors": {k: str(v) for k, v in paths.items()},
                "minutes": minutes,
                "seconds": round(time.perf_counter() - run.start, 2),
                "capacity": settings.capacity,
            },
        )
        write_identity(out, adapted, config)
    return adapted
