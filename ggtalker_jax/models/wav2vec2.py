"""Wav2Vec2 / HuBERT speech features: load a local Hugging Face checkpoint, standardise the
audio the way it was trained, and pool its 50 Hz hidden states to 25 fps video frames.

    encoder, config = load_wav2vec2("checkpoints/hubert-large-ls960-ft")
    x = normalize_audio(audio) if config.do_normalize else audio  # [B, A] 16 kHz
    hidden = encoder(x, layer=None)  # [B, T50, D]
    per_frame = frames_at_fps(hidden, n_frames)  # [B, T, D]

The network and its config are in :mod:`ggtalker_jax.models.wav2vec2_layers` (re-exported).

A checkpoint folder is what ``save_pretrained`` writes (or a hub snapshot): ``config.json``,
``model.safetensors`` and, optionally, ``preprocessor_config.json`` (its ``do_normalize``
lands in :attr:`Wav2Vec2Config.do_normalize`).

Security: only safetensors are read (:mod:`ggtalker_jax.models.wav2vec2_safetensors`, plain
numpy). A ``pytorch_model.bin`` is a pickle, and unpickling a downloaded file can run any
code it names, so it is refused with the one command that converts it (torch's
``weights_only=True`` loader, run once by the user, where torch is installed).

Keys: the model's own (``feature_extractor.conv_layers.0.conv.weight``), or with the
``wav2vec2.`` / ``hubert.`` prefix of a model saved with a head (``...ForCTC``); tensors the
encoder does not use (heads, ``masked_spec_embed``, quantizers) are ignored. Torch layouts
become flax ones: a linear weight ``[out, in]`` is transposed, a conv weight ``[out, in/g, k]``
becomes ``[k, in/g, out]``, norms' ``weight`` is flax's ``scale``. The positional conv is
weight-normalised, ``w = g · v / ||v||`` with the norm over every axis but the taps (torch's
``weight_norm(dim=2)``); it is stored as ``weight_g`` / ``weight_v`` (older transformers) or
``parametrizations.weight.original0`` / ``original1`` (newer) and folded here into one kernel.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ggtalker_jax.errors import InputError
from ggtalker_jax.models.wav2vec2_layers import Wav2Vec2Config, Wav2Vec2Encoder
from ggtalker_jax.models.wav2vec2_safetensors import SafetensorsFile

__all__ = [
    "Wav2Vec2Config",
    "Wav2Vec2Encoder",
    "frames_at_fps",
    "load_wav2vec2",
    "normalize_audio",
    "read_wav2vec2_config",
]

KEY_PREFIXES = ("", "wav2vec2.", "hubert.")
NORMALIZE_EPS = 1e-7  # HF's Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm
_PROBE_KEY = "feature_extractor.conv_layers.0.conv.weight"  # every model has it
_POS_CONV = ("encoder", "pos_conv_embed", "conv", "kernel")
# (g, v) names of the weight-normalised positional conv, newest first.
_WEIGHT_NORM_NAMES = (
    ("parametrizations.weight.original0", "parametrizations.weight.original1"),
    ("weight_g", "weight_v"),
)
_FIX = "re-save the checkpoint with transformers' save_pretrained (it writes model.safetensors)"
_MISMATCH = "the weights and config.json are from different models (re-download both)"


def normalize_audio(audio: jax.Array) -> jax.Array:
    """Zero mean, unit variance per clip, as HF's ``Wav2Vec2FeatureExtractor`` does when its
    ``preprocessor_config.json`` sets ``do_normalize`` (``config.do_normalize`` after
    :func:`load_wav2vec2`). The encoder does not apply it itself: call this first for those
    checkpoints (most large and HuBERT models), and not for the others.

    Args:
      audio: ``[..., A]`` samples.

    Returns:
      ``[..., A]`` float32 ``(x - mean) / sqrt(var + 1e-7)`` over the last axis.
    """
    audio = jnp.asarray(audio, jnp.float32)
    mean = jnp.mean(audio, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(audio - mean), axis=-1, keepdims=True)
    return (audio - mean) / jnp.sqrt(var + NORMALIZE_EPS)


def frames_at_fps(features: jax.Array, n_frames: int) -> jax.Array:
    """50 Hz encoder frames -> 25 fps video frames, the mean of each pair.

    Alignment: video frame ``t`` covers audio ``[t/25, (t+1)/25)`` s = samples
    ``[640 t, 640 (t+1))``. Encoder frame ``j`` sees samples ``[320 j, 320 j + 400)`` (stride
    20 ms, receptive field 25 ms), centred at ``320 j + 200``; frames ``2t`` and ``2t+1`` have
    their centres at 12.5 ms and 32.5 ms into video frame ``t``, so their mean describes it.
    A clip of exactly ``640 T`` samples gives ``2T - 1`` encoder frames (the last window would
    overrun the clip), so the missing frames at the end repeat the last one; extra frames
    (longer audio) are cut.

    Args:
      features: ``[B, T50, D]`` with ``T50 >= 1``.
      n_frames: ``T``, the video frames wanted.

    Returns:
      ``[B, T, D]``.
    """
    b, t50, d = features.shape
    if t50 < 1 or n_frames < 0:
        raise InputError(
            f"frames_at_fps: features of shape {features.shape} to {n_frames} frames; "
            "needs at least one encoder frame and n_frames >= 0"
        )
    need = 2 * n_frames
    if t50 < need:
        features = jnp.pad(features, ((0, 0), (0, need - t50), (0, 0)), mode="edge")
    pairs = features[:, :need].reshape(b, n_frames, 2, d)
    return jnp.mean(pairs, axis=2)


def _conversion_command(folder: Path) -> str:
    """One shell line that turns ``pytorch_model.bin`` into ``model.safetensors``."""
    src, dst = folder / "pytorch_model.bin", folder / "model.safetensors"
    return (
        'python -c "import torch; from safetensors.torch import save_file; '
        f"sd = torch.load('{src}', map_location='cpu', weights_only=True); "
        f"save_file({{k: v.contiguous() for k, v in sd.items()}}, '{dst}')\""
    )


def read_wav2vec2_config(folder: str | os.PathLike) -> Wav2Vec2Config:
    """The checked :class:`Wav2Vec2Config` of a checkpoint folder: ``config.json`` plus
    ``do_normalize`` from ``preprocessor_config.json`` when the folder has one.

    Raises:
      InputError: a missing folder or file, unparseable JSON, or an unsupported option.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(
            f"{folder}: no such folder; pass a Hugging Face Wav2Vec2/HuBERT checkpoint folder "
            "(config.json + model.safetensors, e.g. a hub snapshot)"
        )
    config = Wav2Vec2Config.from_hf_dict(
        _read_json(folder / "config.json"), str(folder / "config.json")
    )
    preprocessor = folder / "preprocessor_config.json"
    if preprocessor.is_file():
        do_normalize = _read_json(preprocessor).get("do_normalize", True)  # HF's default
        config = dataclasses.replace(config, do_normalize=bool(do_normalize))
    return config


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise InputError(f"{path}: no such file; the checkpoint folder needs it ({_FIX})")
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise InputError(f"{path}: not valid JSON ({e}); {_FIX}") from None
    if not isinstance(d, dict):
        raise InputError(f"{path}: holds a {type(d).__name__}, not a JSON object; {_FIX}")
    return d


