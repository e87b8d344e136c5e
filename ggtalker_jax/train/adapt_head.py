"""The head phases of adaptation: one jitted step that fits the identity's Gaussian head
(its UV map, its color MLP and, in the ``joint`` phase, per-frame FLAME corrections) to the
head pixels of its clip, and the held-out evaluation that draws the PSNR curve.

Loss per frame (the E2V loss plus what the free map needs):

    L1(render, frame·mask) + w_ssim·D-SSIM + 0.1·L1(alpha, mask)
      + w_off·relu(|offset| − r/2)² + w_scale·relu(exp(s) − limit) + w_flame·|Δθ|²

over black, the frame outside its head mask being black too. The alpha term keeps the head's
silhouette on the mask, which the inpainter's hole is made from.

The clip lives on the device once (:class:`DeviceClip`, uint8 frames); a step reads only
the ``B`` frame indices it is given, so the host sends a few bytes per step.

Learning rates are per attribute (3DGS): the map's raw channels take their own rates through
one Adam whose update is scaled per channel (Adam is elementwise, so that is exactly a rate
per channel), the color MLP and each FLAME field their own Adam.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from ggtalker_jax.config.adapt import AdaptConfig
from ggtalker_jax.config.e2v import E2VConfig
from ggtalker_jax.eval import metrics
from ggtalker_jax.geometry.uv import MAP_CHANNELS, MAP_SLICES
from ggtalker_jax.models.gaussian_head import GaussianHead
from ggtalker_jax.models.variables import IdentityParam
from ggtalker_jax.train.state import TrainState
from ggtalker_jax.types import FLAME_PARAM_FIELDS, Camera, FlameParams

ALPHA_WEIGHT = 0.1
"""Weight of L1(alpha, head mask): small next to the colour terms (which already darken
splats outside the mask), enough to pull a silhouette that colour alone leaves soft."""


@dataclasses.dataclass(frozen=True)
class DeviceClip:
    """The adaptation frames on the device.

    Attributes:
      frames: ``[T, H, W, 3]`` uint8.  head_mask: ``[T, H, W]`` uint8.
      params: :class:`FlameParams` ``[T]``.  viewmat: ``[T, 4, 4]``.  K: ``[T, 3, 3]``.
    """

    frames: jax.Array
    head_mask: jax.Array
    params: FlameParams
    viewmat: jax.Array
    K: jax.Array

    @classmethod
    def from_clips(cls, clips) -> DeviceClip:
        """From :class:`~ggtalker_jax.data.adapt.AdaptClips` (one copy to the device)."""
        return jax.device_put(
            cls(clips.frames, clips.head_mask, clips.params, clips.viewmat, clips.K)
        )

    def camera(self, index: jax.Array) -> Camera:
        h, w = self.frames.shape[1:3]
        return Camera(self.viewmat[index], self.K[index], int(w), int(h))

    def targets(self, index: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(frame·mask [B, H, W, 3] float 0..1, mask [B, H, W] float)``."""
        mask = self.head_mask[index].astype(jnp.float32)
        frames = self.frames[index].astype(jnp.float32) / 255.0
        return frames * mask[..., None], mask


jax.tree_util.register_dataclass(
    DeviceClip, data_fields=["frames", "head_mask", "params", "viewmat", "K"], meta_fields=[]
)


