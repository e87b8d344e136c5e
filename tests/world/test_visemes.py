"""Phoneme → viseme mapping and mouth trajectories: lips follow the sound, rest in silence."""

import numpy as np
import pytest

from ggtalker_jax.audio.wav import energy_envelope, num_frames
from ggtalker_jax.errors import InputError
from ggtalker_jax.world.speech import Phoneme, synthesize
from ggtalker_jax.world.visemes import (
    EXPRESSION_NAMES,
    VISEMES,
    SpeakingStyle,
    mouth_opening,
    phoneme_to_visemes,
    phonemes_to_trajectories,
    phonemes_to_visemes,
)

PRESS = EXPRESSION_NAMES.index("lips_press")
LIPS_PART = EXPRESSION_NAMES.index("lips_part")

# Sentences with pauses (sentence breaks, commas, an ellipsis), about two seconds each.
SENTENCES = {
    "hello": ("Hello there. How are you today?", "en"),
    "fox": ("The quick brown fox, jumps over the lazy dog.", "en"),
    "maybe": ("Maybe... we should go home now.", "en"),
    "german": ("Guten Tag, wie geht es dir heute?", "de"),
    "bilabial": ("Papa bought a map of the bay.", "en"),
}


@pytest.fixture(scope="module")
def speech():
    """Each sentence with 0.3 s of silence before and after, so the mouth must start and end
    at rest."""
    pytest.importorskip("espeakng_loader")
    out = {}
    for name, (text, voice) in SENTENCES.items():
        s = synthesize(text, voice=voice, silence_before_s=0.3, silence_after_s=0.3)
        n = num_frames(s.audio.shape[0])
        out[name] = (s, n, energy_envelope(s.audio, n_frames=n))
    return out


def _silent_frames(energy: np.ndarray, margin: int = 2) -> np.ndarray:
    """Frames whose energy, and that of `margin` frames either side, is under 1% of the peak
    (lips may legitimately move a frame or two ahead of the sound)."""
    silent = energy < 0.01 * energy.max()
    deep = silent.copy()
    for k in range(1, margin + 1):
        deep[k:] &= silent[:-k]
        deep[:-k] &= silent[k:]
    return deep


@pytest.mark.parametrize(
    ("symbol", "expected"),
    [
        ("p", ("PP",)),
        ("b", ("PP",)),
        ("m", ("PP",)),
        ("f", ("FF",)),
        ("D", ("TH",)),
        ("tS", ("CH",)),
        ("tS;", ("CH",)),  # Polish palatalised
        ("s", ("SS",)),
        ("ts2", ("SS",)),
        ("R2", ("RR",)),
        ("kh", ("KK",)),  # Mandarin aspirated
        ("a:", ("AA",)),
        ("'oU", ("O", "U")),  # stress mark left on
        ("aI", ("AA", "I")),
        ("&U~", ("AA", "U")),  # Portuguese nasal diphthong
        ("i:", ("I",)),
        ("u:", ("U",)),
        ("y:", ("U",)),
        ("@", ("@",)),
        ("_:", ("sil",)),
        ("_|", ("sil",)),
        ("_", ("sil",)),
        ("a:I", ("AA", "I")),  # length mark inside a diphthong
        ("?E", ("E",)),  # glottal onset
        (";", ()),  # bare palatalisation event (Russian): modifies the previous phoneme
        ("Z9", ("CH",)),  # unknown: first letter
        ("e%", ("E",)),  # unknown vowel variant: vowel class
        ("+", ("KK",)),  # unknown, no letter: neutral consonant
    ],
)
def test_phoneme_to_visemes(symbol, expected):
    assert phoneme_to_visemes(symbol) == expected
    assert all(name in VISEMES for name in expected)


