"""The Audio-Expression prior's network: an audio encoder and a transformer denoiser that
predicts a clean FLAME motion window from a noisy one (Flax NNX).

Data flow for one window of ``L = P + W`` frames (``P`` context frames, then ``W`` frames
being denoised):

1. **Audio** ``[B, L, F]`` per-video-frame features (4 log-mel frames, or pooled Wav2Vec2
   states) are standardised by dataset statistics, passed through a temporal conv front end
   (two kernel-3 convs over time, GELU) to ``audio_dim``, then a shallow transformer, then
   projected to ``d_model``. A dropped audio condition is one learned vector per frame.
2. **Motion tokens**: the ``P`` clean context frames (the previous window's last frames, or
   nothing at the start of a clip) and the ``W`` noisy frames, each projected to
   ``d_model``, plus a learned type embedding (noisy / context / no context) and a learned
   position embedding.
3. **Decoder**: ``layers`` pre-norm blocks of self-attention over all ``L`` tokens, FiLM,
   cross-attention to the audio under an alignment mask (frame ``i`` sees audio frames
   ``|i - j| <= cross_radius``), FiLM, and a GELU feed-forward. FiLM's scale and shift come
   from the diffusion-time embedding plus the identity embedding (a table of training
   identities and one learned "unknown identity" row), from zero-initialised layers, so
   every block starts as a plain transformer block.
4. **Output**: the last ``W`` tokens -> the predicted clean motion ``x̂0 [B, W, M]``, in
   normalised units (zero-initialised: the untrained network predicts the dataset mean).

Motion is ``[expression (n_expression), jaw_pose (3), global_pose (3, optional)]`` per frame
(:class:`MotionLayout`), standardised by dataset statistics stored in the module
(:class:`DataStats`, saved with checkpoints and priors, never trained).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ggtalker_jax.config.a2e import A2EConfig
from ggtalker_jax.models.layers import compute_dtype

__all__ = [
    "AudioExpressionPrior",
    "DataStats",
    "MotionLayout",
    "timestep_embedding",
]

STD_FLOOR = 1e-4  # a motion dimension that never moves (jaw roll) is left at zero, not blown up


class DataStats(nnx.Variable):
    """Dataset statistics the network standardises by (motion and audio features)."""


@dataclasses.dataclass(frozen=True)
class MotionLayout:
    """Where each FLAME field sits in a motion frame ``[M]``.

    Attributes:
      n_expression: expression coefficients (the first ``n_expression`` of the model's).
      head_pose: whether the head rotation (``global_pose``) follows the jaw.
    """

    n_expression: int
    head_pose: bool = False

    @property
    def dim(self) -> int:
        """``M``: values per frame."""
        return self.n_expression + 3 + (3 if self.head_pose else 0)

    def pack(self, expression, jaw_pose, global_pose=None):  # [..., E], [..., 3] -> [..., M]
        """FLAME fields -> motion frames (extra expression coefficients are dropped)."""
        parts = [expression[..., : self.n_expression], jaw_pose]
        if self.head_pose:
            parts.append(global_pose)
        return np.concatenate([np.asarray(p, np.float32) for p in parts], axis=-1)

    def unpack(self, motion, n_model_expression: int) -> dict:
        """Motion frames ``[..., M]`` -> ``{"expression" [..., E_model], "jaw_pose" [..., 3],
        "global_pose" [..., 3] (zeros without head pose)}`` (unpredicted coefficients 0)."""
        motion = np.asarray(motion, np.float32)
        lead = motion.shape[:-1]
        expression = np.zeros((*lead, n_model_expression), np.float32)
        expression[..., : self.n_expression] = motion[..., : self.n_expression]
        e = self.n_expression
        pose = motion[..., e + 3 : e + 6] if self.head_pose else np.zeros((*lead, 3), np.float32)
        return {"expression": expression, "jaw_pose": motion[..., e : e + 3], "global_pose": pose}


def timestep_embedding(t: jax.Array, dim: int, max_period: float = 10_000.0) -> jax.Array:
    """Sinusoidal embedding ``[B, dim]`` of integer steps ``t [B]`` (Vaswani et al.)."""
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    angles = t.astype(jnp.float32)[:, None] * freqs[None, :]
    emb = jnp.concatenate([jnp.cos(angles), jnp.sin(angles)], axis=-1)
    return jnp.pad(emb, ((0, 0), (0, dim - 2 * half)))


def _dropout(x: jax.Array, rate: float, keys: jax.Array | None) -> jax.Array:
    """Inverted dropout with one key per batch element (``keys [B]``), so an example's mask
    does not depend on how the batch is split over devices."""
    if keys is None or rate == 0.0:
        return x
    keep = jax.vmap(lambda k: jax.random.bernoulli(k, 1.0 - rate, x.shape[1:]))(keys)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x)).astype(x.dtype)


def _lead(stat: nnx.Variable, x: jax.Array) -> jax.Array:
    """A per-channel statistic ``[C]`` shaped to broadcast against ``x [..., C]``."""
    value = stat.get_value()
    return value.reshape((1,) * (x.ndim - 1) + value.shape)


def _fold(keys: jax.Array | None, i: int) -> jax.Array | None:
    return None if keys is None else jax.vmap(jax.random.fold_in, (0, None))(keys, i)


class Attention(nnx.Module):
    """Multi-head attention ``[B, T, d] x [B, S, d] -> [B, T, d]`` with a boolean mask."""

    def __init__(self, dim: int, heads: int, rngs: nnx.Rngs, dtype=jnp.float32):
        self.heads = heads
        linear = lambda: nnx.Linear(dim, dim, rngs=rngs, dtype=dtype)
        self.query, self.key, self.value, self.out = linear(), linear(), linear(), linear()

    def __call__(self, x, context, mask=None):  # mask [T, S] bool or None
        b, t, d = x.shape
        split = lambda y: y.reshape(*y.shape[:2], self.heads, d // self.heads)
        q, k, v = split(self.query(x)), split(self.key(context)), split(self.value(context))
        # Scores and softmax in float32 whatever the activation dtype (windows are ~110 frames:
        # the [B, heads, T, S] scores are small, and XLA fuses this on every backend).
        scale = 1.0 / math.sqrt(d // self.heads)
        logits = jnp.einsum("btnh,bsnh->bnts", q, k, preferred_element_type=jnp.float32) * scale
        if mask is not None:
            logits = jnp.where(mask[None, None], logits, -1e30)
        weights = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
        y = jnp.einsum("bnts,bsnh->btnh", weights, v)
        return self.out(y.reshape(b, t, d))


class Block(nnx.Module):
    """Pre-norm transformer block: self-attention, [FiLM, cross-attention, FiLM], feed-forward.

    With ``cross=False`` it is a plain encoder block (the audio transformer).
    """

    def __init__(self, dim, heads, ffn_ratio, cond_dim, rngs, *, cross: bool, dtype):
        self.cross = cross
        norm = lambda: nnx.LayerNorm(dim, rngs=rngs, dtype=jnp.float32)
        self.norm_self, self.self_attention = norm(), Attention(dim, heads, rngs, dtype)
        if cross:
            zeros = nnx.initializers.zeros
            film = lambda: nnx.Linear(
                cond_dim, 2 * dim, rngs=rngs, kernel_init=zeros, bias_init=zeros
            )
            self.film_self, self.film_cross = film(), film()
            self.norm_cross, self.cross_attention = norm(), Attention(dim, heads, rngs, dtype)
        self.norm_ffn = norm()
        self.ffn_in = nnx.Linear(dim, ffn_ratio * dim, rngs=rngs, dtype=dtype)
        self.ffn_out = nnx.Linear(ffn_ratio * dim, dim, rngs=rngs, dtype=dtype)

    @staticmethod
    def _film(x, layer, cond):  # cond [B, C] -> x * (1 + scale) + shift
        scale, shift = jnp.split(layer(cond)[:, None, :].astype(x.dtype), 2, axis=-1)
        return x * (1 + scale) + shift

    def __call__(self, x, *, audio=None, cross_mask=None, cond=None, rate=0.0, keys=None):
        dt = x.dtype
        h = self.norm_self(x.astype(jnp.float32)).astype(dt)
        x = x + _dropout(self.self_attention(h, h), rate, _fold(keys, 0))
        if self.cross:
            x = self._film(x, self.film_self, cond)
            h = self.norm_cross(x.astype(jnp.float32)).astype(dt)
            x = x + _dropout(self.cross_attention(h, audio, cross_mask), rate, _fold(keys, 1))
            x = self._film(x, self.film_cross, cond)
        h = self.ffn_out(jax.nn.gelu(self.ffn_in(self.norm_ffn(x.astype(jnp.float32)).astype(dt))))
        return x + _dropout(h, rate, _fold(keys, 2))


class AudioExpressionPrior(nnx.Module):
    """Audio encoder + motion denoiser (see the module docstring for the data flow).

    Args:
      config: the A2E section (sizes, window, dropout, dtype).
      feature_dim: ``F``, audio feature values per video frame.
      motion: the :class:`MotionLayout` (``M = motion.dim``).
      n_identities: training identities; row ``n_identities`` of the table is "unknown".
      rngs: initialisation keys.
    """

    def __init__(
        self,
        config: A2EConfig,
        feature_dim: int,
        motion: MotionLayout,
        n_identities: int,
        rngs: nnx.Rngs,
    ):
        self.config, self.motion, self.n_identities = config, motion, n_identities
        dt = compute_dtype(config.compute_dtype)
        d, a, m, frames = config.d_model, config.audio_dim, motion.dim, config.frames
        normal = nnx.initializers.normal(0.02)
        # Dataset statistics (set by the trainer from its data, stored in every checkpoint).
        self.motion_mean = DataStats(jnp.zeros((m,), jnp.float32))
        self.motion_std = DataStats(jnp.ones((m,), jnp.float32))
        self.feature_mean = DataStats(jnp.zeros((feature_dim,), jnp.float32))
        self.feature_std = DataStats(jnp.ones((feature_dim,), jnp.float32))
        # Audio encoder.
        self.front_in = nnx.Conv(feature_dim, a, (3,), rngs=rngs, dtype=dt)
        self.front_out = nnx.Conv(a, a, (3,), rngs=rngs, dtype=dt)
        self.audio_position = nnx.Param(normal(rngs.params(), (frames, a)))
        self.audio_blocks = nnx.List(
            [
                Block(a, math.gcd(a, config.heads), 2, 0, rngs, cross=False, dtype=dt)
                for _ in range(config.audio_layers)
            ]
        )
        self.audio_norm = nnx.LayerNorm(a, rngs=rngs)
        self.audio_proj = nnx.Linear(a, d, rngs=rngs, dtype=dt)
        self.null_audio = nnx.Param(normal(rngs.params(), (d,)))
        # Conditions.
        self.identity_table = nnx.Embed(n_identities + 1, config.identity_dim, rngs=rngs)
        self.identity_proj = nnx.Linear(config.identity_dim, d, rngs=rngs)
        self.time_in = nnx.Linear(d, d, rngs=rngs)
        self.time_out = nnx.Linear(d, d, rngs=rngs)
        # Decoder.
        self.motion_in = nnx.Linear(m, d, rngs=rngs, dtype=dt)
        self.token_type = nnx.Embed(3, d, rngs=rngs, embedding_init=normal)
        self.position = nnx.Param(normal(rngs.params(), (frames, d)))
        self.blocks = nnx.List(
            [
                Block(d, config.heads, config.ffn_ratio, d, rngs, cross=True, dtype=dt)
                for _ in range(config.layers)
            ]
        )
        self.out_norm = nnx.LayerNorm(d, rngs=rngs)
        zeros = nnx.initializers.zeros
        self.motion_out = nnx.Linear(d, m, rngs=rngs, kernel_init=zeros, bias_init=zeros)

    # -- statistics -------------------------------------------------------------------------

    def normalize_motion(self, motion):  # [..., M] -> [..., M]
        mean, std = _lead(self.motion_mean, motion), _lead(self.motion_std, motion)
        return (motion - mean) / std

    def denormalize_motion(self, motion):  # [..., M] -> [..., M]
        mean, std = _lead(self.motion_mean, motion), _lead(self.motion_std, motion)
        return motion * std + mean

    def unknown_identity(self) -> int:
        """The identity index of the learned "unknown identity" embedding."""
        return self.n_identities

    # -- the network ------------------------------------------------------------------------

    def encode_audio(
        self,
        features: jax.Array,  # [B, L, F]
        drop: jax.Array | None = None,  # [B] bool: replace by the null condition
        keys: jax.Array | None = None,  # [B] dropout keys (training); None: no dropout
    ) -> jax.Array:  # [B, L, d]
        """Audio features -> the decoder's cross-attention memory."""
        dt = compute_dtype(self.config.compute_dtype)
        x = (features - _lead(self.feature_mean, features)) / _lead(self.feature_std, features)
        x = jax.nn.gelu(self.front_in(x.astype(dt)))
        x = jax.nn.gelu(self.front_out(x)) + self.audio_position.get_value().astype(dt)[None]
        for i, block in enumerate(self.audio_blocks):
            x = block(x, rate=self.config.dropout, keys=_fold(keys, i))
        x = self.audio_proj(self.audio_norm(x.astype(jnp.float32)).astype(dt))
        if drop is not None:
            null = self.null_audio.get_value().astype(dt)
            x = jnp.where(drop[:, None, None], null[None, None, :], x)
        return x

    def __call__(
        self,
        x_t: jax.Array,  # [B, W, M] noisy normalised motion
        t: jax.Array,  # [B] int diffusion step
        context: jax.Array,  # [B, P, M] clean normalised motion before the window
        has_context: jax.Array,  # [B] bool
        audio: jax.Array,  # [B, L, d] from encode_audio
        identity: jax.Array,  # [B] int, n_identities = unknown
        keys: jax.Array | None = None,  # [B] dropout keys (training); None: no dropout
    ) -> jax.Array:  # [B, W, M] predicted clean normalised motion
        """Predict the clean window ``x̂0`` (normalised units)."""
        cfg = self.config
        dt = compute_dtype(cfg.compute_dtype)
        p = context.shape[1]
        time = self.time_out(jax.nn.silu(self.time_in(timestep_embedding(t, cfg.d_model))))
        cond = time + self.identity_proj(self.identity_table(identity))
        context = jnp.where(has_context[:, None, None], context, jnp.zeros_like(context))
        tokens = self.motion_in(jnp.concatenate([context, x_t], axis=1).astype(dt))
        types = jnp.concatenate(
            [
                jnp.broadcast_to(jnp.where(has_context, 1, 2)[:, None], (t.shape[0], p)),
                jnp.zeros((t.shape[0], x_t.shape[1]), jnp.int32),
            ],
            axis=1,
        )
        h = tokens + self.token_type(types).astype(dt) + self.position.get_value().astype(dt)[None]
        n = h.shape[1]
        offsets = jnp.arange(n)[:, None] - jnp.arange(audio.shape[1])[None, :]
        cross_mask = jnp.abs(offsets) <= cfg.cross_radius
        for i, block in enumerate(self.blocks):
            h = block(
                h,
                audio=audio,
                cross_mask=cross_mask,
                cond=cond,
                rate=cfg.dropout,
                keys=_fold(keys, 100 + i),
            )
        return self.motion_out(self.out_norm(h[:, p:].astype(jnp.float32)))