class FlameCorrections(nnx.Module):
    """Per-frame additive corrections of the clip's FLAME parameters (tracking refinement),
    zero-initialised; frames never trained on keep exactly zero."""

    def __init__(self, n_frames: int, n_exp: int):
        sizes = {"expression": n_exp, "global_pose": 3, "neck_pose": 3, "jaw_pose": 3}
        sizes |= {"eye_pose": 6, "translation": 3}
        for name, size in sizes.items():
            setattr(self, name, IdentityParam(jnp.zeros((n_frames, size), jnp.float32)))

    def apply(self, params: FlameParams, index: jax.Array) -> FlameParams:
        """``params [B]`` (the frames ``index [B]``) plus their corrections."""
        fields = {
            k: getattr(params, k) + getattr(self, k)[...][index]
            for k in FLAME_PARAM_FIELDS
            if k != "shape"
        }
        return FlameParams(shape=params.shape, **fields)

    def squared(self, index: jax.Array) -> jax.Array:
        """``[B]`` sum of squared corrections of the frames ``index``."""
        names = [k for k in FLAME_PARAM_FIELDS if k != "shape"]
        return sum(jnp.sum(getattr(self, k)[...][index] ** 2, axis=-1) for k in names)

    def as_dict(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(getattr(self, k)[...]) for k in FLAME_PARAM_FIELDS if k != "shape"}


class AdaptHead(nnx.Module):
    """What the head phases optimise: the head, and the FLAME corrections (``joint``)."""

    def __init__(self, head: GaussianHead, corrections: FlameCorrections | None = None):
        self.head = head
        self.corrections = corrections

    def frame_params(self, clip: DeviceClip, index: jax.Array) -> FlameParams:
        params = jax.tree.map(lambda x: x[index], clip.params)
        params = FlameParams(
            shape=clip.params.shape, **{k: getattr(params, k) for k in FLAME_PARAM_FIELDS[1:]}
        )
        if self.corrections is not None:
            params = self.corrections.apply(params, index)
        return params


# -- optimizer -------------------------------------------------------------------------------


def _scale_channels(rates: np.ndarray) -> optax.GradientTransformation:
    """Multiply updates by ``-rates`` along their last axis (a learning rate per channel)."""
    rates = jnp.asarray(rates, jnp.float32)

    def update(updates, state, params=None):
        del params
        return jax.tree.map(lambda u: -u * rates, updates), state

    return optax.GradientTransformation(lambda _: optax.EmptyState(), update)


def map_rates(config: AdaptConfig) -> np.ndarray:
    """``[14]`` learning rate of each raw map channel."""
    rates = np.zeros(MAP_CHANNELS, np.float32)
    for name, rate in (
        ("offset", config.lr_offset),
        ("log_scale", config.lr_scale),
        ("rotation", config.lr_rotation),
        ("color", config.lr_color),
        ("opacity", config.lr_opacity),
    ):
        rates[MAP_SLICES[name]] = rate
    return rates


def _label(path, _) -> str:
    names = [str(getattr(k, "key", getattr(k, "name", k))) for k in path]
    if "uv_map" in names:
        return "map"
    if "corrections" in names:
        if "translation" in names:
            return "translation"
        if "expression" in names or "jaw_pose" in names:
            return "expression"
        return "pose"
    return "mlp"


def make_head_optimizer(config: AdaptConfig) -> optax.GradientTransformation:
    """Adam per attribute group (module docstring)."""
    transforms = {
        "map": optax.chain(optax.scale_by_adam(), _scale_channels(map_rates(config))),
        "mlp": optax.adam(config.lr_color_mlp),
        "expression": optax.adam(config.lr_expression),
        "pose": optax.adam(config.lr_pose),
        "translation": optax.adam(config.lr_translation),
    }
    return optax.multi_transform(
        transforms, lambda params: jax.tree_util.tree_map_with_path(_label, params)
    )


# -- step ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class HeadSettings:
    """The static part of a head step (hashable: a ``jit`` static argument)."""

    adapt: AdaptConfig
    e2v: E2VConfig
    capacity: int


def _render(model: AdaptHead, clip: DeviceClip, index: jax.Array, capacity: int):
    params = model.frame_params(clip, index)
    return model.head(params, clip.camera(index), capacity)


