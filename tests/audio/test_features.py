"""Log-mel features: the filterbank and the spectrogram against librosa, frame counts and the
per-video-frame grouping, silence, batching and jit."""

import jax
import jax.numpy as jnp
import librosa
import numpy as np
import pytest

from ggtalker_jax.audio import features as F
from ggtalker_jax.audio.wav import num_frames
from ggtalker_jax.errors import InputError

# librosa warns when the signal is shorter than n_fft (centre padding then covers all of it);
# that is exactly the short-clip case these tests compare on purpose.
_SHORT_SIGNAL = "ignore:n_fft=.* is too large for input signal:UserWarning"

# Tolerances, float32 against librosa's float32 numpy pipeline (measured: worst frame 4e-7 of
# its max, 1.4e-7 relative L2 per clip). A Hann window that is off by one sample, a wrong
# centre padding or TF32 matmuls each miss these by orders of magnitude.
_FRAME_RTOL = 1e-5  # |ours - librosa| <= rtol * max over bands, per STFT frame
_CLIP_RL2 = 2e-6  # ||ours - librosa|| / ||librosa|| over a clip


def _speech_like(rng, n_samples: int) -> np.ndarray:
    """Noise plus a few tones with a syllable-rate envelope, in [-1, 1]."""
    t = np.arange(n_samples) / 16000.0
    tones = sum(
        rng.uniform(0.05, 0.3) * np.sin(2 * np.pi * rng.uniform(80, 7000) * t + rng.uniform(0, 6))
        for _ in range(4)
    )
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6))
    audio = envelope * tones + 0.05 * rng.standard_normal(n_samples)
    return np.clip(audio, -1.0, 1.0).astype(np.float32)


def _librosa_mel(audio: np.ndarray) -> np.ndarray:  # [A] -> [M, 80]
    mel = librosa.feature.melspectrogram(
        y=audio, sr=16000, n_fft=512, hop_length=160, win_length=400, n_mels=80,
        fmin=0.0, fmax=8000.0, power=2.0, center=True, pad_mode="constant",
    )  # fmt: skip
    return mel.T


def _assert_mel_close(ours, ref):
    ours, ref = np.asarray(ours), np.asarray(ref)
    assert ours.shape == ref.shape and ours.dtype == np.float32
    frame_err = np.abs(ours - ref).max(axis=-1) / np.maximum(ref.max(axis=-1), 1e-30)
    assert frame_err.max() <= _FRAME_RTOL, f"worst frame {frame_err.max():.2e}"
    rel_l2 = np.linalg.norm(ours - ref) / np.linalg.norm(ref)
    assert rel_l2 <= _CLIP_RL2, f"relative L2 {rel_l2:.2e}"


def test_constants():
    assert (F.HOP, F.N_FFT, F.WIN_LENGTH, F.N_MELS) == (160, 512, 400, 80)
    assert (F.SAMPLES_PER_FRAME, F.MELS_PER_FRAME) == (640, 4)
    assert F.num_frames is num_frames  # one definition, in wav.py


def test_filterbank_matches_librosa():
    ours = F.mel_filterbank()
    ref = librosa.filters.mel(sr=16000, n_fft=512, n_mels=80, fmin=0.0, fmax=8000.0)
    assert ours.shape == (80, 257) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-7)
    assert F.mel_filterbank() is ours  # computed once


def test_filterbank_other_arguments_match_librosa():
    ours = F.mel_filterbank(22050, 1024, 40, 50.0, 10000.0)
    ref = librosa.filters.mel(sr=22050, n_fft=1024, n_mels=40, fmin=50.0, fmax=10000.0)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-7)


