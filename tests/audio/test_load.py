"""load_audio: every WAV sample format, conversion to 16 kHz mono said once, files decoded by
ffmpeg, and a one-line error naming the file for each kind of bad input."""

import math
import subprocess
import wave

import imageio_ffmpeg
import numpy as np
import pytest
import soundfile

from ggtalker_jax.audio.load import load_audio
from ggtalker_jax.audio.wav import read_wav, resample_to_16k, write_wav
from ggtalker_jax.errors import InputError


def _tone(rng, n_samples: int, rate: int = 16000) -> np.ndarray:
    """A 300-3000 Hz tone with some noise, peak about 0.6."""
    t = np.arange(n_samples) / rate
    tone = 0.5 * np.sin(2 * np.pi * rng.uniform(300, 3000) * t + rng.uniform(0, 6))
    return (tone + 0.05 * rng.standard_normal(n_samples)).astype(np.float32)


def _write_int16(path, frames: np.ndarray, rate: int):  # frames [A, C] in [-1, 1]
    with wave.open(str(path), "wb") as f:
        f.setnchannels(frames.shape[1])
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(np.round(frames * 32767).astype("<i2").tobytes())
    return path


def _ffmpeg(*args):
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y", *args]
    return subprocess.run(command, check=True, capture_output=True).stdout


def _load_quietly(path):
    """load_audio with the notices collected instead of printed."""
    notices = []
    return load_audio(path, notify=notices.append), notices


def _one_line_error(path, *fragments) -> str:
    with pytest.raises(InputError) as info:
        load_audio(path)
    message = str(info.value)
    assert "\n" not in message, message
    assert str(path) in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


# ------------------------------------------------------------------------------------------
# WAV
# ------------------------------------------------------------------------------------------


def test_16k_mono_int16_loads_silently_and_equals_read_wav(tmp_path, rng, capsys):
    path = write_wav(tmp_path / "a.wav", _tone(rng, 12345))
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.shape == (12345,)
    np.testing.assert_array_equal(audio, read_wav(path)[0])
    assert capsys.readouterr().err == ""


def test_stereo_44k_is_converted_and_said_once(tmp_path, rng, capsys):
    left, right = _tone(rng, 66150, 44100), _tone(rng, 66150, 44100)
    path = _write_int16(tmp_path / "x.wav", np.stack([left, right], axis=1), 44100)
    audio, notices = _load_quietly(path)
    assert notices == [f"{path}: 2 channels at 44100 Hz, converted to mono 16 kHz"]
    assert audio.shape == (math.ceil(66150 * 16000 / 44100),) == (24000,)
    quantised = np.round(np.stack([left, right]) * 32767) / 32767
    expected = resample_to_16k(quantised.mean(axis=0), 44100)
    np.testing.assert_allclose(audio, expected, atol=1e-6)
    # Without notify the one line goes to stderr.
    load_audio(path)
    assert capsys.readouterr().err.splitlines() == notices


def test_mono_48k_is_resampled(tmp_path, rng):
    path = _write_int16(tmp_path / "m.wav", _tone(rng, 4800, 48000)[:, None], 48000)
    audio, notices = _load_quietly(path)
    assert audio.shape == (1600,)
    assert notices == [f"{path}: 1 channel at 48000 Hz, converted to mono 16 kHz"]


@pytest.mark.parametrize(
    ("subtype", "atol"),
    [("PCM_U8", 2 / 127), ("PCM_16", 2 / 32767), ("PCM_24", 2 / 2**23), ("PCM_32", 1e-7),
     ("FLOAT", 0.0), ("DOUBLE", 0.0)],
)  # fmt: skip
def test_sample_formats(tmp_path, rng, subtype, atol):
    """soundfile (libsndfile) writes them: an independent writer for each format."""
    samples = _tone(rng, 3000)
    path = tmp_path / f"{subtype}.wav"
    soundfile.write(path, samples, 16000, subtype=subtype)
    audio, notices = _load_quietly(path)
    assert audio.dtype == np.float32 and audio.shape == (3000,) and notices == []
    np.testing.assert_allclose(audio, samples, rtol=0, atol=atol + 1e-7)


def test_24_bit_sign_extension_is_exact(tmp_path, rng):
    ints = rng.integers(-(2**23), 2**23, 2000, dtype=np.int32)
    ints[:2] = -(2**23) + 1, 2**23 - 1  # full scale both ways
    path = tmp_path / "i24.wav"
    soundfile.write(path, ints << 8, 16000, subtype="PCM_24")  # int32 in, top 24 bits stored
    expected = (ints / (2**23 - 1)).astype(np.float32)
    np.testing.assert_array_equal(load_audio(path), expected)


def test_multichannel_float(tmp_path, rng):
    frames = np.stack([_tone(rng, 1000) for _ in range(6)], axis=1)  # [A, 6]
    path = tmp_path / "six.wav"
    soundfile.write(path, frames, 16000, subtype="FLOAT")
    audio, notices = _load_quietly(path)
    np.testing.assert_allclose(audio, frames.mean(axis=1), atol=1e-7)
    assert notices == [f"{path}: 6 channels at 16000 Hz, converted to mono 16 kHz"]


def test_extensible_24_bit_stereo(tmp_path, rng):
    """ffmpeg writes 24-bit WAVs as WAVE_FORMAT_EXTENSIBLE; 16 -> 24 bits is lossless."""
    frames = np.stack([_tone(rng, 2000), _tone(rng, 2000)], axis=1)
    source = _write_int16(tmp_path / "s16.wav", frames, 16000)
    path = tmp_path / "s24.wav"
    _ffmpeg("-i", str(source), "-c:a", "pcm_s24le", str(path))
    assert int.from_bytes(path.read_bytes()[20:22], "little") == 0xFFFE
    audio, notices = _load_quietly(path)
    ints24 = np.round(frames * 32767) * 256  # ffmpeg shifts the 16 bits up
    np.testing.assert_allclose(audio, ints24.mean(axis=1) / (2**23 - 1), atol=1e-7)
    assert notices == [f"{path}: 2 channels at 16000 Hz, converted to mono 16 kHz"]


