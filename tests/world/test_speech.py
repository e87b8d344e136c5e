"""espeak-ng synthesis: 16 kHz audio, phoneme timings that line up with the sound, errors."""

import itertools
import threading

import numpy as np
import pytest

from ggtalker_jax.errors import InputError
from ggtalker_jax.world.speech import Phoneme, list_voices, synthesize
from ggtalker_jax.world.visemes import phonemes_to_visemes

pytest.importorskip("espeakng_loader")

TEXT = "Hello there. How are you today?"


@pytest.fixture(scope="module")
def hello():
    return synthesize(TEXT)


def _rms(audio, start, end):
    segment = audio[int(start * 16000) : int(end * 16000)]
    return float(np.sqrt(np.mean(segment.astype(np.float64) ** 2)))


def test_english_audio(hello):
    assert hello.audio.dtype == np.float32 and hello.audio.ndim == 1
    assert np.abs(hello.audio).max() <= 1.0
    assert np.abs(hello.audio).max() > 0.1  # audible, not a scaling slip
    assert 1.2 < hello.duration < 3.5  # six words at 165 wpm with one sentence pause
    assert hello.sample_rate == 16000


def test_phonemes_tile_the_audio(hello):
    ph = hello.phonemes
    assert all(isinstance(p, Phoneme) for p in ph)
    assert ph[0].start == 0.0
    assert ph[-1].end == pytest.approx(hello.duration, abs=1 / 16000)
    for a, b in itertools.pairwise(ph):
        assert a.end == b.start  # contiguous, so monotone
        assert a.end > a.start
    spoken = [p for p in ph if not p.symbol.startswith("_")]
    assert len(spoken) >= 12
    assert all(not p.symbol.startswith(("'", ",")) for p in ph)  # stress moved to .stress
    assert any(p.stress == 2 for p in spoken)


def test_phoneme_times_line_up_with_the_sound(hello):
    # The sentence pause must be silent and the vowels loud: a wrong event field, a missing
    # 22050 -> 16000 rescale or an off-by-a-chunk offset all break this.
    pauses = [p for p in hello.phonemes[1:-1] if p.symbol.startswith("_") and p.end - p.start > 0.1]
    assert len(pauses) == 1
    pause = pauses[0]
    assert _rms(hello.audio, pause.start + 0.01, pause.end - 0.02) < 0.003
    vowels = [p for p in hello.phonemes if p.stress == 2]
    for v in vowels:
        assert _rms(hello.audio, v.start, v.end) > 0.05, v


def test_words(hello):
    assert [w.text for w in hello.words] == ["Hello", "there", "How", "are", "you", "today"]
    starts = [w.start for w in hello.words]
    assert starts == sorted(starts)
    assert all(w.end > w.start for w in hello.words)


def test_deterministic(hello):
    again = synthesize(TEXT)
    np.testing.assert_array_equal(again.audio, hello.audio)
    assert again.phonemes == hello.phonemes


def test_thread_safe(hello):
    results = [None] * 4

    def work(i):
        results[i] = synthesize(TEXT)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        np.testing.assert_array_equal(r.audio, hello.audio)


def test_silence_padding(hello):
    padded = synthesize(TEXT, silence_before_s=0.25, silence_after_s=0.5)
    assert padded.audio.shape[0] == hello.audio.shape[0] + 4000 + 8000
    np.testing.assert_array_equal(padded.audio[:4000], 0.0)
    np.testing.assert_array_equal(padded.audio[4000 : 4000 + hello.audio.shape[0]], hello.audio)
    assert padded.phonemes[0].symbol == "_" and padded.phonemes[0].end >= 0.25
    assert padded.phonemes[-1].symbol.startswith("_") and padded.phonemes[-1].end - 0.5 > 1.0
    shifted = [p.start + 0.25 for p in hello.phonemes if not p.symbol.startswith("_")]
    got = [p.start for p in padded.phonemes if not p.symbol.startswith("_")]
    np.testing.assert_allclose(got, shifted, atol=1e-9)


def test_rate_changes_duration():
    slow = synthesize("one two three four", rate_wpm=120)
    fast = synthesize("one two three four", rate_wpm=300)
    assert fast.duration < 0.7 * slow.duration


def test_unknown_voice():
    with pytest.raises(InputError) as info:
        synthesize("Hello", voice="xx-nope")
    message = str(info.value)
    assert "'xx-nope'" in message and "en" in message and "\n" not in message


@pytest.mark.parametrize("text", ["", "   \n"])
def test_empty_text(text):
    with pytest.raises(InputError, match="empty"):
        synthesize(text)


def test_text_without_words():
    with pytest.raises(InputError, match="no phonemes"):
        synthesize("...")


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"rate_wpm": 10}, "rate"), ({"pitch": 101}, "pitch")]
)
def test_parameters_out_of_range(kwargs, match):
    with pytest.raises(InputError, match=match):
        synthesize("Hello", **kwargs)


def test_list_voices():
    voices = list_voices()
    assert len(voices) > 100
    assert {"en", "en-US", "de", "es", "fr", "cmn"} <= set(voices)
    assert "fo" not in voices  # the wheel lacks its dictionary: espeak would say nothing


def _visemes(speech):
    return [v.name for v in phonemes_to_visemes(speech.phonemes) if v.name != "sil"]


def test_languages_differ():
    same_meaning = {
        "en": "Hello, how are you?",
        "de": "Hallo, wie geht es dir?",
        "es": "Hola, ¿cómo estás?",
    }
    speech = {voice: synthesize(text, voice=voice) for voice, text in same_meaning.items()}
    symbols = {v: [p.symbol for p in s.phonemes] for v, s in speech.items()}
    visemes = {v: _visemes(s) for v, s in speech.items()}
    for a, b in (("en", "de"), ("en", "es"), ("de", "es")):
        assert symbols[a] != symbols[b]
        assert visemes[a] != visemes[b]
    # The same spelling read by two languages' rules: English "Hello" has a schwa and a
    # diphthong, German "Hallo" an open a and a long o.
    en = [p.symbol for p in synthesize("Hello", voice="en").phonemes if p.symbol[0] != "_"]
    de = [p.symbol for p in synthesize("Hello", voice="de").phonemes if p.symbol[0] != "_"]
    assert en != de