@pytest.mark.filterwarnings(_SHORT_SIGNAL)
@pytest.mark.parametrize("n_samples", [1, 159, 400, 513, 641, 4321, 16000, 40037])
def test_mel_power_matches_librosa(rng, n_samples):
    audio = _speech_like(rng, n_samples)
    ours = F.mel_power(audio)
    assert ours.shape == (1 + n_samples // 160, 80)
    _assert_mel_close(ours, _librosa_mel(audio))


def test_mel_power_batches(rng):
    audio = np.stack([_speech_like(rng, 3333) for _ in range(6)]).reshape(2, 3, 3333)
    batched = F.mel_power(audio)
    assert batched.shape == (2, 3, 21, 80)
    for i, j in np.ndindex(2, 3):
        _assert_mel_close(batched[i, j], _librosa_mel(audio[i, j]))


@pytest.mark.parametrize("n_samples", [1, 639, 640, 641, 16000])
def test_frame_counts(rng, n_samples):
    audio = _speech_like(rng, n_samples)
    n_frames = {1: 1, 639: 1, 640: 1, 641: 2, 16000: 25}[n_samples]
    assert F.num_frames(n_samples) == n_frames
    padded = F.pad_to_frames(audio)
    assert padded.shape == (n_frames * 640,) and padded.dtype == np.float32
    np.testing.assert_array_equal(padded[:n_samples], audio)
    assert not padded[n_samples:].any()
    features = F.clip_features(audio)
    assert features.shape == (n_frames, 320) and features.dtype == jnp.float32
    assert np.isfinite(np.asarray(features)).all()


def test_pad_to_frames_cuts_and_pads(rng):
    audio = _speech_like(rng, 1000)
    np.testing.assert_array_equal(F.pad_to_frames(audio, 1), audio[:640])
    assert F.pad_to_frames(audio, 3)[1000:].shape == (920,)
    assert F.pad_to_frames(audio, 0).shape == (0,)
    with pytest.raises(InputError, match="n_frames=-1"):
        F.pad_to_frames(audio, -1)
    with pytest.raises(InputError, match=r"shape \(2, 500\)"):
        F.pad_to_frames(audio.reshape(2, 500))


@pytest.mark.filterwarnings(_SHORT_SIGNAL)
@pytest.mark.parametrize("n_samples", [1, 641, 7777])
def test_grouping_and_alignment(rng, n_samples):
    """Frame t holds librosa's log-mel frames 4t .. 4t+3 of the padded clip, band-minor."""
    audio = _speech_like(rng, n_samples)
    n_frames = F.num_frames(n_samples)
    features = np.asarray(F.log_mel_frames(audio, n_frames))
    ref = np.log(np.maximum(_librosa_mel(F.pad_to_frames(audio)), F.LOG_FLOOR))
    assert ref.shape == (4 * n_frames + 1, 80)  # one more, centred on the first sample of T
    ref = ref[: 4 * n_frames].reshape(n_frames, 320)
    # An error in log units is a relative error of the mel power, band by band (measured
    # <= 1e-5 with the noise floor of _speech_like; bands at LOG_FLOOR agree exactly).
    np.testing.assert_allclose(features, ref, rtol=0, atol=1e-4)
    # Frame t, slot k is centred on sample 640t + 160k: an impulse there lands in that slot.
    t, k = n_frames - 1, n_samples % 4
    impulse = np.zeros(n_frames * 640, np.float32)
    impulse[640 * t + 160 * k] = 1.0
    loudest = np.asarray(F.log_mel_frames(impulse, n_frames)).reshape(n_frames * 4, 80)
    assert np.argmax(loudest.sum(axis=-1)) == 4 * t + k


def test_log_mel_frames_pads_or_cuts(rng):
    audio = _speech_like(rng, 2000)
    long = np.asarray(F.log_mel_frames(audio, 6))  # 2000 samples -> 3840, zeros after
    np.testing.assert_array_equal(long, F.log_mel_frames(np.pad(audio, (0, 1840)), 6))
    short = np.asarray(F.log_mel_frames(audio, 2))  # cut to 1280 samples
    np.testing.assert_array_equal(short, F.log_mel_frames(audio[:1280], 2))
    assert F.log_mel_frames(audio, 0).shape == (0, 320)


def test_silence_is_finite_and_at_the_floor():
    features = np.asarray(F.log_mel_frames(np.zeros((2, 1000), np.float32), 3))
    assert features.shape == (2, 3, 320)
    np.testing.assert_allclose(features, np.log(np.float32(F.LOG_FLOOR)), rtol=1e-7)


def test_batched_log_mel_frames_equal_single(rng):
    audio = np.stack([_speech_like(rng, 1500) for _ in range(3)])
    batched = F.log_mel_frames(audio, 3)
    assert batched.shape == (3, 3, 320)
    for i in range(3):
        np.testing.assert_allclose(batched[i], F.log_mel_frames(audio[i], 3), atol=1e-5)


def test_jit_and_no_retrace_across_sample_counts(rng, count_traces):
    audio = _speech_like(rng, 5000)
    jitted = jax.jit(F.log_mel_frames, static_argnames="n_frames")
    np.testing.assert_allclose(jitted(audio, n_frames=8), F.log_mel_frames(audio, 8), atol=1e-5)
    # clip_features pads on the host: 16 * 640 + 1 and 17 * 640 samples share one compilation.
    with count_traces() as traces:
        first = F.clip_features(_speech_like(rng, 16 * 640 + 1))
        second = F.clip_features(_speech_like(rng, 17 * 640))
    assert first.shape == second.shape == (17, 320)
    assert traces() <= 1


def test_clip_features_rejects_empty_and_stereo():
    with pytest.raises(InputError, match=r"shape \(0,\)"):
        F.clip_features(np.zeros(0, np.float32))
    with pytest.raises(InputError, match=r"shape \(100, 2\)"):
        F.clip_features(np.zeros((100, 2), np.float32))
