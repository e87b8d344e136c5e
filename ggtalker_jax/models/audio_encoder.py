"""Per-video-frame audio features for the A2E prior: a jnp log-mel, or a frozen Wav2Vec2/HuBERT.

Either way a clip of ``A`` samples at 16 kHz becomes ``[T, F]`` with ``T = ceil(A · 25 / 16000)``
(:func:`ggtalker_jax.audio.features.num_frames`): frame ``t`` describes the audio of the video
frame's interval ``[t / 25, (t + 1) / 25)`` s; audio past the end is zero-padded (silence).

- ``logmel`` (the default, no pretrained weights): the four 10 ms log-mel frames of each video
  frame side by side, ``F = 4 x 80 = 320``; the learned part (a temporal conv front end) is
  the first layer of :class:`ggtalker_jax.models.a2e.AudioExpressionPrior`.
- ``wav2vec2``: a Hugging Face Wav2Vec2 or HuBERT checkpoint from a local folder, frozen; its
  50 Hz hidden states (of ``wav2vec2_layer``) pooled to 25 fps, ``F = hidden_size``.

Both are frozen, so a trainer computes every clip's features once, before training.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ggtalker_jax.config.a2e import A2EConfig

__all__ = ["FeatureExtractor", "make_feature_extractor"]


@dataclasses.dataclass(frozen=True)
class FeatureExtractor:
    """Audio -> per-frame features.

    Attributes:
      name: ``logmel`` or ``wav2vec2``.
      dim: ``F``.
      batch_fn: ``(audio [B, T·640] float32 jnp, n_frames) -> [B, T, F]`` (jitted).
    """

    name: str
    dim: int
    batch_fn: Callable[[jax.Array, int], jax.Array]

    def __call__(self, audio: np.ndarray, n_frames: int | None = None) -> np.ndarray:
        """Features ``[T, F]`` float32 of one clip ``audio [A]`` (16 kHz mono)."""
        return self.batch(np.asarray(audio, np.float32)[None], n_frames)[0]

    def batch(self, audio: np.ndarray, n_frames: int | None = None) -> np.ndarray:
        """Features ``[B, T, F]`` of clips of one length ``audio [B, A]``."""
        from ggtalker_jax.audio.features import SAMPLES_PER_FRAME, num_frames

        audio = np.asarray(audio, np.float32)
        t = num_frames(audio.shape[1]) if n_frames is None else int(n_frames)
        padded = np.zeros((audio.shape[0], t * SAMPLES_PER_FRAME), np.float32)
        n = min(audio.shape[1], padded.shape[1])
        padded[:, :n] = audio[:, :n]
        return np.asarray(self.batch_fn(jnp.asarray(padded), t), np.float32)

    def silence(self) -> np.ndarray:
        """``[F]``: the features of one frame of silence (what windows are padded with)."""
        return self(np.zeros(8 * 640, np.float32))[4]


@functools.partial(jax.jit, static_argnames=("n_frames",))
def _logmel_batch(audio, n_frames):
    from ggtalker_jax.audio.features import log_mel_frames

    return log_mel_frames(audio, n_frames)


def _wav2vec2_extractor(folder: str, layer: int) -> FeatureExtractor:
    from ggtalker_jax.models.wav2vec2 import frames_at_fps, load_wav2vec2, normalize_audio

    encoder, w2v_config = load_wav2vec2(folder)
    # The checkpoint's preprocessor_config.json says whether its feature extractor
    # standardised the audio (HF's do_normalize); without that file, raw audio goes in.
    normalize = bool(w2v_config.do_normalize)

    @functools.partial(jax.jit, static_argnames=("n_frames",))
    def run(audio, n_frames):
        x = normalize_audio(audio) if normalize else audio
        hidden = encoder(x, layer=None if layer < 0 else layer)
        return frames_at_fps(hidden, n_frames)

    return FeatureExtractor("wav2vec2", int(w2v_config.hidden_size), run)


def make_feature_extractor(config: A2EConfig) -> FeatureExtractor:
    """The extractor ``config.encoder`` names.

    Raises:
      InputError: a Wav2Vec2 folder that cannot be loaded (one line from the importer).
    """
    if config.encoder == "wav2vec2":
        return _wav2vec2_extractor(config.wav2vec2_path, config.wav2vec2_layer)
    from ggtalker_jax.audio.features import MELS_PER_FRAME, N_MELS

    return FeatureExtractor("logmel", MELS_PER_FRAME * N_MELS, _logmel_batch)