def test_diphthong_split_and_pause_merge():
    spans = phonemes_to_visemes(
        [Phoneme("_", 0.0, 0.1), Phoneme("_:", 0.1, 0.3), Phoneme("aI", 0.3, 0.5, 2)]
    )
    assert [s.name for s in spans] == ["sil", "AA", "I"]
    assert spans[0].end == pytest.approx(0.3)
    assert spans[1].end == pytest.approx(0.41) and spans[2].end == pytest.approx(0.5)
    assert spans[1].stress == 2
    # A modifier-only event extends the phoneme before it.
    spans = phonemes_to_visemes([Phoneme("t", 0.0, 0.1), Phoneme(";", 0.1, 0.12)])
    assert [(s.name, s.end) for s in spans] == [("DD", 0.12)]


def test_mouth_follows_the_sound(speech):
    rs = {}
    for name, (s, n, energy) in speech.items():
        expression, jaw = phonemes_to_trajectories(s.phonemes, n)
        rs[name] = float(np.corrcoef(mouth_opening(expression, jaw), energy)[0, 1])
    print("mouth opening vs energy envelope r:", {k: round(v, 3) for k, v in rs.items()})
    assert all(r > 0.5 for r in rs.values()), rs
    assert np.mean(list(rs.values())) > 0.6


def test_rest_in_silence(speech):
    for name, (s, n, energy) in speech.items():
        expression, jaw = phonemes_to_trajectories(s.phonemes, n)
        silent = _silent_frames(energy)
        # Leading and trailing silence, plus the pause inside the first sentence.
        assert silent[:5].all() and silent[-5:].all(), name
        assert np.abs(jaw[silent, 0]).max() < 0.02, name
        assert np.abs(expression[silent, LIPS_PART]).max() < 0.05, name
        assert np.abs(jaw[:, 1:]).max() == 0.0  # the jaw only opens about x
    energy = speech["hello"][2]
    inner = _silent_frames(energy)[10:-10]
    assert inner.sum() >= 2  # the sentence break between "there." and "How"


def test_speaking_opens_the_mouth(speech):
    s, n, energy = speech["hello"]
    expression, jaw = phonemes_to_trajectories(s.phonemes, n)
    loud = energy > 0.5 * energy.max()
    assert jaw[loud, 0].mean() > 0.1
    assert 0.15 < jaw[:, 0].max() < 0.35


def test_bilabials_press_the_lips(speech):
    s, n, _ = speech["bilabial"]
    expression, jaw = phonemes_to_trajectories(s.phonemes, n)
    bilabials = [p for p in s.phonemes if p.symbol in ("p", "b", "m")]
    assert len(bilabials) >= 5
    for p in bilabials:
        frames = np.arange(int(p.start * 25) - 1, int(p.end * 25) + 2)
        best = frames[np.argmax(expression[frames, PRESS])]
        assert expression[best, PRESS] > 0.6, p
        assert jaw[best, 0] < 0.1, p
    # A sentence without p, b or m never presses the lips.
    s, n, _ = speech["hello"]
    expression, _ = phonemes_to_trajectories(s.phonemes, n)
    assert expression[:, PRESS].max() < 0.1


def test_style_amplitude_scales_the_opening(speech):
    s, n, _ = speech["fox"]
    small = phonemes_to_trajectories(s.phonemes, n, style=SpeakingStyle(amplitude=0.7))
    large = phonemes_to_trajectories(s.phonemes, n, style=SpeakingStyle(amplitude=1.3))
    ratio = 1.3 / 0.7
    np.testing.assert_allclose(large[1][:, 0], ratio * small[1][:, 0], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        large[0][:, LIPS_PART], ratio * small[0][:, LIPS_PART], rtol=1e-4, atol=1e-6
    )
    np.testing.assert_allclose(large[0][:, PRESS], small[0][:, PRESS], atol=1e-6)  # a contact


def test_style_lead_moves_the_mouth_earlier(speech):
    s, n, _ = speech["fox"]
    _, jaw = phonemes_to_trajectories(s.phonemes, n)
    _, early = phonemes_to_trajectories(s.phonemes, n, style=SpeakingStyle(lead_s=0.08))
    lags = np.arange(-4, 5)
    scores = [np.dot(np.roll(early[:, 0], lag), jaw[:, 0]) for lag in lags]
    assert lags[int(np.argmax(scores))] == 2  # 0.08 s = 2 frames at 25 fps