def head_terms(model: AdaptHead, clip: DeviceClip, index: jax.Array, settings: HeadSettings):
    """Per-frame loss terms ``[B]`` and metrics of the frames ``index [B]``."""
    from ggtalker_jax.train.e2v import scale_limits

    adapt, e2v = settings.adapt, settings.e2v
    render, local, meta = _render(model, clip, index, settings.capacity)
    target, mask = clip.targets(index)
    pred = render.rgb
    l1 = jnp.mean(jnp.abs(pred - target), axis=(-3, -2, -1))
    dssim = (1.0 - metrics.ssim(pred, target)) / 2.0
    alpha_l1 = jnp.mean(jnp.abs(render.alpha - mask), axis=(-2, -1))
    norm = jnp.sqrt(jnp.sum(local.offsets * local.offsets, axis=-1) + 1e-12)  # [N]
    offset_reg = jnp.mean(jax.nn.relu(norm - 0.5 * e2v.offset_radius) ** 2)
    limits = scale_limits(model.head.template, e2v)
    scale_reg = jnp.mean(jax.nn.relu(jnp.exp(local.log_scales) - limits))
    flame_reg = (
        model.corrections.squared(index) if model.corrections is not None else jnp.zeros_like(l1)
    )
    loss = (
        l1
        + adapt.ssim_weight * dssim
        + ALPHA_WEIGHT * alpha_l1
        + adapt.offset_weight * offset_reg
        + adapt.scale_weight * scale_reg
        + adapt.flame_weight * flame_reg
    )
    return {
        "loss": loss,
        "l1": l1,
        "dssim": dssim,
        "alpha_l1": alpha_l1,
        "head_psnr": metrics.masked_psnr(pred, target, mask),
        "dropped": jnp.broadcast_to(jnp.asarray(meta["dropped"], jnp.float32), l1.shape),
    }


def make_head_step(optimizer: optax.GradientTransformation, settings: HeadSettings):
    """``step(state, clip, index [B]) -> (state, metrics)``, jitted, ``state`` donated."""

    def step(state: TrainState, clip: DeviceClip, index: jax.Array):
        def objective(params):
            terms = head_terms(state.model(params), clip, index, settings)
            means = {k: jnp.mean(v) for k, v in terms.items()}
            return means.pop("loss"), means

        (loss, scalars), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        return state.apply_gradients(grads, optimizer), {**scalars, "loss": loss}

    return jax.jit(step, donate_argnums=0)


@functools.partial(jax.jit, static_argnames=("capacity",))
def _render_chunk(graphdef, params, frozen, clip: DeviceClip, index, capacity: int):
    model = nnx.merge(graphdef, params, frozen)
    render, _, _ = _render(model, clip, index, capacity)
    target, mask = clip.targets(index)
    return render, metrics.masked_psnr(render.rgb, target, mask)


def heldout_psnr(state: TrainState, clip: DeviceClip, frames: np.ndarray, chunk: int, capacity):
    """Mean head-mask PSNR (dB) of the held-out ``frames``, rendered ``chunk`` at a time (the
    last chunk padded with repeats, so one compile serves every call)."""
    scores = []
    for start in range(0, len(frames), chunk):
        part = frames[start : start + chunk]
        index = np.concatenate([part, np.repeat(part[-1:], chunk - len(part))])
        _, psnr = _render_chunk(
            state.graphdef, state.params, state.frozen, clip, jnp.asarray(index), capacity
        )
        scores.append(np.asarray(psnr)[: len(part)])
    return float(np.mean(np.concatenate(scores)))


def render_frames(state: TrainState, clip: DeviceClip, frames: np.ndarray, chunk: int, capacity):
    """``(rgb [n, H, W, 3], alpha [n, H, W])`` float32 host arrays of the head at ``frames``."""
    rgbs, alphas = [], []
    for start in range(0, len(frames), chunk):
        part = frames[start : start + chunk]
        index = np.concatenate([part, np.repeat(part[-1:], chunk - len(part))])
        render, _ = _render_chunk(
            state.graphdef, state.params, state.frozen, clip, jnp.asarray(index), capacity
        )
        rgbs.append(np.asarray(render.rgb)[: len(part)])
        alphas.append(np.asarray(render.alpha)[: len(part)])
    return np.concatenate(rgbs), np.concatenate(alphas)