def _open_weights(folder: Path) -> SafetensorsFile:
    """``model.safetensors``, or a one-line refusal that says how to get it."""
    path = folder / "model.safetensors"
    if path.is_file():
        return SafetensorsFile(path)
    if (folder / "pytorch_model.bin").is_file():
        raise InputError(
            f"{folder}: has pytorch_model.bin but no model.safetensors; pickled weights are "
            "not loaded (unpickling an untrusted file can run arbitrary code). Convert it once "
            f"with torch and safetensors installed: {_conversion_command(folder)}"
        )
    if (folder / "model.safetensors.index.json").is_file():
        raise InputError(
            f"{folder}: holds a sharded checkpoint (model.safetensors.index.json); re-save it "
            "as one file with save_pretrained(folder, max_shard_size='50GB')"
        )
    raise InputError(f"{path}: no such file; {_FIX}")


def _key_prefix(weights: SafetensorsFile) -> str:
    for prefix in KEY_PREFIXES:
        if prefix + _PROBE_KEY in weights:
            return prefix
    raise InputError(
        f"{weights.path}: no tensor {_PROBE_KEY!r} (with or without a 'wav2vec2.'/'hubert.' "
        "prefix): not a Wav2Vec2/HuBERT checkpoint"
    )


def _torch_name(path: tuple) -> str:
    """A parameter's NNX path -> its checkpoint key (module names mirror HF's)."""
    *module, leaf = path
    return ".".join(str(p) for p in module) + (".bias" if leaf == "bias" else ".weight")


