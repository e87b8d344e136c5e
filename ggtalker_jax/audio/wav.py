"""WAV input and output, resampling to 16 kHz, and a per-video-frame energy envelope.

The clip format stores its sound as ``audio.wav``: 16 kHz, mono, 16-bit PCM (DESIGN.md, "Data
contracts"). Everything here is host-side numpy: audio is small next to video, and the readers
have to produce one-line errors for user files before anything reaches JAX.

Arrays are float32 in [-1, 1]; ``A`` is the number of audio samples, ``T`` of video frames.
"""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np

from ggtalker_jax.errors import InputError
from ggtalker_jax.types import FPS, SAMPLE_RATE

# int16 full scale. Reading divides by the same number that writing multiplies by, so a round
# trip is exact up to rounding; -32768 (which we never write) is clipped back to -1.
_FULL_SCALE = 32767.0


def _fix(path: Path, rate: int | None) -> str:
    """The one conversion command that fixes every format problem (ffmpeg comes with the
    imageio-ffmpeg dependency)."""
    return (
        f"convert it with `ffmpeg -i {path} -ar {rate or SAMPLE_RATE} -ac 1 -c:a pcm_s16le OUT.wav`"
    )


def write_wav(
    path: str | Path,
    audio: np.ndarray,  # [A] float in [-1, 1]
    sample_rate: int = SAMPLE_RATE,
    *,
    force: bool = False,
) -> Path:
    """Writes mono 16-bit PCM audio with the stdlib ``wave`` module.

    Args:
      path: output file; its parent folders are created.
      audio: [A] samples in [-1, 1] (values outside are clipped; NaN/inf are refused).
      sample_rate: Hz.
      force: overwrite an existing file (the CLI's ``--force``).

    Returns:
      The path written.

    Raises:
      InputError: the path exists and ``force`` is off, or the audio is not a finite 1-D array.
    """
    path = Path(path)
    if path.exists() and not force:
        raise InputError(f"{path} already exists; pass --force (force=True) to overwrite it")
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise InputError(
            f"audio for {path} has shape {audio.shape}; expected mono samples [A] "
            "(average the channels first)"
        )
    if not np.all(np.isfinite(audio)):
        raise InputError(f"audio for {path} contains NaN or inf; fix the signal before writing")
    pcm = np.round(np.clip(audio.astype(np.float64), -1.0, 1.0) * _FULL_SCALE).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(int(sample_rate))
        f.writeframes(pcm.tobytes())
    return path


