"""Load any user audio file as 16 kHz mono float32: the entry point for speech that drives a head.

Formats:

- **WAV** (``RIFF``/``WAVE`` magic, whatever the suffix), read here with ``struct`` and numpy:
  integer PCM of 8 (unsigned), 16, 24 or 32 bits, or IEEE float of 32 or 64 bits, plain or
  ``WAVE_FORMAT_EXTENSIBLE``, any channel count and sample rate. Integers are divided by
  ``2**(bits - 1) - 1``, the full scale :func:`~ggtalker_jax.audio.wav.write_wav` multiplies by,
  so a clip's ``audio.wav`` loads to exactly what :func:`~ggtalker_jax.audio.wav.read_wav`
  returns. A data size of ``0xFFFFFFFF`` (a WAV streamed to a pipe) means "to the end of the
  file". WAVs with a compressed codec (ADPCM, mu-law, ...) go to ffmpeg.
- **Everything else** (mp3, flac, ogg, opus, m4a/aac, webm, mp4 or any video with an audio
  track): the ffmpeg binary of the ``imageio-ffmpeg`` dependency decodes the first audio stream
  to a float32 WAV on its stdout, at the source's rate and channel count, which the WAV reader
  above then takes. So every format goes through one conversion path (not ffmpeg's ``-ac 1``,
  which for float output sums stereo at 1/sqrt(2) each, 41% louder than the mean, and not its
  resampler), and the channels and rate in the notice come from a header, not a log line.

Conversions: channels are averaged to mono and other rates resampled with
:func:`~ggtalker_jax.audio.wav.resample_to_16k`. Whenever the file was not 16 kHz mono, one
line says so (``notify(msg)``, or stderr), e.g. ``x.wav: 2 channels at 44100 Hz, converted to
mono 16 kHz``. Samples are clipped to [-1, 1] (float WAVs and lossy decoders may overshoot).

Audio shorter than one video frame (640 samples, 40 ms) is returned as it is: the features
(:func:`~ggtalker_jax.audio.features.clip_features`) pad it with silence to one frame.

Errors are :class:`~ggtalker_jax.errors.InputError`, one line naming the file, the problem and
the fix: missing or empty file, truncated or corrupt WAV, an undecodable file (with ffmpeg's
first error line), no audio stream, no samples, NaN/inf samples.
"""

from __future__ import annotations

import re
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ggtalker_jax.audio.wav import _fix, resample_to_16k
from ggtalker_jax.errors import InputError
from ggtalker_jax.types import SAMPLE_RATE

# ffmpeg decodes an hour of mp3 in a few seconds; two minutes means it is stuck (a pipe, a
# network mount), and the user learns that instead of waiting forever.
_FFMPEG_TIMEOUT_S = 120.0
_ERROR_CHARS = 160  # ffmpeg's error line is cut to this length, to keep the message one line

_WAVE_PCM, _WAVE_FLOAT, _WAVE_EXTENSIBLE = 0x0001, 0x0003, 0xFFFE
_STREAMED_SIZE = 0xFFFFFFFF  # data size written by a muxer that could not seek back