def _require(weights: SafetensorsFile, key: str) -> np.ndarray:
    if key not in weights:
        raise InputError(
            f"{weights.path}: no tensor {key!r}, which config.json's architecture needs; "
            f"{_MISMATCH}"
        )
    return weights.read(key)


def _pos_conv_weight(weights: SafetensorsFile, prefix: str) -> np.ndarray:
    """The positional conv's torch weight ``[out, in/g, k]``, weight norm folded in."""
    base = prefix + "encoder.pos_conv_embed.conv."
    for g_name, v_name in _WEIGHT_NORM_NAMES:
        if base + g_name in weights:
            g = _require(weights, base + g_name).astype(np.float64)  # [1, 1, k]
            v = _require(weights, base + v_name).astype(np.float64)  # [out, in/g, k]
            norm = np.sqrt(np.sum(v * v, axis=(0, 1), keepdims=True))  # [1, 1, k]
            return (g * v / norm).astype(np.float32)
    return _require(weights, base + "weight")  # already folded


def load_wav2vec2(folder: str | os.PathLike) -> tuple[Wav2Vec2Encoder, Wav2Vec2Config]:
    """A Wav2Vec2 / HuBERT encoder with a local checkpoint's weights.

    Args:
      folder: holds ``config.json`` and ``model.safetensors`` (module docstring), and
        optionally ``preprocessor_config.json``.

    Returns:
      ``(encoder, config)``; apply :func:`~ggtalker_jax.models.wav2vec2.normalize_audio`
      to the audio first when ``config.do_normalize`` is true.

    Raises:
      InputError: a missing folder or file, a pickled-only or corrupt checkpoint, a missing
        or wrongly shaped tensor, or an unsupported option (one line each).
    """
    folder = Path(folder)
    config = read_wav2vec2_config(folder)
    weights = _open_weights(folder)
    prefix = _key_prefix(weights)
    abstract = nnx.eval_shape(lambda: Wav2Vec2Encoder(config, nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)
    loaded = []
    for path, variable in nnx.to_flat_state(state):
        key = prefix + _torch_name(path)
        torch_w = _pos_conv_weight(weights, prefix) if path == _POS_CONV else _require(weights, key)
        # Reversing the axes is torch -> flax for every parameter: linear [out, in] -> [in,
        # out], conv [out, in/g, k] -> [k, in/g, out], vectors unchanged.
        if torch_w.shape[::-1] != variable.shape:
            raise InputError(
                f"{weights.path}: tensor {key!r} has shape {list(torch_w.shape)}, but "
                f"config.json's architecture needs {list(variable.shape[::-1])}; {_MISMATCH}"
            )
        loaded.append((path, variable.replace(jnp.asarray(torch_w.T, jnp.float32))))
    return nnx.merge(graphdef, nnx.from_flat_state(loaded)), config
