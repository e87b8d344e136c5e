"""WAV round trip, one-line errors for every kind of bad file, resampling, energy envelope."""

import struct
import wave

import numpy as np
import pytest

from ggtalker_jax.audio.wav import (
    energy_envelope,
    num_frames,
    read_wav,
    resample_to_16k,
    write_wav,
)
from ggtalker_jax.errors import InputError


def _write_raw_wav(path, data: bytes, channels=1, width=2, rate=16000):
    with wave.open(str(path), "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(width)
        f.setframerate(rate)
        f.writeframes(data)
    return path


def _one_line_error(path, *fragments) -> str:
    with pytest.raises(InputError) as info:
        read_wav(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_round_trip(tmp_path, rng):
    audio = rng.uniform(-1.0, 1.0, 12345).astype(np.float32)
    path = write_wav(tmp_path / "sub" / "a.wav", audio)
    back, rate = read_wav(path)
    assert rate == 16000
    assert back.dtype == np.float32 and back.shape == audio.shape
    np.testing.assert_allclose(back, audio, atol=0.5 / 32767 + 1e-7)
    with wave.open(str(path), "rb") as f:
        assert (f.getnchannels(), f.getsampwidth(), f.getframerate()) == (1, 2, 16000)


def test_write_refuses_overwrite_without_force(tmp_path, rng):
    path = write_wav(tmp_path / "a.wav", rng.uniform(-1, 1, 100))
    with pytest.raises(InputError, match="--force") as info:
        write_wav(path, np.zeros(10))
    assert str(path) in str(info.value)
    write_wav(path, np.zeros(10), force=True)
    assert read_wav(path)[0].shape == (10,)


def test_write_rejects_nan_and_stereo(tmp_path):
    with pytest.raises(InputError, match="NaN"):
        write_wav(tmp_path / "a.wav", np.array([0.0, np.nan]))
    with pytest.raises(InputError, match="mono"):
        write_wav(tmp_path / "b.wav", np.zeros((10, 2)))


def test_write_clips_out_of_range(tmp_path):
    back, _ = read_wav(write_wav(tmp_path / "a.wav", np.array([-3.0, 0.5, 3.0])))
    np.testing.assert_allclose(back, [-1.0, 0.5, 1.0], atol=1e-4)


def test_missing_file(tmp_path):
    _one_line_error(tmp_path / "nope.wav", "no such file")


def test_wrong_sample_rate(tmp_path):
    path = _write_raw_wav(tmp_path / "cd.wav", b"\0\0" * 441, rate=44100)
    _one_line_error(path, "44100 Hz", "16000 Hz", "ffmpeg", "-ar 16000")
    audio, rate = read_wav(path, expected_rate=None)  # any rate when the caller resamples
    assert rate == 44100 and audio.shape == (441,)


def test_stereo(tmp_path):
    path = _write_raw_wav(tmp_path / "stereo.wav", b"\0\0" * 200, channels=2)
    _one_line_error(path, "2 channels", "mono", "-ac 1")


def test_8_bit(tmp_path):
    path = _write_raw_wav(tmp_path / "u8.wav", b"\x80" * 200, width=1)
    _one_line_error(path, "8-bit", "16-bit PCM")


def test_float_wav(tmp_path):
    # The stdlib cannot write IEEE float WAVs: build the header by hand (format code 3).
    data = np.zeros(100, "<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, 16000, 16000 * 4, 4, 32)
    riff = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    riff += b"data" + struct.pack("<I", len(data)) + data
    path = tmp_path / "float.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(riff)) + riff)
    _one_line_error(path, "not PCM", "16-bit PCM")


def test_garbage_file(tmp_path, rng):
    path = tmp_path / "garbage.wav"
    path.write_bytes(rng.integers(0, 256, 1000, dtype=np.uint8).tobytes())
    _one_line_error(path, "not a readable WAV")


def test_truncated_header(tmp_path):
    good = _write_raw_wav(tmp_path / "good.wav", b"\0\0" * 100)
    path = tmp_path / "cut_header.wav"
    path.write_bytes(good.read_bytes()[:30])
    _one_line_error(path, "WAV")


def test_truncated_data(tmp_path):
    good = _write_raw_wav(tmp_path / "good.wav", b"\1\0" * 1000)
    path = tmp_path / "cut_data.wav"
    path.write_bytes(good.read_bytes()[:-500])
    _one_line_error(path, "truncated", "750 of 1000")


def test_empty_audio(tmp_path):
    path = _write_raw_wav(tmp_path / "empty.wav", b"")
    _one_line_error(path, "no audio samples")


@pytest.mark.parametrize("rate", [22050, 44100, 48000, 8000])
def test_resampling_keeps_a_sines_frequency(rate):
    freq = 437.0
    t = np.arange(rate) / rate  # one second
    out = resample_to_16k(np.sin(2 * np.pi * freq * t).astype(np.float32), rate)
    assert out.dtype == np.float32
    assert out.shape == (16000,)  # the reduced fraction 16000/rate, not an approximation
    spectrum = np.abs(np.fft.rfft(out * np.hanning(out.shape[0])))
    peak_hz = np.argmax(spectrum) * 16000 / out.shape[0]
    assert abs(peak_hz - freq) <= 1.0
    middle = out[2000:-2000]  # away from the filter's edge transients
    assert abs(np.sqrt(np.mean(middle**2)) - np.sqrt(0.5)) < 0.01


def test_resample_rejects_bad_rate():
    with pytest.raises(InputError, match="sample rate"):
        resample_to_16k(np.zeros(10), 0)


def test_energy_envelope_per_frame():
    rate, fps = 16000, 25
    audio = np.zeros(rate, np.float32)  # 1 s = 25 frames
    t = np.arange(rate // 2) / rate
    audio[rate // 2 :] = 0.5 * np.sin(2 * np.pi * 500 * t)  # loud second half
    env = energy_envelope(audio, rate, fps)
    assert env.shape == (num_frames(rate, rate, fps),) == (25,)
    np.testing.assert_allclose(env[:12], 0.0, atol=1e-7)
    np.testing.assert_allclose(env[13:], 0.5 / np.sqrt(2), rtol=1e-3)
    padded = energy_envelope(audio, rate, fps, n_frames=30)
    np.testing.assert_allclose(padded[:25], env)
    np.testing.assert_allclose(padded[25:], 0.0)