def read_wav(path: str | Path, expected_rate: int | None = SAMPLE_RATE) -> tuple[np.ndarray, int]:
    """Reads a mono 16-bit PCM WAV file and checks it against the clip format.

    Args:
      path: the file.
      expected_rate: required sample rate in Hz; ``None`` accepts any rate (then resample with
        :func:`resample_to_16k`).

    Returns:
      ``(audio [A] float32 in [-1, 1], sample_rate)``.

    Raises:
      InputError: missing file, not a WAV file or corrupt, not mono, not 16-bit PCM, the wrong
        sample rate, truncated data or no samples; one line naming the file and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file; check the path to the .wav audio")
    fix = _fix(path, expected_rate)
    try:
        with wave.open(str(path), "rb") as f:
            channels, width = f.getnchannels(), f.getsampwidth()
            rate, n_frames = f.getframerate(), f.getnframes()
            data = f.readframes(n_frames)
    except wave.Error as e:
        # The stdlib reads only integer PCM: float or compressed WAVs end up here too.
        if "unknown format" in str(e):
            raise InputError(
                f"{path}: WAV sample format is not PCM ({e}); expected 16-bit PCM, {fix}"
            ) from None
        raise InputError(f"{path}: not a readable WAV file ({e}); {fix}") from None
    except EOFError:
        raise InputError(f"{path}: WAV header is truncated; {fix}") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read the WAV file ({e}); {fix}") from None
    if channels != 1:
        raise InputError(f"{path}: has {channels} channels, expected mono; {fix}")
    if width != 2:
        raise InputError(f"{path}: samples are {8 * width}-bit, expected 16-bit PCM; {fix}")
    if expected_rate is not None and rate != expected_rate:
        raise InputError(
            f"{path}: sample rate is {rate} Hz, expected {expected_rate} Hz; resample it: {fix}"
        )
    if n_frames == 0:
        raise InputError(f"{path}: contains no audio samples; record or write some audio")
    if len(data) != 2 * n_frames:
        raise InputError(
            f"{path}: data is truncated ({len(data) // 2} of {n_frames} samples present); "
            "re-export the file"
        )
    audio = np.frombuffer(data, dtype="<i2").astype(np.float32) / np.float32(_FULL_SCALE)
    return np.clip(audio, -1.0, 1.0), rate


def resample_to_16k(audio: np.ndarray, rate: int) -> np.ndarray:  # [A_in] -> [A_out]
    """Resamples audio to 16 kHz with a polyphase filter (``scipy.signal.resample_poly``).

    The ratio is the reduced fraction 16000 / rate: 22050 Hz (espeak-ng) is up 320, down 441;
    44100 Hz is up 160, down 441; 48000 Hz is up 1, down 3.

    Args:
      audio: [A_in] samples at ``rate`` Hz.
      rate: input sample rate (Hz, a positive integer).

    Returns:
      [A_out] float32 samples at 16 kHz, A_out = ceil(A_in * 16000 / rate).
    """
    from scipy.signal import resample_poly  # scipy.signal is slow to import; only needed here

    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise InputError(f"audio has shape {audio.shape}; expected mono samples [A]")
    if int(rate) != rate or rate <= 0:
        raise InputError(f"sample rate {rate} is not a positive integer number of Hz")
    rate = int(rate)
    if rate == SAMPLE_RATE:
        return audio.copy()
    g = math.gcd(SAMPLE_RATE, rate)
    return resample_poly(audio, SAMPLE_RATE // g, rate // g).astype(np.float32)


def num_frames(n_samples: int, rate: int = SAMPLE_RATE, fps: float = FPS) -> int:
    """Number of video frames that cover ``n_samples`` of audio: ceil(n_samples * fps / rate).

    Frame ``t`` shows the instant interval [t / fps, (t + 1) / fps); the last frame may run past
    the end of the audio by less than one frame (the clip format allows one frame).
    """
    return int(math.ceil(n_samples * fps / rate - 1e-9))


def energy_envelope(
    audio: np.ndarray,  # [A]
    rate: int = SAMPLE_RATE,
    fps: float = FPS,
    n_frames: int | None = None,
) -> np.ndarray:  # [T]
    """Root-mean-square amplitude of the audio in each video frame's interval.

    Frame ``t`` covers samples [round(t * rate / fps), round((t + 1) * rate / fps)); audio past
    the end counts as silence. Used to check that the mouth moves with the sound.

    Args:
      audio: [A] samples in [-1, 1].
      rate: sample rate in Hz.
      fps: video frame rate.
      n_frames: T; defaults to :func:`num_frames` of the audio.

    Returns:
      [T] float32 RMS per frame (0 in silence, about 0.1-0.3 for a loud voice).
    """
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim != 1:
        raise InputError(f"audio has shape {audio.shape}; expected mono samples [A]")
    if n_frames is None:
        n_frames = num_frames(audio.shape[0], rate, fps)
    bounds = np.round(np.arange(n_frames + 1) * (rate / fps)).astype(np.int64)
    padded = np.zeros(max(int(bounds[-1]), audio.shape[0]), np.float64)
    padded[: audio.shape[0]] = audio
    # Cumulative sums of squares give every frame's energy at once, whatever the hop length.
    csum = np.concatenate([[0.0], np.cumsum(padded**2)])
    counts = np.maximum(bounds[1:] - bounds[:-1], 1)
    mean_square = (csum[bounds[1:]] - csum[bounds[:-1]]) / counts
    return np.sqrt(np.maximum(mean_square, 0.0)).astype(np.float32)
