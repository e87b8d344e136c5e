"""Log-mel features, grouped per video frame: the audio input of every speech-driven model.

The spectrogram is librosa's default mel spectrogram at 16 kHz, written in ``jnp``:

1. Centre padding: ``N_FFT // 2`` zeros on each side of the audio (librosa >= 0.10's
   ``center=True, pad_mode="constant"``), so STFT frame ``m`` is centred on sample ``m * HOP``.
2. Frames of ``N_FFT`` samples every ``HOP`` samples, ``M = 1 + A // HOP`` of them, times a
   periodic Hann window of ``WIN_LENGTH`` samples zero-padded to ``N_FFT`` (56 zeros each side).
3. Power spectrum ``|rfft(frame)|²`` over ``N_FFT // 2 + 1`` bins.
4. Projection on ``N_MELS`` triangular filters (:func:`mel_filterbank`: Slaney's mel scale and
   area normalisation, librosa's ``htk=False, norm="slaney"``) between ``FMIN`` and ``FMAX``.

:func:`log_mel_frames` then takes ``log(max(mel, LOG_FLOOR))`` and groups ``MELS_PER_FRAME``
consecutive STFT frames per video frame. Alignment, with ``t`` a video frame and ``k`` in 0..3:

    mel frame ``4t + k`` is centred on sample ``640t + 160k``, i.e. at ``t/25 + k/100`` seconds,

so video frame ``t`` (which shows the interval [t/25, (t+1)/25)) holds the spectra centred at
0, 10, 20 and 30 ms into its interval; each window reaches 12.5 ms to either side (25 ms Hann),
so the features of frame ``t`` see the audio in [t/25 - 12.5 ms, (t+1)/25 + 2.5 ms).

Audio is padded with zeros to ``T * SAMPLES_PER_FRAME`` samples (:func:`pad_to_frames`), with
``T = num_frames(A)``: audio shorter than one video frame (640 samples) still gives one frame,
and the end of the last frame is silence. Silence gives ``log(LOG_FLOOR)`` (finite), never -inf.

Everything but :func:`mel_filterbank` and :func:`pad_to_frames` (host numpy) is pure ``jnp``
and batched over leading dims; matmuls run at HIGHEST precision (no TF32 on GPUs: it would cost
~1e-3 relative error, 30x the float32 parity with librosa).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from ggtalker_jax.audio.wav import num_frames
from ggtalker_jax.errors import InputError
from ggtalker_jax.types import FPS, SAMPLE_RATE

__all__ = [
    "FMAX",
    "FMIN",
    "HOP",
    "LOG_FLOOR",
    "MELS_PER_FRAME",
    "N_FFT",
    "N_MELS",
    "SAMPLES_PER_FRAME",
    "WIN_LENGTH",
    "clip_features",
    "log_mel_frames",
    "mel_filterbank",
    "mel_power",
    "num_frames",
    "pad_to_frames",
]

HOP = 160
"""STFT hop in samples (10 ms at 16 kHz)."""

N_FFT = 512
"""FFT size in samples (32 ms); ``N_FFT // 2 + 1 = 257`` frequency bins."""

WIN_LENGTH = 400
"""Hann window length in samples (25 ms), zero-padded and centred in ``N_FFT``."""

N_MELS = 80
"""Mel bands."""

FMIN = 0.0
"""Lowest filter edge, Hz."""

FMAX = 8000.0
"""Highest filter edge, Hz (the Nyquist frequency at 16 kHz)."""

SAMPLES_PER_FRAME = SAMPLE_RATE // FPS
"""Audio samples per video frame (640)."""

MELS_PER_FRAME = SAMPLES_PER_FRAME // HOP
"""STFT frames per video frame (4)."""

LOG_FLOOR = 1e-5
"""Mel power below this is clipped before the log: silence maps to log(1e-5) = -11.5."""

# Both groupings above must be exact, or video frames and mel frames would drift apart.
assert SAMPLE_RATE % FPS == 0 and SAMPLES_PER_FRAME % HOP == 0

_HIGHEST = jax.lax.Precision.HIGHEST


# ------------------------------------------------------------------------------------------
# Mel filterbank (host, numpy, float64 then float32)
# ------------------------------------------------------------------------------------------

