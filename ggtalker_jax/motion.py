"""Speech -> FLAME motion with the A2E prior: windows, guidance, DDIM.

Audio of any length is cut into windows of ``W`` frames that start every ``W - O`` frames
(``O`` = ``overlap``). Window ``k`` sees the audio of its own frames and of the ``P`` frames
before it, and is conditioned on the ``P`` motion frames before its start, which earlier
windows made (the first window has no context and sees silence before the clip). Over the
``O`` frames it shares with the window before, its prediction fades in linearly
(``(i + 1) / (O + 1)`` at shared frame ``i``), so a border adds at most ``1 / (O + 1)`` of
any disagreement to one frame's step: without the fade, the first frame after the context
jumped about twice as far as the average frame (measured on the shipped priors, 30 s of
speech). The last window is padded with silence and cut back to the clip's length.

Each window is one jitted call: the audio is encoded once per condition, then DDIM runs
``sample_steps`` denoiser evaluations with guidance (the conditional, audio-only and
unconditional predictions in one batch of three; two for an unknown speaker, whose first two
coincide) or, for a regression model, one pass.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ggtalker_jax.config.a2e import A2EConfig
from ggtalker_jax.diffusion import cosine_alphas_cumprod, ddim_timesteps, guide, sample_ddim
from ggtalker_jax.errors import InputError

__all__ = ["Speaker", "sample_motion", "window_count"]


def window_count(n_frames: int, window: int, overlap: int = 0) -> int:
    """Windows that cover ``n_frames`` frames when consecutive ones share ``overlap``."""
    rest = max(int(n_frames) - int(window), 0)
    return 1 + -(-rest // (int(window) - int(overlap)))


@functools.partial(jax.jit, static_argnames=("config", "known"))
def _sample_window(graphdef, state, features, context, has_context, identity, key, config, known):
    """One window: ``features [B, L, F]``, ``context [B, P, M]`` (normalised),
    ``has_context [B]``, ``identity [B]`` -> ``x̂0 [B, W, M]`` (normalised). ``known``: the
    identities are training ones (three guided predictions a step); otherwise all are the
    unknown speaker, whose conditional and audio-only predictions coincide (two)."""
    model = nnx.merge(graphdef, state)
    b, w, m = features.shape[0], config.window, model.motion.dim
    if config.objective == "regression":
        audio = model.encode_audio(features)
        zeros_t = jnp.zeros((b,), jnp.int32)
        return model(jnp.zeros((b, w, m)), zeros_t, context, has_context, audio, identity)
    n = 3 if known else 2  # [identity +] audio-only + unconditional
    unknown = jnp.full((b,), model.unknown_identity(), jnp.int32)
    drop = jnp.concatenate([jnp.zeros(((n - 1) * b,), bool), jnp.ones((b,), bool)])
    audio = model.encode_audio(jnp.concatenate([features] * n), drop)
    ids = jnp.concatenate(([identity] if known else []) + [unknown, unknown])
    ctx, has = jnp.concatenate([context] * n), jnp.concatenate([has_context] * n)
    acp = jnp.asarray(cosine_alphas_cumprod(config.diffusion_steps))

    def predict(x, t):
        x0 = model(jnp.concatenate([x] * n), jnp.full((n * b,), t), ctx, has, audio, ids)
        parts = jnp.split(x0, n)
        full, audio_only, uncond = parts if known else (parts[0], parts[0], parts[1])
        return guide(uncond, audio_only, full, config.audio_guidance, config.identity_guidance)

    steps = ddim_timesteps(config.diffusion_steps, config.sample_steps)
    return sample_ddim(predict, (b, w, m), key, acp, steps)


def sample_motion(
    model,
    features: np.ndarray,  # [T, F] or [B, T, F]
    key: jax.Array,
    silence: np.ndarray,  # [F]
    identity: int | np.ndarray | None = None,
) -> np.ndarray:  # [T, M] or [B, T, M]
    """Motion for whole clips of audio features, window by window.

    Args:
      model: an :class:`~ggtalker_jax.models.a2e.AudioExpressionPrior`.
      features: per-frame audio features (:mod:`ggtalker_jax.models.audio_encoder`).
      key: sampling key; the result is a pure function of it (window ``k`` uses
        ``fold_in(key, k)``).
      silence: ``[F]`` features of silence (padding before the clip and after its end).
      identity: training-identity index (or ``[B]`` of them); ``None`` uses the learned
        "unknown identity".

    Returns:
      Motion frames in FLAME units (:class:`~ggtalker_jax.models.a2e.MotionLayout`).

    Raises:
      InputError: no frames, features of the wrong size, NaN features, or an identity
        index outside the table.
    """
    config: A2EConfig = model.config
    features = np.asarray(features, np.float32)
    single = features.ndim == 2
    features = features[None] if single else features
    b, t, f = features.shape
    if t == 0:
        raise InputError("sample_motion: the audio has no frames; pass at least 1/25 s")
    if f != silence.shape[-1]:
        raise InputError(
            f"sample_motion: features have {f} values a frame, the prior's encoder makes "
            f"{silence.shape[-1]}; extract them with the prior's own feature extractor"
        )
    if not np.all(np.isfinite(features)):
        raise InputError("sample_motion: the audio features contain NaN or inf; check the audio")
    unknown = model.unknown_identity()
    ids = np.full((b,), unknown if identity is None else identity, np.int64).reshape(b)
    if np.any((ids < 0) | (ids > unknown)):
        raise InputError(
            f"sample_motion: identity index {ids.max()} is outside the prior's table "
            f"(0..{unknown - 1}, or None for an unknown speaker)"
        )
    p, w, o = config.context, config.window, config.overlap
    n = window_count(t, w, o)
    stride = w - o
    total = (n - 1) * stride + w
    padded = np.broadcast_to(silence, (b, p + total, f)).copy()
    padded[:, p : p + t] = features
    graphdef, state = nnx.split(model)
    out = np.zeros((b, total, model.motion.dim), np.float32)
    context = np.zeros((b, p, model.motion.dim), np.float32)
    has_context = np.zeros((b,), bool)
    fade_in = ((np.arange(o, dtype=np.float32) + 1) / (o + 1))[None, :, None]
    for k in range(n):
        s = k * stride
        x0 = np.asarray(
            _sample_window(
                graphdef,
                state,
                jnp.asarray(padded[:, s : s + p + w]),
                jnp.asarray(context),
                jnp.asarray(has_context),
                jnp.asarray(ids, jnp.int32),
                jax.random.fold_in(key, k),
                config,
                known=bool(np.any(ids != unknown)),
            )
        )
        if k == 0:
            out[:, :w] = x0
        else:
            out[:, s : s + o] = (1 - fade_in) * out[:, s : s + o] + fade_in * x0[:, :o]
            out[:, s + o : s + w] = x0[:, o:]
        # The next window starts at s + stride; the frames before it are final.
        context, has_context = out[:, s + stride - p : s + stride], np.ones((b,), bool)
    motion = np.asarray(model.denormalize_motion(jnp.asarray(out[:, :t])))
    return motion[0] if single else motion


class Speaker:
    """A trained A2E prior ready to turn speech into FLAME motion.

    Args:
      prior: the :class:`~ggtalker_jax.models.a2e.AudioExpressionPrior`.
      extractor: its audio feature extractor
        (:func:`~ggtalker_jax.models.audio_encoder.make_feature_extractor`).
      identities: the training identities' names, in table order.
      n_model_expression: the FLAME model's expression count (unpredicted ones are 0).
    """

    def __init__(self, prior, extractor, identities: list[str], n_model_expression: int):
        self.prior, self.extractor = prior, extractor
        self.identities = list(identities)
        self.n_model_expression = int(n_model_expression)
        self.silence = extractor.silence()

    def identity_index(self, name: str | None) -> int | None:
        """The table index of a training identity's name (``None``: unknown speaker).

        Raises:
          InputError: a name the prior was not trained on (lists a few it was).
        """
        if name is None:
            return None
        try:
            return self.identities.index(name)
        except ValueError:
            some = ", ".join(self.identities[:4])
            raise InputError(
                f"identity {name!r} is not one of the prior's {len(self.identities)} training "
                f"identities ({some}, ...); leave --identity out for an unknown speaker"
            ) from None

    def motion_batch(
        self,
        audio: np.ndarray,  # [B, A] 16 kHz
        key: jax.Array,
        n_frames: int | None = None,
        identity: str | None = None,
    ) -> dict[str, np.ndarray]:
        """FLAME fields ``{"expression" [B, T, E], "jaw_pose" [B, T, 3], "global_pose"
        [B, T, 3]}`` for clips of one length (``T`` from the audio unless given)."""
        features = self.extractor.batch(audio, n_frames)
        motion = sample_motion(
            self.prior, features, key, self.silence, self.identity_index(identity)
        )
        return self.prior.motion.unpack(motion, self.n_model_expression)

    def speak(self, audio: np.ndarray, key: jax.Array, identity: str | None = None) -> dict:
        """FLAME fields ``[T, ...]`` for one clip ``audio [A]`` (16 kHz mono).

        Audio shorter than one video frame gives one frame (padded with silence).
        """
        audio = np.asarray(audio, np.float32)
        if audio.ndim != 1 or audio.shape[0] == 0:
            raise InputError(
                f"speak: audio has shape {audio.shape}; expected mono samples [A] with A >= 1"
            )
        if not np.all(np.isfinite(audio)):
            raise InputError("speak: the audio contains NaN or inf samples; fix the signal")
        fields = self.motion_batch(audio[None], key, identity=identity)
        return {k: v[0] for k, v in fields.items()}