def test_style_gains_scale_their_component(speech):
    s, n, _ = speech["fox"]
    gains = [1.0] * 10
    gains[EXPRESSION_NAMES.index("lips_round")] = 0.5
    base, _ = phonemes_to_trajectories(s.phonemes, n)
    half, _ = phonemes_to_trajectories(s.phonemes, n, style=SpeakingStyle(expression_gains=gains))
    r = EXPRESSION_NAMES.index("lips_round")
    np.testing.assert_allclose(half[:, r], 0.5 * base[:, r], atol=1e-6)
    np.testing.assert_allclose(half[:, LIPS_PART], base[:, LIPS_PART], atol=1e-6)


def test_trajectories_are_smooth(speech, rng):
    # Piecewise-constant targets jump by the full viseme difference (0.3 rad of jaw, 1.0 of a
    # lip weight); box-shaped dominance with the default smoothing still jumps 0.155 rad, 0.53.
    for name, (s, n, _) in speech.items():
        expression, jaw = phonemes_to_trajectories(s.phonemes, n)
        assert np.abs(np.diff(jaw[:, 0])).max() < 0.11, name
        assert np.abs(np.diff(expression, axis=0)).max() < 0.45, name
        style = SpeakingStyle.random(rng)  # bigger speakers move further per frame
        expression, jaw = phonemes_to_trajectories(s.phonemes, n, style=style)
        # The bilabial press does not scale with the amplitude (a contact is not a size).
        scale = max(style.amplitude, 1.0) * max(style.expression_gains)
        assert np.abs(np.diff(jaw[:, 0])).max() < 0.12 * style.amplitude, (name, style)
        assert np.abs(np.diff(expression, axis=0)).max() < 0.45 * scale, (name, style)


def test_shapes_dtypes_and_exp_columns(speech):
    s, n, _ = speech["hello"]
    expression, jaw = phonemes_to_trajectories(s.phonemes, n)
    assert expression.shape == (n, 10) and jaw.shape == (n, 3)
    assert expression.dtype == np.float32 and jaw.dtype == np.float32
    wide, jaw_wide = phonemes_to_trajectories(s.phonemes, n, n_exp=50)
    assert wide.shape == (n, 50)
    np.testing.assert_array_equal(wide[:, :10], expression)
    np.testing.assert_array_equal(wide[:, 10:], 0.0)
    np.testing.assert_array_equal(jaw_wide, jaw)
    narrow, _ = phonemes_to_trajectories(s.phonemes, n, n_exp=4)
    np.testing.assert_array_equal(narrow, expression[:, :4])


def test_deterministic_and_rest_without_phonemes(speech):
    s, n, _ = speech["maybe"]
    style = SpeakingStyle(amplitude=1.1, lead_s=0.02, smoothing_s=0.03)
    a = phonemes_to_trajectories(s.phonemes, n, style=style)
    b = phonemes_to_trajectories(s.phonemes, n, style=style)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    expression, jaw = phonemes_to_trajectories([], 7)
    np.testing.assert_array_equal(expression, 0.0)
    np.testing.assert_array_equal(jaw, 0.0)


def test_random_style(rng):
    seed = int(rng.integers(2**31))
    a = SpeakingStyle.random(np.random.default_rng(seed))
    assert a == SpeakingStyle.random(np.random.default_rng(seed))
    styles = [SpeakingStyle.random(rng) for _ in range(50)]
    amplitudes = [st.amplitude for st in styles]
    assert 0.7 <= min(amplitudes) and max(amplitudes) <= 1.3
    assert max(amplitudes) - min(amplitudes) > 0.3  # actually varies
    assert all(abs(st.lead_s) <= 0.04 for st in styles)
    assert all(len(st.expression_gains) == 10 for st in styles)


@pytest.mark.parametrize(
    "kwargs",
    [{"amplitude": 0.0}, {"lead_s": 0.5}, {"smoothing_s": -0.01}, {"expression_gains": (1.0,)}],
)
def test_bad_style(kwargs):
    with pytest.raises(InputError, match="speaking style"):
        SpeakingStyle(**kwargs)