def test_streamed_wav_with_unknown_size(tmp_path, rng):
    """A WAV that ffmpeg wrote to a pipe: data size 0xFFFFFFFF, read to the end of the file."""
    source = write_wav(tmp_path / "a.wav", _tone(rng, 5000))
    path = tmp_path / "piped.wav"
    path.write_bytes(_ffmpeg("-i", str(source), "-c:a", "pcm_s16le", "-f", "wav", "pipe:1"))
    assert b"data\xff\xff\xff\xff" in path.read_bytes()
    np.testing.assert_array_equal(load_audio(path), read_wav(source)[0])


def test_shorter_than_one_frame_is_returned_as_is(tmp_path, rng):
    path = write_wav(tmp_path / "blip.wav", _tone(rng, 100))
    assert load_audio(path).shape == (100,)


def test_float_samples_are_clipped(tmp_path):
    path = tmp_path / "hot.wav"
    soundfile.write(path, np.array([0.5, 1.5, -2.0], np.float32), 16000, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(path), [0.5, 1.0, -1.0])


# ------------------------------------------------------------------------------------------
# ffmpeg
# ------------------------------------------------------------------------------------------


def test_flac_stereo_44k_via_ffmpeg(tmp_path, rng):
    """Lossless, so the flac loads as the wav does: same averaging, same resampler."""
    frames = np.stack([_tone(rng, 44100, 44100), _tone(rng, 44100, 44100)], axis=1)
    wav = _write_int16(tmp_path / "in.wav", frames, 44100)
    flac = tmp_path / "out.flac"
    _ffmpeg("-i", str(wav), str(flac))
    audio, notices = _load_quietly(flac)
    assert notices == [f"{flac}: 2 channels at 44100 Hz, converted to mono 16 kHz"]
    assert audio.dtype == np.float32 and audio.shape == (16000,)
    # ffmpeg scales int16 by 1/32768 where the WAV reader uses 1/32767.
    np.testing.assert_allclose(audio, _load_quietly(wav)[0], rtol=0, atol=1e-4)


def test_ogg_is_decoded(tmp_path, rng):
    wav = write_wav(tmp_path / "in.wav", _tone(rng, 16000))
    ogg = tmp_path / "out.ogg"
    _ffmpeg("-i", str(wav), "-c:a", "libvorbis", str(ogg))
    audio, notices = _load_quietly(ogg)
    assert notices == [] and abs(audio.shape[0] - 16000) < 320  # codec priming, padding
    assert 0.3 < np.abs(audio).max() <= 1.0


def test_flac_16k_mono_loads_silently(tmp_path, rng):
    wav = write_wav(tmp_path / "in.wav", _tone(rng, 8000))
    flac = tmp_path / "out.flac"
    _ffmpeg("-i", str(wav), str(flac))
    audio, notices = _load_quietly(flac)
    assert notices == []
    # Lossless; ffmpeg scales int16 by 1/32768 where the WAV reader uses 1/32767.
    np.testing.assert_allclose(audio, read_wav(wav)[0], rtol=0, atol=1e-4)


def test_video_without_audio(tmp_path):
    path = tmp_path / "silent.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x64:rate=5:duration=0.4", "-c:v", "mpeg4",
            str(path))  # fmt: skip
    _one_line_error(path, "no audio stream")


def test_random_bytes_as_mp3(tmp_path, rng):
    path = tmp_path / "noise.mp3"
    path.write_bytes(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    _one_line_error(path, "ffmpeg could not decode it (", "ffmpeg -i")


# ------------------------------------------------------------------------------------------
# Bad files
# ------------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    _one_line_error(tmp_path / "nope.wav", "no such file")


def test_directory(tmp_path):
    _one_line_error(tmp_path, "is not a file")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.mp3"
    path.touch()
    _one_line_error(path, "empty (0 bytes)")


def test_truncated_wav_data(tmp_path, rng):
    path = write_wav(tmp_path / "cut.wav", _tone(rng, 16000))
    path.write_bytes(path.read_bytes()[: 44 + 2 * 5000])
    _one_line_error(path, "truncated", "5000 of 16000 samples")


def test_truncated_wav_header(tmp_path, rng):
    path = write_wav(tmp_path / "head.wav", _tone(rng, 100))
    path.write_bytes(path.read_bytes()[:20])
    _one_line_error(path, "header is truncated")


def test_wav_without_samples(tmp_path):
    path = write_wav(tmp_path / "none.wav", np.zeros(0, np.float32))
    _one_line_error(path, "no audio samples")


def test_nan_in_float_wav(tmp_path, rng):
    samples = _tone(rng, 1000)
    samples[[10, 500]] = np.nan, np.inf
    path = tmp_path / "nan.wav"
    soundfile.write(path, samples, 16000, subtype="FLOAT")
    _one_line_error(path, "2 of 1000 samples are NaN or inf")


def test_unsupported_sample_width(tmp_path):
    path = _write_int16(tmp_path / "w.wav", np.zeros((10, 1)), 16000)
    blob = bytearray(path.read_bytes())
    blob[32:36] = (5).to_bytes(2, "little") + (40).to_bytes(2, "little")  # block 5, 40 bits
    path.write_bytes(bytes(blob))
    _one_line_error(path, "40-bit integer PCM samples are not supported")
