"""Speech -> motion with the shipped tiny A2E prior: a pure function of its key, 30 s as one
sequence with no jump at window borders, closed lips in silence, one frame for a blip of
audio, and refusals of unknown identities and bad features."""

import jax
import numpy as np
import pytest

from ggtalker_jax.errors import InputError
from ggtalker_jax.eval.a2e import lip_geometry
from ggtalker_jax.flame import load_flame
from ggtalker_jax.motion import sample_motion, window_count
from ggtalker_jax.priors import shipped_prior
from ggtalker_jax.priors.a2e import load_a2e_prior


@pytest.fixture(scope="module")
def speaker():
    return load_a2e_prior(shipped_prior("a2e_tiny"))[0]


@pytest.fixture(scope="module")
def speech_30s():
    from ggtalker_jax.world.corpus import sentences_for
    from ggtalker_jax.world.speech import synthesize

    pieces, n, i = [], 0, 0
    sentences = sentences_for("en")
    while n < 30 * 16000:
        audio = synthesize(sentences[i % len(sentences)], voice="en").audio
        pieces += [audio, np.zeros(2400, np.float32)]
        n, i = n + audio.shape[0] + 2400, i + 1
    return np.concatenate(pieces)[: 30 * 16000].astype(np.float32)


def test_window_count_covers_the_frames():
    for t in (1, 49, 50, 51, 95, 96, 750):
        n = window_count(t, 50, 5)
        assert (n - 1) * 45 + 50 >= t and (n == 1 or (n - 2) * 45 + 50 < t)


def test_sampling_is_a_pure_function_of_the_key(speaker, rng):
    audio = (rng.normal(size=40000) * 0.1).astype(np.float32)
    key = jax.random.key(int(rng.integers(2**31)))
    a, b = speaker.speak(audio, key), speaker.speak(audio, key)
    c = speaker.speak(audio, jax.random.fold_in(key, 1))
    for name in ("expression", "jaw_pose"):
        np.testing.assert_array_equal(a[name], b[name])
    assert np.abs(a["expression"] - c["expression"]).max() > 1e-4


def test_30_seconds_sample_as_one_sequence_without_jumps_at_window_borders(speaker, speech_30s):
    config = speaker.prior.config
    fields = speaker.speak(speech_30s, jax.random.key(0))
    motion = np.concatenate([fields["expression"], fields["jaw_pose"]], axis=-1)
    assert motion.shape == (750, 13) and np.all(np.isfinite(motion))
    jumps = np.linalg.norm(np.diff(motion, axis=0), axis=-1)  # jumps[i]: frame i -> i + 1
    stride = config.window - config.overlap
    assert window_count(750, config.window, config.overlap) > 10
    border = np.zeros(jumps.shape, bool)
    for start in range(stride, 750, stride):  # a window starts at `start`
        border[start - 1 : start + config.overlap] = True  # into it, and across its fade
    assert jumps[border].max() <= jumps[~border].max(), (jumps[border].max(), jumps[~border].max())
    assert jumps[border].mean() <= 1.25 * jumps[~border].mean()
    # The speech moves the jaw: it opens and closes many times.
    jaw = fields["jaw_pose"][:, 0]
    assert jaw.max() - jaw.min() > 0.1


def test_silence_keeps_the_lips_closed(speaker):
    model = load_flame()
    fields = speaker.speak(np.zeros(3 * 16000, np.float32), jax.random.key(1))
    assert all(np.all(np.isfinite(v)) for v in fields.values())
    shape = np.zeros(model.n_shape, np.float32)
    _, opening = lip_geometry(model, shape, fields["expression"], fields["jaw_pose"])
    _, rest = lip_geometry(model, shape, 0 * fields["expression"], 0 * fields["jaw_pose"])
    assert 1000 * (opening.max() - rest.max()) < 1.5  # mm: closed, as at rest


def test_audio_shorter_than_a_frame_gives_one_frame(speaker):
    fields = speaker.speak(np.full(100, 0.05, np.float32), jax.random.key(2))
    assert fields["expression"].shape == (1, 10) and fields["jaw_pose"].shape == (1, 3)


def test_refusals(speaker):
    with pytest.raises(InputError, match="not one of the prior's"):
        speaker.speak(np.zeros(1000, np.float32), jax.random.key(0), identity="nobody")
    with pytest.raises(InputError, match="NaN"):
        speaker.speak(np.full(1000, np.nan, np.float32), jax.random.key(0))
    with pytest.raises(InputError, match="mono"):
        speaker.speak(np.zeros((2, 1000), np.float32), jax.random.key(0))
    silence = speaker.silence
    with pytest.raises(InputError, match="values a frame"):
        sample_motion(speaker.prior, np.zeros((10, 7), np.float32), jax.random.key(0), silence)
    with pytest.raises(InputError, match="outside the prior's table"):
        sample_motion(
            speaker.prior,
            np.zeros((10, silence.shape[0]), np.float32),
            jax.random.key(0),
            silence,
            identity=10_000,
        )
    # A known identity works and differs from the unknown speaker.
    audio = np.random.default_rng(0).normal(size=16000).astype(np.float32) * 0.1
    known = speaker.speak(audio, jax.random.key(0), identity=speaker.identities[0])
    unknown = speaker.speak(audio, jax.random.key(0))
    assert np.abs(known["expression"] - unknown["expression"]).max() > 1e-5
