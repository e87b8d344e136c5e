"""The prior fine-tuning phases of adaptation: the Body Inpainter on the adapted head, and
the A2E decoder on the person's speech.

``inpainter``: per step, ``B`` training frames; the adapted head (frozen, with its FLAME
corrections) is drawn for them, the hole cut from it and the frame's own head mask grown by
the radius inference uses (:func:`~ggtalker_jax.models.inpainter.hole_radius`), and the
inpainter is fitted to give back the frame: ``L1 + w_ssim·D-SSIM``. Scored by the full-frame
PSNR of the held-out frames.

``a2e``: the A2E prior's own loss (:func:`ggtalker_jax.train.a2e.make_loss_fn`) on windows
of the first ``1 - a2e_heldout`` of each clip, with the person as the "unknown" identity
(inference samples them as an unknown speaker), at ``lr_a2e``. Scored by the loss of fixed
windows and draws of the clips' held-out tails (negated: higher is better); the phase ends
on its best state (:func:`~ggtalker_jax.train.adapt_phase.run_phase`: early stopping).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from ggtalker_jax.eval import metrics
from ggtalker_jax.train.adapt_head import AdaptHead, DeviceClip, HeadSettings
from ggtalker_jax.train.state import TrainState

HELDOUT_WINDOWS = 4
"""Batches of held-out windows the ``a2e`` score averages (fixed draws)."""

# -- inpainter -------------------------------------------------------------------------------


def _head_render(head_state: TrainState, clip: DeviceClip, index, capacity: int):
    model: AdaptHead = head_state.model()
    params = model.frame_params(clip, index)
    render, _, _ = model.head(params, clip.camera(index), capacity)
    return jax.lax.stop_gradient(render.rgb), jax.lax.stop_gradient(render.alpha)


def _inpainter_terms(inpainter, head_state, clip: DeviceClip, index, radius, settings):
    from ggtalker_jax.infer import blend_head

    rgb, alpha = _head_render(head_state, clip, index, settings.capacity)
    frame = clip.frames[index].astype(jnp.float32) / 255.0
    out = blend_head(inpainter, rgb, alpha, frame, clip.head_mask[index], radius)
    l1 = jnp.mean(jnp.abs(out - frame), axis=(-3, -2, -1))
    dssim = (1.0 - metrics.ssim(out, frame)) / 2.0
    return l1 + settings.adapt.ssim_weight * dssim, metrics.psnr(out, frame)


def make_inpainter_step(optimizer, settings: HeadSettings, radius: float):
    """``step(state, head_state, clip, index) -> (state, metrics)``; ``state`` donated."""

    def step(state, head_state, clip, index):
        def objective(params):
            loss, psnr = _inpainter_terms(
                state.model(params), head_state, clip, index, radius, settings
            )
            return jnp.mean(loss), {"psnr": jnp.mean(psnr)}

        (loss, scalars), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        return state.apply_gradients(grads, optimizer), {**scalars, "loss": loss}

    return jax.jit(step, donate_argnums=0)


@functools.partial(jax.jit, static_argnames=("radius", "settings"))
def _inpainter_psnr(state, head_state, clip, index, radius: float, settings: HeadSettings):
    _, psnr = _inpainter_terms(state.model(), head_state, clip, index, radius, settings)
    return psnr


def inpainter_phase(run, head_state: TrainState, settings: HeadSettings, prior_folder):
    """Fine-tune the inpainter prior (module docstring); returns the network."""
    from ggtalker_jax.models.inpainter import hole_radius
    from ggtalker_jax.priors.inpainter import load_inpainter_prior
    from ggtalker_jax.train.adapt import _draw

    inpainter, config, _ = load_inpainter_prior(prior_folder)
    run.info["inpainter"] = dataclasses.asdict(config)
    clips, adapt = run.clips, run.adapt
    radius = float(hole_radius(config.data, clips.size[0]))
    run.info["hole_radius"] = radius
    optimizer = optax.adam(adapt.lr_inpainter)
    state = TrainState.from_model(inpainter, optimizer, wrt=nnx.Param)
    step = make_inpainter_step(optimizer, settings, radius)
    chunk = adapt.batch_frames

    def evaluate(state):
        scores = []
        frames = clips.heldout
        for start in range(0, len(frames), chunk):
            part = frames[start : start + chunk]
            index = np.concatenate([part, np.repeat(part[-1:], chunk - len(part))])
            psnr = _inpainter_psnr(
                state, head_state, run.dclip, jnp.asarray(index), radius, settings
            )
            scores.append(np.asarray(psnr)[: len(part)])
        return {"psnr": float(np.mean(np.concatenate(scores)))}

    state = run.run(
        run.spec("inpainter", "psnr"),
        state,
        lambda s, p: step(s, head_state, run.dclip, jnp.asarray(_draw(adapt, 2, p, clips.train))),
        evaluate,
    )
    return state.model()


# -- a2e -------------------------------------------------------------------------------------


def _speech_parts(clips, layout_frames: int, heldout: float):
    """``(train, heldout)`` lists of :class:`~ggtalker_jax.data.a2e.SpeechClip` cut from
    each clip at ``1 - heldout`` of its frames (parts shorter than ``layout_frames`` are
    left out)."""
    from ggtalker_jax.data.a2e import SpeechClip
    from ggtalker_jax.types import FPS, SAMPLE_RATE

    per_frame = SAMPLE_RATE // FPS
    train, held = [], []
    for k, clip in enumerate(clips.clips):
        t = clip.n_frames
        cut = int(round(t * (1.0 - heldout)))
        for part, (a, b) in ((train, (0, cut)), (held, (cut, t))):
            if b - a < layout_frames:
                continue
            part.append(
                SpeechClip(
                    name=f"{clips.folders[k]}[{a}:{b}]",
                    identity="adapted",
                    language=str(clip.meta.get("language", "")),
                    audio=np.asarray(clip.audio[a * per_frame : b * per_frame], np.float32),
                    shape=np.asarray(clip.flame.shape, np.float32),
                    expression=np.asarray(clip.flame.expression[a:b], np.float32),
                    jaw_pose=np.asarray(clip.flame.jaw_pose[a:b], np.float32),
                    global_pose=np.asarray(clip.flame.global_pose[a:b], np.float32),
                )
            )
    return train, held


def a2e_phase(run, model, prior_folder):
    """Fine-tune the A2E prior on the person's speech (module docstring); returns the
    :class:`~ggtalker_jax.motion.Speaker` (the prior's own, when the clip is too short to
    hold out a window)."""
    from ggtalker_jax.data.a2e import WindowSource
    from ggtalker_jax.priors.a2e import load_a2e_prior
    from ggtalker_jax.train.a2e import clip_features, make_loss_fn, motion_layout
    from ggtalker_jax.train.adapt_phase import PhaseResult
    from ggtalker_jax.train.parallel import make_data_mesh, replicate, shard_batch
    from ggtalker_jax.train.step import make_train_step

    speaker, config, _ = load_a2e_prior(prior_folder, model)
    run.info["a2e"] = dataclasses.asdict(config)
    adapt = run.adapt
    frames = config.window + config.context
    train, held = _speech_parts(run.clips, frames, adapt.a2e_heldout)
    if not train or not held or adapt.phase_steps("a2e") == 0:
        run.phases["a2e"] = PhaseResult("a2e", 0, 0.0, [], None, "skipped")
        return speaker
    prior = speaker.prior
    layout = motion_layout(config, model)
    table = {"adapted": prior.unknown_identity()}
    silence = speaker.silence

    def source(parts, batch, seed):
        features = clip_features(speaker.extractor, parts)
        return WindowSource(
            parts, features, layout, table, batch, config.window, config.context, silence, seed
        )

    train_source = source(train, config.batch_size, adapt.seed)
    held_source = source(held, config.batch_size, adapt.seed + 1)
    mesh = make_data_mesh(jax.devices()[:1])
    loss_fn = make_loss_fn(config, mesh)
    optimizer = optax.adam(adapt.lr_a2e)
    step = make_train_step(loss_fn, optimizer, mesh)
    # Replicated on the mesh from the start: the step's outputs are, and a first call on
    # uncommitted arrays would compile the step a second time (measured: 48 s on the H200).
    state = replicate(TrainState.from_model(prior, optimizer), mesh)
    key = jax.random.key(adapt.seed)
    held_batches = [shard_batch(held_source.batch(i), mesh) for i in range(HELDOUT_WINDOWS)]
    held_keys = [
        jax.random.fold_in(jax.random.key(adapt.seed + 1), i) for i in range(HELDOUT_WINDOWS)
    ]
    loss_jit = jax.jit(lambda s, b, k: loss_fn(s.model(), b, k)[0])

    def evaluate(state):
        pairs = zip(held_batches, held_keys, strict=True)
        return {"neg_loss": -float(np.mean([loss_jit(state, b, k) for b, k in pairs]))}

    state = run.run(
        run.spec("a2e", "neg_loss"),
        state,
        lambda s, p: step(s, shard_batch(train_source.batch(p), mesh), jax.random.fold_in(key, p)),
        evaluate,
    )
    speaker.prior = state.model()
    return speaker