# Slaney's mel scale (Auditory Toolbox): linear below 1 kHz at 200/3 Hz per mel, then
# logarithmic with 27 mels per factor 6.4 (so the two pieces meet at 1 kHz = 15 mels).
_LINEAR_HZ_PER_MEL = 200.0 / 3.0
_BREAK_HZ = 1000.0
_BREAK_MEL = _BREAK_HZ / _LINEAR_HZ_PER_MEL
_LOG_STEP = math.log(6.4) / 27.0


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    hz = np.asarray(hz, np.float64)
    linear = hz / _LINEAR_HZ_PER_MEL
    log = _BREAK_MEL + np.log(np.maximum(hz, _BREAK_HZ) / _BREAK_HZ) / _LOG_STEP
    return np.where(hz >= _BREAK_HZ, log, linear)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, np.float64)
    linear = mel * _LINEAR_HZ_PER_MEL
    log = _BREAK_HZ * np.exp(_LOG_STEP * (np.maximum(mel, _BREAK_MEL) - _BREAK_MEL))
    return np.where(mel >= _BREAK_MEL, log, linear)


@functools.cache
def mel_filterbank(
    sample_rate: int = SAMPLE_RATE,
    n_fft: int = N_FFT,
    n_mels: int = N_MELS,
    fmin: float = FMIN,
    fmax: float = FMAX,
) -> np.ndarray:  # [n_mels, n_fft // 2 + 1]
    """Triangular mel filters on the rfft bins (librosa's ``filters.mel`` defaults).

    Filter ``i`` rises linearly from edge ``i`` to edge ``i + 1`` and falls to edge ``i + 2``,
    where the ``n_mels + 2`` edges are equally spaced on Slaney's mel scale from ``fmin`` to
    ``fmax``; each is scaled by ``2 / (edge[i + 2] - edge[i])`` (Hz), so every filter has unit
    area and a flat spectrum gives the same energy in every band. Computed in float64 once per
    argument set; the returned array is shared, so do not modify it.

    Returns:
      [n_mels, n_fft // 2 + 1] float32 weights.
    """
    bins_hz = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)  # [K]
    edges_hz = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges_hz)  # [n_mels + 1]
    offsets = edges_hz[:, None] - bins_hz[None, :]  # [n_mels + 2, K]: edge minus bin
    rising = -offsets[:-2] / widths[:-1, None]  # [n_mels, K]: 0 at the left edge, 1 at centre
    falling = offsets[2:] / widths[1:, None]  # [n_mels, K]: 1 at centre, 0 at the right edge
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= 2.0 / (edges_hz[2:] - edges_hz[:-2])[:, None]
    return weights.astype(np.float32)


@functools.cache
def _window() -> np.ndarray:  # [N_FFT]
    """Periodic Hann of WIN_LENGTH samples (scipy's ``get_window("hann", fftbins=True)``),
    centred in N_FFT zeros."""
    n = np.arange(WIN_LENGTH, dtype=np.float64)
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / WIN_LENGTH)
    left = (N_FFT - WIN_LENGTH) // 2
    return np.pad(hann, (left, N_FFT - WIN_LENGTH - left)).astype(np.float32)


# ------------------------------------------------------------------------------------------
# Spectrogram (jnp)
# ------------------------------------------------------------------------------------------


def _pad_last(x: jax.Array, left: int, right: int) -> jax.Array:
    return jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(left, right)])