def load_audio(path: str | Path, *, notify: Callable[[str], None] | None = None) -> np.ndarray:
    """Reads an audio (or video) file as 16 kHz mono float32 samples.

    Args:
      path: a WAV file, or anything ffmpeg decodes (see the module docstring).
      notify: called once with a one-line message when the file was converted (not 16 kHz
        mono); defaults to printing it to stderr. Nothing is said for a 16 kHz mono file.

    Returns:
      [A] float32 samples in [-1, 1] at 16 kHz, A >= 1 (possibly fewer than one video frame).

    Raises:
      InputError: missing, empty, corrupt or undecodable file, no audio stream, no samples,
        NaN/inf samples; one line naming the file and the fix.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file; check the path to the audio file")
    if not path.is_file():
        raise InputError(f"{path}: is not a file; pass an audio file (.wav, .mp3, .flac, ...)")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty (0 bytes); record or export the audio again")
    with path.open("rb") as f:
        head = f.read(12)  # only WAVs are read whole here: a video may be gigabytes
    wav = None
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        wav = _read_wav(path, path.read_bytes())
    if wav is None:  # not a WAV, or a WAV codec only ffmpeg reads
        wav = _read_wav(path, _decode_with_ffmpeg(path))
        assert wav is not None, "ffmpeg was asked for float32 WAV"
    frames, rate = wav  # [A_in, C]
    channels = frames.shape[1]
    audio = frames[:, 0] if channels == 1 else frames.mean(axis=1, dtype=np.float32)
    if (channels, rate) != (1, SAMPLE_RATE):
        audio = resample_to_16k(audio, rate)
        description = f"{channels} channel{'s' * (channels > 1)} at {rate} Hz"
        (notify or _print_stderr)(f"{path}: {description}, converted to mono 16 kHz")
    return np.clip(audio, -1.0, 1.0)


def _print_stderr(message: str) -> None:
    print(message, file=sys.stderr)


def _check_samples(path: Path, samples: np.ndarray) -> None:
    """Refuse no samples and NaN/inf samples (float data only)."""
    if samples.size == 0:
        raise InputError(f"{path}: contains no audio samples; record or export some audio")
    finite = np.isfinite(samples)
    if not finite.all():
        bad = samples.size - int(np.count_nonzero(finite))
        raise InputError(
            f"{path}: {bad} of {samples.size} samples are NaN or inf; fix the signal "
            "(e.g. np.nan_to_num) and write the file again"
        )


# ------------------------------------------------------------------------------------------
# WAV
# ------------------------------------------------------------------------------------------


def _read_wav(path: Path, blob: bytes) -> tuple[np.ndarray, int] | None:
    """Decodes a RIFF/WAVE file: ``(frames [A, C] float32, rate)``, or ``None`` for a codec
    that only ffmpeg reads."""
    fmt, data = _wav_chunks(path, blob)
    fix = _fix(path, None)
    if len(fmt) < 16:
        raise InputError(f"{path}: WAV 'fmt ' chunk is {len(fmt)} bytes, expected >= 16; {fix}")
    tag, channels, rate, _, block, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == _WAVE_EXTENSIBLE and len(fmt) >= 26:
        tag = struct.unpack_from("<H", fmt, 24)[0]  # first two bytes of the SubFormat GUID
    if tag not in (_WAVE_PCM, _WAVE_FLOAT):
        return None
    if channels == 0 or rate == 0:
        raise InputError(f"{path}: WAV header says {channels} channels at {rate} Hz; {fix}")
    # The container width (block / channels) is what is stored; ``bits`` may be fewer valid
    # bits left-justified in it (e.g. 20 in 24), which the container's full scale handles.
    width = block // channels if block and block % channels == 0 else -(-bits // 8)
    supported = (1, 2, 3, 4) if tag == _WAVE_PCM else (4, 8)
    if width not in supported:
        kind = "integer PCM" if tag == _WAVE_PCM else "float"
        raise InputError(f"{path}: {8 * width}-bit {kind} samples are not supported; {fix}")

    start, size = data
    present = len(blob) - start
    if size == _STREAMED_SIZE:
        size = present
    frame_bytes = width * channels
    if present < size:
        raise InputError(
            f"{path}: WAV data is truncated ({present // frame_bytes} of {size // frame_bytes} "
            "samples present); re-export the file"
        )
    n = size // frame_bytes
    raw = np.frombuffer(blob, np.uint8, count=n * frame_bytes, offset=start)
    samples = _decode_samples(raw, width, float_data=tag == _WAVE_FLOAT)
    _check_samples(path, samples)
    return samples.reshape(n, channels), rate


def _wav_chunks(path: Path, blob: bytes) -> tuple[bytes, tuple[int, int]]:
    """Walks the RIFF chunks: ``('fmt ' body, (data offset, data size))``."""
    fmt, data, pos = None, None, 12
    while pos + 8 <= len(blob) and (fmt is None or data is None):
        chunk_id = blob[pos : pos + 4]
        (size,) = struct.unpack_from("<I", blob, pos + 4)
        if chunk_id == b"fmt ":
            fmt = blob[pos + 8 : pos + 8 + size]
            if len(fmt) < size:
                raise InputError(f"{path}: WAV header is truncated; re-export the file")
        elif chunk_id == b"data":
            data = (pos + 8, size)
            if size == _STREAMED_SIZE:
                break
        pos += 8 + size + (size & 1)  # chunks are padded to an even size
    if fmt is None:
        raise InputError(f"{path}: WAV header is truncated or has no 'fmt ' chunk; re-export it")
    if data is None:
        raise InputError(f"{path}: WAV file has no 'data' chunk (truncated?); re-export it")
    return fmt, data


def _decode_samples(raw: np.ndarray, width: int, *, float_data: bool) -> np.ndarray:
    """Little-endian bytes [n * width] -> float32 samples [n], integers at full scale 1."""
    if float_data:
        return raw.view("<f4" if width == 4 else "<f8").astype(np.float32)
    if width == 1:  # 8-bit WAV is unsigned, silence at 128
        return (raw.astype(np.float32) - 128.0) / 127.0
    if width == 3:  # sign-extend 24-bit: place the 3 bytes high in an int32, shift back
        wide = np.zeros((raw.size // 3, 4), np.uint8)
        wide[:, 1:] = raw.reshape(-1, 3)
        ints = wide.reshape(-1).view("<i4") >> 8
    else:
        ints = raw.view("<i2" if width == 2 else "<i4")
    full_scale = 2.0 ** (8 * width - 1) - 1.0
    return (ints.astype(np.float64) / full_scale).astype(np.float32)


# ------------------------------------------------------------------------------------------
# ffmpeg
# ------------------------------------------------------------------------------------------


def _decode_with_ffmpeg(path: Path) -> bytes:
    """Decodes the first audio stream to a float32 WAV at its own rate and channels: the
    file's bytes (streamed, so its data size is 0xFFFFFFFF)."""
    try:
        import imageio_ffmpeg  # imported lazily: WAV users never need it

        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as e:
        raise InputError(
            f"{path}: decoding non-WAV audio needs ffmpeg, which imageio-ffmpeg did not find "
            f"({e}); `pip install imageio-ffmpeg`, or convert the file to WAV"
        ) from None
    # "file:" and the protocol whitelist keep ffmpeg on the local file system: a name such as
    # "concat:a|b" or a playlist inside the file can never open another file or a URL.
    command = [
        exe, "-nostdin", "-hide_banner", "-loglevel", "error",
        "-protocol_whitelist", "file", "-i", f"file:{path.resolve()}",
        "-map", "0:a:0", "-c:a", "pcm_f32le", "-f", "wav", "pipe:1",
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, timeout=_FFMPEG_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise InputError(
            f"{path}: ffmpeg did not finish decoding within {_FFMPEG_TIMEOUT_S:.0f} s; "
            f"{_fix(path, None)} first"
        ) from None
    if done.returncode != 0:
        log = done.stderr.decode("utf-8", errors="replace")
        if "matches no streams" in log:  # from "-map 0:a:0"
            raise InputError(
                f"{path}: has no audio stream (a video without sound?); pass a file with sound"
            )
        raise InputError(
            f"{path}: ffmpeg could not decode it ({_first_error(log, done.returncode)}); "
            f"check that it is an audio or video file and not damaged, or {_fix(path, None)}"
        )
    return done.stdout


def _first_error(log: str, returncode: int) -> str:
    """ffmpeg's first error line without its "[in#0 @ 0x...]" context, cut to a short line."""
    for line in re.split(r"[\r\n]+", log):
        text = re.sub(r"^(\[[^\]]*\]\s*)+", "", line).strip()
        if text:
            return text if len(text) <= _ERROR_CHARS else text[: _ERROR_CHARS - 3] + "..."
    return f"exit status {returncode}, no error message"
