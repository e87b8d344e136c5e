"""The Wav2Vec2 / HuBERT network (Flax NNX, eval mode) and its configuration.

The network is Hugging Face's ``Wav2Vec2Model`` / ``HubertModel`` (Baevski et al. 2020, Hsu et
al. 2021), rewritten layer for layer so that their checkpoints load unchanged
(:func:`ggtalker_jax.models.wav2vec2.load_wav2vec2`, the public entry point):

1. Feature encoder: a stack of strided 1-D convs over the raw 16 kHz waveform, each followed by
   GELU. ``feat_extract_norm="group"`` (base models) puts a per-channel GroupNorm after the
   first conv only; ``"layer"`` (large "lv60" models) a LayerNorm over channels after every
   conv. The standard stack (kernels 10,3,3,3,3,2,2, strides 5,2,2,2,2,2,2) has a stride of
   320 samples (20 ms, 50 Hz) and a receptive field of 400 samples (25 ms).
2. Feature projection: LayerNorm (HuBERT: only if ``feat_proj_layer_norm``) and a linear map
   from the last conv's channels to ``hidden_size``.
3. Positional embedding: one grouped conv over time (``num_conv_pos_embeddings`` taps,
   ``num_conv_pos_embedding_groups`` groups, "same" length: an even kernel drops the last
   output) and GELU, added to its input. The checkpoint stores its weight weight-normalised;
   the importer folds it into one plain kernel.
4. Transformer: ``num_hidden_layers`` blocks of multi-head self-attention and a GELU MLP.
   Post-norm ("base", ``do_stable_layer_norm=False``): LayerNorm after the positional
   embedding, then ``x = LN(x + Attn(x)); x = LN(x + MLP(x))``. Pre-norm ("stable", large
   models): ``x = x + Attn(LN(x)); x = x + MLP(LN(x))`` and one final LayerNorm at the end.

``layer=k`` of :meth:`Wav2Vec2Encoder.__call__` is ``hidden_states[k]`` of HF's
``output_hidden_states=True`` (transformers 5.x, checked against 5.24 by the fixtures):
``k = 0`` is the transformer's input (post-norm: after the positional embedding and its
LayerNorm; stable: after the positional embedding, un-normalised), ``k`` the output of block
``k``. ``layer=None`` is ``last_hidden_state``: the same as ``k = num_hidden_layers`` for
post-norm models, and that plus the final LayerNorm for stable ones (transformers 4.x
returned the normalised state as its last ``hidden_states`` entry too; 5.x does not).

Not supported, because frozen feature extraction of whole clips needs none of it: attention
masks and padding (run each clip at its own length, or batch clips of one length), dropout,
LayerDrop and SpecAugment (eval mode), the CTC and pre-training heads.

Every matmul and conv runs in float32 at ``Precision.HIGHEST``: GPUs otherwise use TF32
(10-bit mantissa, ~5e-4 relative error per product), which alone would exceed the 1e-4
relative parity with PyTorch that the tests hold (measured: 3e-7 on CPU).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from ggtalker_jax.errors import InputError
from ggtalker_jax.types import FPS, SAMPLE_RATE

__all__ = ["Wav2Vec2Config", "Wav2Vec2Encoder"]

HIGHEST = jax.lax.Precision.HIGHEST
# torch's GroupNorm / LayerNorm default, which HF's conv layers keep (config.layer_norm_eps
# is used by the projection and the transformer only).
CONV_NORM_EPS = 1e-5
MODEL_TYPES = ("wav2vec2", "hubert")

# config.json keys that select parts this port does not have: key -> (the value that is
# supported, what the other value would add).
_REFUSED = {
    "add_adapter": (False, "a conv adapter after the transformer"),
    "adapter_attn_dim": (None, "attention adapters in every block"),
    "conv_pos_batch_norm": (False, "a BatchNorm before the positional conv"),
    "hidden_act": ("gelu", "another activation in the MLP"),
    "feat_extract_activation": ("gelu", "another activation in the convs"),
}


@dataclasses.dataclass(frozen=True)
class Wav2Vec2Config:
    """The architecture, from a Hugging Face ``config.json`` (defaults: wav2vec2-base).

    Attributes:
      model_type: ``"wav2vec2"`` or ``"hubert"``.
      hidden_size, num_hidden_layers, num_attention_heads, intermediate_size: the transformer
        (``D``, blocks, heads, MLP width).
      conv_dim, conv_kernel, conv_stride: per conv layer of the feature encoder: channels,
        taps, stride (samples, then frames).
      conv_bias: whether those convs have a bias.
      feat_extract_norm: ``"group"`` or ``"layer"`` (module docstring, step 1).
      feat_proj_layer_norm: LayerNorm before the projection (always on for wav2vec2).
      num_conv_pos_embeddings, num_conv_pos_embedding_groups: the positional conv.
      do_stable_layer_norm: pre-norm blocks plus a final LayerNorm (module docstring, step 4).
      layer_norm_eps: epsilon of the projection's and the transformer's LayerNorms.
      do_normalize: the folder's ``preprocessor_config.json`` ``do_normalize`` (whether the
        checkpoint expects input standardised by ``wav2vec2.normalize_audio``); ``None``
        when the folder has no such file.
    """

    model_type: str = "wav2vec2"
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    conv_dim: tuple[int, ...] = (512, 512, 512, 512, 512, 512, 512)
    conv_kernel: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_stride: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    conv_bias: bool = False
    feat_extract_norm: str = "group"
    feat_proj_layer_norm: bool = True
    num_conv_pos_embeddings: int = 128
    num_conv_pos_embedding_groups: int = 16
    do_stable_layer_norm: bool = False
    layer_norm_eps: float = 1e-5
    do_normalize: bool | None = None

    @classmethod
    def from_hf_dict(cls, d: dict[str, Any], source: str = "config.json") -> Wav2Vec2Config:
        """Reads and checks a parsed HF ``config.json``; missing keys take HF's defaults.

        Raises:
          InputError: another model type, a malformed value, or an option this port lacks
            (one line naming ``source``, the key and the value).
        """
        if not isinstance(d, dict):
            raise InputError(f"{source}: holds a {type(d).__name__}, not a JSON object")
        model_type = d.get("model_type")
        if model_type not in MODEL_TYPES:
            raise InputError(
                f"{source}: model_type {model_type!r} is not supported; expected one of "
                f"{MODEL_TYPES} (WavLM, data2vec-audio and Conformer variants have other layers)"
            )
        for key, (supported, adds) in _REFUSED.items():
            if d.get(key, supported) != supported:
                raise InputError(
                    f"{source}: {key}={d[key]!r} ({adds}) is not supported; "
                    f"only {key}={supported!r} checkpoints load"
                )
        defaults = cls()
        values = {
            f.name: d.get(f.name, getattr(defaults, f.name))
            for f in dataclasses.fields(cls)
            if f.name not in ("model_type", "do_normalize")
        }
        if model_type == "wav2vec2":  # its projection always has the LayerNorm
            values["feat_proj_layer_norm"] = True
        try:
            for key in ("conv_dim", "conv_kernel", "conv_stride"):
                values[key] = tuple(int(v) for v in values[key])
            config = cls(model_type=model_type, **values)
        except (TypeError, ValueError) as e:
            raise InputError(
                f"{source}: a malformed value ({e}); re-save it with transformers"
            ) from None
        config.check(source)
        return config

    def check(self, source: str = "Wav2Vec2Config") -> None:
        """Raises a one-line InputError if the sizes do not make a network."""
        problems = [
            (self.feat_extract_norm in ("group", "layer"), "feat_extract_norm", "group or layer"),
            (
                len(self.conv_dim) == len(self.conv_kernel) == len(self.conv_stride) > 0,
                "conv_dim/conv_kernel/conv_stride",
                "three lists of one length",
            ),
            (
                min(self.conv_dim + self.conv_kernel + self.conv_stride, default=1) > 0,
                "conv_dim/conv_kernel/conv_stride",
                "positive",
            ),
            (self.num_hidden_layers >= 0, "num_hidden_layers", ">= 0"),
            (
                self.num_attention_heads > 0 and self.hidden_size % self.num_attention_heads == 0,
                "hidden_size/num_attention_heads",
                "hidden_size a multiple of num_attention_heads",
            ),
            (
                self.num_conv_pos_embedding_groups > 0
                and self.hidden_size % self.num_conv_pos_embedding_groups == 0,
                "hidden_size/num_conv_pos_embedding_groups",
                "hidden_size a multiple of num_conv_pos_embedding_groups",
            ),
            (self.num_conv_pos_embeddings > 0, "num_conv_pos_embeddings", "> 0"),
        ]
        for ok, key, want in problems:
            if not ok:
                value = {k: getattr(self, k) for k in key.split("/")}
                raise InputError(f"{source}: {value} is invalid; expected {want}")

    @property
    def receptive_field(self) -> int:
        """Samples one output frame sees (400 for the standard conv stack)."""
        field = 1
        for kernel, stride in zip(self.conv_kernel[::-1], self.conv_stride[::-1], strict=True):
            field = (field - 1) * stride + kernel
        return field

    @property
    def hop(self) -> int:
        """Samples between output frames (320 = 20 ms for the standard stack)."""
        return math.prod(self.conv_stride)

    def num_frames(self, n_samples: int) -> int:
        """Output frames for ``n_samples`` of audio: ``floor((A - field) / hop) + 1``, 0 if
        the clip is shorter than the receptive field (each conv is unpadded)."""
        n = int(n_samples)
        for kernel, stride in zip(self.conv_kernel, self.conv_stride, strict=True):
            n = (n - kernel) // stride + 1 if n >= kernel else 0
        return n


def _gelu(x: jax.Array) -> jax.Array:
    return jax.nn.gelu(x, approximate=False)  # torch's default GELU (erf), HF's "gelu"


class ConvLayer(nnx.Module):
    """Conv1d (unpadded, strided) -> optional norm -> GELU: ``[B, L, Cin] -> [B, L', Cout]``.

    Args:
      norm: ``None``, ``"group"`` (per-channel statistics over time) or ``"layer"``
        (statistics over channels per frame).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel: int,
        stride: int,
        rngs: nnx.Rngs,
        *,
        bias: bool,
        norm: str | None,
    ):
        self.conv = nnx.Conv(
            in_features,
            out_features,
            (kernel,),
            strides=(stride,),
            padding="VALID",
            use_bias=bias,
            precision=HIGHEST,
            rngs=rngs,
        )
        # Two-pass variance (not E[x²] - E[x]², which cancels digits when a channel's mean
        # is large next to its spread, as after the first conv of a loud waveform).
        norm_args = dict(epsilon=CONV_NORM_EPS, use_fast_variance=False, rngs=rngs)
        if norm == "group":  # one group per channel: statistics over time
            self.layer_norm = nnx.GroupNorm(out_features, num_groups=out_features, **norm_args)
        elif norm == "layer":
            self.layer_norm = nnx.LayerNorm(out_features, **norm_args)
        else:
            self.layer_norm = None

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.conv(x)
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        return _gelu(x)