def mel_power(audio: jax.Array) -> jax.Array:  # [..., A] -> [..., M, N_MELS]
    """Mel power spectrogram, equal to ``librosa.feature.melspectrogram(y=audio, sr=16000,
    n_fft=512, hop_length=160, win_length=400, n_mels=80, fmin=0, fmax=8000)``.

    Args:
      audio: [..., A] samples (float32 in [-1, 1]); A >= 0 is static.

    Returns:
      [..., M, N_MELS] float32 power (|STFT|², not dB), ``M = 1 + A // HOP``; frame ``m`` is
      centred on sample ``m * HOP``.
    """
    audio = jnp.asarray(audio, jnp.float32)
    if audio.ndim == 0:
        raise InputError(f"audio has shape {audio.shape}; expected samples [..., A]")
    n_samples = audio.shape[-1]
    n_stft = 1 + n_samples // HOP
    # Frames by reshape, not gather: cut the padded signal into HOP-sample rows; frame m is
    # rows m .. m + R - 1 laid end to end (R * HOP >= N_FFT), cut to N_FFT samples.
    rows_per_frame = -(-N_FFT // HOP)  # 4 rows = 640 samples >= 512
    n_rows = n_stft + rows_per_frame - 1
    # Right padding: the N_FFT // 2 zeros of centring and up to the last whole row (> 0).
    padded = _pad_last(audio, N_FFT // 2, n_rows * HOP - n_samples - N_FFT // 2)
    rows = padded.reshape(*audio.shape[:-1], n_rows, HOP)  # [..., n_rows, HOP]
    frames = jnp.concatenate(
        [rows[..., r : r + n_stft, :] for r in range(rows_per_frame)], axis=-1
    )[..., :N_FFT]  # [..., M, N_FFT]
    window = jnp.asarray(_window()).reshape((1,) * (frames.ndim - 1) + (N_FFT,))
    spectrum = jnp.fft.rfft(frames * window, axis=-1)  # [..., M, K] complex64
    power = jnp.real(spectrum) ** 2 + jnp.imag(spectrum) ** 2  # [..., M, K]
    fb = jnp.asarray(mel_filterbank())  # [N_MELS, K]
    return jnp.einsum("...mk,nk->...mn", power, fb, precision=_HIGHEST)


# ------------------------------------------------------------------------------------------
# Per-video-frame features
# ------------------------------------------------------------------------------------------


def pad_to_frames(audio: np.ndarray, n_frames: int | None = None) -> np.ndarray:  # [A] -> [T*640]
    """Zero-pads (or cuts) host audio to exactly ``n_frames`` video frames.

    Args:
      audio: [A] samples.
      n_frames: T; defaults to ``num_frames(A)`` (>= 1 for any non-empty audio), so only
        padding happens, by less than one frame (less than 40 ms) of silence at the end.

    Returns:
      [T * SAMPLES_PER_FRAME] float32: the first ``min(A, T * 640)`` samples, then zeros.
    """
    audio = np.asarray(audio, np.float32)
    if audio.ndim != 1:
        raise InputError(f"audio has shape {audio.shape}; expected mono samples [A]")
    if n_frames is None:
        n_frames = num_frames(audio.shape[0])
    n_frames = _check_n_frames(n_frames)
    out = np.zeros(n_frames * SAMPLES_PER_FRAME, np.float32)
    keep = min(audio.shape[0], out.shape[0])
    out[:keep] = audio[:keep]
    return out


def _check_n_frames(n_frames) -> int:
    if isinstance(n_frames, bool) or int(n_frames) != n_frames or n_frames < 0:
        raise InputError(f"n_frames={n_frames!r}; expected a non-negative integer frame count")
    return int(n_frames)


def log_mel_frames(audio: jax.Array, n_frames: int) -> jax.Array:  # [..., A] -> [..., T, 320]
    """Log-mel features per video frame (the model input): jittable with static ``n_frames``.

    Args:
      audio: [..., A] samples at 16 kHz; padded with zeros (or cut) to ``n_frames * 640``
        samples, so samples past the last frame are not seen.
      n_frames: T, static.

    Returns:
      [..., T, MELS_PER_FRAME * N_MELS] float32 ``log(max(mel, LOG_FLOOR))``; entry
      ``[t, k * N_MELS + b]`` is band ``b`` of STFT frame ``4t + k``, centred on sample
      ``640t + 160k`` (see the module docstring for the alignment).
    """
    n_frames = _check_n_frames(n_frames)
    audio = jnp.asarray(audio, jnp.float32)
    n_samples = n_frames * SAMPLES_PER_FRAME
    if audio.ndim == 0:
        raise InputError(f"audio has shape {audio.shape}; expected samples [..., A]")
    audio = _pad_last(audio[..., :n_samples], 0, max(0, n_samples - audio.shape[-1]))
    # 1 + n_samples // HOP = 4T + 1 STFT frames; the last is centred on the first sample of
    # frame T and belongs to the next window, so it is dropped.
    mel = mel_power(audio)[..., : n_frames * MELS_PER_FRAME, :]  # [..., 4T, N_MELS]
    log_mel = jnp.log(jnp.maximum(mel, LOG_FLOOR))
    return log_mel.reshape(*audio.shape[:-1], n_frames, MELS_PER_FRAME * N_MELS)


_log_mel_frames_jit = jax.jit(log_mel_frames, static_argnames="n_frames")


def clip_features(audio: np.ndarray) -> jax.Array:  # [A] -> [T, 320]
    """Log-mel features of a whole host clip, ``T = num_frames(A)``.

    The audio is padded on the host (:func:`pad_to_frames`), so the jitted computation is
    compiled once per frame count, not once per sample count.

    Args:
      audio: [A] float32 samples at 16 kHz (e.g. from :func:`~ggtalker_jax.audio.load.load_audio`).

    Returns:
      [T, MELS_PER_FRAME * N_MELS] float32 (:func:`log_mel_frames`).

    Raises:
      InputError: the audio is not 1-D or has no samples.
    """
    audio = np.asarray(audio, np.float32)
    if audio.ndim != 1 or audio.shape[0] == 0:
        raise InputError(
            f"audio has shape {audio.shape}; expected mono samples [A] with A >= 1 "
            "(load files with ggtalker_jax.audio.load.load_audio)"
        )
    n_frames = num_frames(audio.shape[0])
    return _log_mel_frames_jit(pad_to_frames(audio, n_frames), n_frames=n_frames)