class FeatureEncoder(nnx.Module):
    """The conv stack: ``[B, A, 1]`` waveform -> ``[B, T50, conv_dim[-1]]``."""

    def __init__(self, config: Wav2Vec2Config, rngs: nnx.Rngs):
        group = config.feat_extract_norm == "group"
        channels = (1, *config.conv_dim)
        self.conv_layers = nnx.List(
            [
                ConvLayer(
                    channels[i],
                    channels[i + 1],
                    config.conv_kernel[i],
                    config.conv_stride[i],
                    rngs,
                    bias=config.conv_bias,
                    norm=("group" if i == 0 else None) if group else "layer",
                )
                for i in range(len(config.conv_dim))
            ]
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        for conv in self.conv_layers:
            x = conv(x)
        return x


class FeatureProjection(nnx.Module):
    """(LayerNorm ->) Linear: ``[B, T, conv_dim[-1]] -> [B, T, D]``."""

    def __init__(self, config: Wav2Vec2Config, rngs: nnx.Rngs):
        c = config.conv_dim[-1]
        self.layer_norm = (
            nnx.LayerNorm(c, epsilon=config.layer_norm_eps, use_fast_variance=False, rngs=rngs)
            if config.feat_proj_layer_norm
            else None
        )
        self.projection = nnx.Linear(c, config.hidden_size, precision=HIGHEST, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        return self.projection(x)


class PositionalConvEmbedding(nnx.Module):
    """Grouped conv over time then GELU, same length: ``[B, T, D] -> [B, T, D]``.

    HF pads ``K // 2`` frames on both sides and, for an even ``K``, drops the last output;
    padding ``(K // 2, (K - 1) // 2)`` gives the same ``T`` outputs directly.
    """

    def __init__(self, config: Wav2Vec2Config, rngs: nnx.Rngs):
        k, d = config.num_conv_pos_embeddings, config.hidden_size
        self.conv = nnx.Conv(
            d,
            d,
            (k,),
            padding=((k // 2, (k - 1) // 2),),
            feature_group_count=config.num_conv_pos_embedding_groups,
            precision=HIGHEST,
            rngs=rngs,
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        return _gelu(self.conv(x))


class SelfAttention(nnx.Module):
    """Multi-head self-attention, no mask: ``[B, T, D] -> [B, T, D]``."""

    def __init__(self, config: Wav2Vec2Config, rngs: nnx.Rngs):
        d = config.hidden_size
        self.num_heads = config.num_attention_heads
        dense = dict(precision=HIGHEST, rngs=rngs)
        self.q_proj = nnx.Linear(d, d, **dense)
        self.k_proj = nnx.Linear(d, d, **dense)
        self.v_proj = nnx.Linear(d, d, **dense)
        self.out_proj = nnx.Linear(d, d, **dense)

    def __call__(self, x: jax.Array) -> jax.Array:
        b, t, d = x.shape
        heads = lambda y: y.reshape(b, t, self.num_heads, d // self.num_heads)  # [B, T, H, Dh]
        q, k, v = heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x))
        scale = (d // self.num_heads) ** -0.5
        logits = jnp.einsum("bqhc,bkhc->bhqk", q, k, precision=HIGHEST) * scale  # [B, H, T, T]
        weights = jax.nn.softmax(logits, axis=-1)
        out = jnp.einsum("bhqk,bkhc->bqhc", weights, v, precision=HIGHEST)  # [B, T, H, Dh]
        return self.out_proj(out.reshape(b, t, d))


class FeedForward(nnx.Module):
    """Linear -> GELU -> Linear: ``[B, T, D] -> [B, T, D]``."""

    def __init__(self, config: Wav2Vec2Config, rngs: nnx.Rngs):
        d, m = config.hidden_size, config.intermediate_size
        self.intermediate_dense = nnx.Linear(d, m, precision=HIGHEST, rngs=rngs)
        self.output_dense = nnx.Linear(m, d, precision=HIGHEST, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.output_dense(_gelu(self.intermediate_dense(x)))


class EncoderLayer(nnx.Module):
    """One transformer block, post-norm or pre-norm ("stable"): ``[B, T, D] -> [B, T, D]``."""

    def __init__(self, config: Wav2Vec2Config, rngs: nnx.Rngs):
        self.stable = config.do_stable_layer_norm
        norm = dict(epsilon=config.layer_norm_eps, use_fast_variance=False, rngs=rngs)
        self.attention = SelfAttention(config, rngs)
        self.layer_norm = nnx.LayerNorm(config.hidden_size, **norm)
        self.feed_forward = FeedForward(config, rngs)
        self.final_layer_norm = nnx.LayerNorm(config.hidden_size, **norm)

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.stable:
            x = x + self.attention(self.layer_norm(x))
            return x + self.feed_forward(self.final_layer_norm(x))
        x = self.layer_norm(x + self.attention(x))
        return self.final_layer_norm(x + self.feed_forward(x))


class TransformerEncoder(nnx.Module):
    """Positional embedding and the blocks: ``[B, T, D] -> [B, T, D]`` after ``layer`` blocks
    (see :meth:`Wav2Vec2Encoder.__call__` for the indexing)."""

    def __init__(self, config: Wav2Vec2Config, rngs: nnx.Rngs):
        self.stable = config.do_stable_layer_norm
        self.pos_conv_embed = PositionalConvEmbedding(config, rngs)
        self.layer_norm = nnx.LayerNorm(
            config.hidden_size, epsilon=config.layer_norm_eps, use_fast_variance=False, rngs=rngs
        )
        self.layers = nnx.List(
            [EncoderLayer(config, rngs) for _ in range(config.num_hidden_layers)]
        )

    def __call__(self, x: jax.Array, layer: int | None) -> jax.Array:
        x = x + self.pos_conv_embed(x)
        if not self.stable:
            x = self.layer_norm(x)
        for i in range(len(self.layers) if layer is None else layer):
            x = self.layers[i](x)
        if self.stable and layer is None:
            x = self.layer_norm(x)
        return x


class Wav2Vec2Encoder(nnx.Module):
    """Raw 16 kHz audio -> 50 Hz hidden states of a Wav2Vec2 / HuBERT model (module docstring).

    Build it with :func:`ggtalker_jax.models.wav2vec2.load_wav2vec2`; constructing it
    directly gives random weights (for shapes and tests). Attribute names follow HF's module
    names, so each parameter's path is its checkpoint key.

    Args:
      config: the architecture.
      rngs: parameter initialisation keys.
    """

    def __init__(self, config: Wav2Vec2Config, rngs: nnx.Rngs):
        config.check()
        self.config = config
        self.feature_extractor = FeatureEncoder(config, rngs)
        self.feature_projection = FeatureProjection(config, rngs)
        self.encoder = TransformerEncoder(config, rngs)

    def __call__(self, audio: jax.Array, *, layer: int | None = None) -> jax.Array:
        """Hidden states of whole clips (no padding mask: every sample counts).

        Args:
          audio: ``[B, A]`` float32 at 16 kHz, already ``normalize_audio``'d when
            ``config.do_normalize`` says so; ``A`` at least ``config.receptive_field``.
          layer: ``k`` in ``0..num_hidden_layers`` for HF's ``hidden_states[k]`` (0: the
            transformer's input, ``k``: after ``k`` blocks), ``None`` for HF's
            ``last_hidden_state`` (stable models: after the final LayerNorm, which
            ``hidden_states[num_hidden_layers]`` lacks). Only the blocks needed run.

        Returns:
          ``[B, T50, hidden_size]`` float32, ``T50 = config.num_frames(A)`` (``A // 320 - 1``
          for the standard conv stack when ``A`` is a multiple of 320).
        """
        n = self.config.num_hidden_layers
        if layer is not None and not (isinstance(layer, int) and 0 <= layer <= n):
            raise InputError(
                f"Wav2Vec2Encoder: layer={layer!r}; expected None (last_hidden_state) "
                f"or an int in 0..{n} (hidden_states index)"
            )
        if audio.ndim != 2 or audio.shape[1] < self.config.receptive_field:
            raise InputError(
                f"Wav2Vec2Encoder: audio has shape {tuple(audio.shape)}; expected [B, A] at "
                f"{SAMPLE_RATE} Hz with A >= {self.config.receptive_field} samples (one window; "
                f"a video frame at {FPS} fps is {SAMPLE_RATE // FPS})"
            )
        x = jnp.asarray(audio, jnp.float32)[:, :, None]  # [B, A, 1]
        features = self.feature_extractor(x)  # [B, T50, C]
        return self.encoder(self.feature_projection(features), layer)
