"""Speech synthesis for the synthetic world: espeak-ng through ctypes, with phoneme timings.

espeak-ng comes from the ``espeakng-loader`` wheel (a shared library plus its data folder), so no
system package is needed. We call its C API directly:

- ``espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS=2, buflength=0, data_path, options=1)``: bit 0 of
  ``options`` turns on phoneme events; the call returns the output rate, 22050 Hz.
- ``espeak_Synth`` runs the synthesis in the calling thread and hands audio to our callback in
  chunks, each with an event list ended by type 0. A type-7 event is a phoneme whose ``id`` union
  holds its ASCII mnemonic (up to 8 bytes, with stress marks ``'`` and ``,`` in front).
- Event timing: ``sample`` is the 0-based sample index at 22050 Hz, counted from the start of
  this ``espeak_Synth`` call; ``audio_position`` is the same instant in whole milliseconds
  (floor(sample / 22.05)). We use ``sample``. Phoneme events mark onsets: a pause event ``_:``
  lands within a few ms of where the waveform goes silent.
- Events also include language-switch markers such as ``(en)`` with zero duration; we drop them.
- espeak keeps synthesis state in statics that no API call resets, so a repeated call drifts by a
  few samples; :func:`synthesize` reloads the library each time (about 5 ms) to be reproducible.
- ``espeak_SetVoiceByName`` takes voice file names (``en``, ``en-US``, ``cmn``), not every language
  alias a voice lists (``en-gb`` fails), and accepts voices whose dictionary the wheel lacks
  (``fo``), which then speak nothing: :func:`list_voices` leaves those out.

The library is process-global and not thread-safe: every call goes through one module lock.
"""

from __future__ import annotations

import _ctypes
import ctypes
import dataclasses
import threading
from pathlib import Path

import numpy as np

from ggtalker_jax.audio.wav import SAMPLE_RATE, resample_to_16k
from ggtalker_jax.errors import InputError

# espeak_AUDIO_OUTPUT, espeak_EVENT_TYPE, espeak_PARAMETER and flag values from speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_PHONEME = 7
_PARAM_RATE = 1
_PARAM_PITCH = 3
_POS_CHARACTER = 1
_CHARS_UTF8 = 1

_STRESS_MARKS = "',%="  # primary, secondary, unstressed, syllabic prefixes in espeak mnemonics

SUGGESTED_VOICES = ("en", "en-us", "de", "fr", "es", "it", "pt", "nl", "ru", "pl", "cmn", "ja")
"""A few voices known to work; :func:`list_voices` has all of them (100+ languages)."""


@dataclasses.dataclass(frozen=True)
class Phoneme:
    """One phoneme of synthesized speech.

    Attributes:
      symbol: espeak-ng's ASCII mnemonic without stress marks (``h``, ``oU``, ``tS``, ``_:``).
        Mnemonics starting with ``_`` are pauses.
      start: onset in seconds from the start of the audio.
      end: offset in seconds (the next phoneme's onset, or the end of the audio).
      stress: 0 unstressed, 1 secondary (``,``), 2 primary (``'``) stress.
    """

    symbol: str
    start: float
    end: float
    stress: int = 0


@dataclasses.dataclass(frozen=True)
class Word:
    """One word: its text (a slice of the input) and its time span in seconds."""

    text: str
    start: float
    end: float


@dataclasses.dataclass(frozen=True, eq=False)
class Speech:
    """Synthesized speech on the clip format's timeline.

    Attributes:
      audio: [A] float32 in [-1, 1] at 16 kHz.
      phonemes: phonemes in time order, covering [0, A / 16000] without gaps (pauses included).
      words: words in time order (each ends at the next word or at the next pause).
      voice: the espeak voice used (``"en"``, ``"de"``...).
    """

    audio: np.ndarray
    phonemes: tuple[Phoneme, ...]
    words: tuple[Word, ...] = ()
    voice: str = "en"

    sample_rate = SAMPLE_RATE

    @property
    def duration(self) -> float:
        """Length of the audio in seconds."""
        return self.audio.shape[0] / SAMPLE_RATE


# --- ctypes bindings -------------------------------------------------------------------------


class _EventId(ctypes.Union):
    _fields_ = (
        ("number", ctypes.c_int),
        ("name", ctypes.c_char_p),
        ("string", ctypes.c_char * 8),
    )


class _Event(ctypes.Structure):
    _fields_ = (
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    )


class _Voice(ctypes.Structure):
    _fields_ = (
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),  # priority byte, language, NUL, ..., NUL
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    )


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


class _Collector:
    """Receives the callback's audio chunks and events for one ``espeak_Synth`` call."""

    def __init__(self):
        self.chunks: list[np.ndarray] = []
        self.phonemes: list[tuple[int, str, int]] = []  # (sample, symbol, stress)
        self.words: list[tuple[int, int, int]] = []  # (sample, text position (1-based), length)


_LOCK = threading.Lock()
_state: dict = {}  # lib, rate, callback: filled once by _library() under _LOCK
_collector: _Collector | None = None


def _on_synth(wav, n_samples, events) -> int:
    # Runs inside espeak_Synth on the calling thread, which holds _LOCK. An exception here would
    # be printed and swallowed by ctypes, so the work is kept to copying.
    if _collector is None:
        return 1  # abort: nobody is listening
    if n_samples > 0 and wav:
        _collector.chunks.append(np.ctypeslib.as_array(wav, (n_samples,)).copy())
    i = 0
    while events[i].type != _EVENT_LIST_TERMINATED:
        e = events[i]
        if e.type == _EVENT_PHONEME:
            raw = e.id.string.decode("ascii", "replace")
            symbol = raw.lstrip(_STRESS_MARKS)
            stress = 2 if raw.startswith("'") else 1 if raw.startswith(",") else 0
            _collector.phonemes.append((e.sample, symbol, stress))
        elif e.type == _EVENT_WORD:
            _collector.words.append((e.sample, e.text_position, e.length))
        i += 1
    return 0


def _library(fresh: bool = False):
    """The initialised espeak-ng library; call with _LOCK held.

    espeak-ng keeps synthesis state in function-level statics that no API call resets (the
    pitch-flutter phase in wavegen.c's AdvanceParameters), so a second synthesis of the same text
    differs by a few samples and shifts phoneme onsets. ``fresh=True`` unloads the library
    (``espeak_Terminate`` + ``dlclose``) and loads it again, which takes about 5 ms and makes every
    call reproducible. (If something else in the process holds the same library open, dlclose
    cannot unload it and results depend on call order again.)
    """
    if "lib" in _state:
        if not fresh:
            return _state["lib"]
        _unload()
    try:
        import espeakng_loader
    except ImportError:
        raise InputError(
            "speech synthesis needs espeak-ng; install it with `pip install espeakng-loader`"
        ) from None
    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    _declare(lib)
    rate = lib.espeak_Initialize(
        _AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), _INIT_PHONEME_EVENTS
    )
    if rate <= 0:
        raise RuntimeError(f"espeak_Initialize failed (returned {rate})")
    if hasattr(lib, "espeak_ng_SetRandSeed"):
        lib.espeak_ng_SetRandSeed(1)  # espeak's own generator (noise in some voice variants)
    callback = _SynthCallback(_on_synth)  # kept in _state: ctypes must not free it
    lib.espeak_SetSynthCallback(callback)
    _state.update(lib=lib, rate=rate, callback=callback)
    return lib


def _unload() -> None:
    """Terminates espeak-ng and unloads the shared library; call with _LOCK held."""
    lib = _state.pop("lib")
    _state.clear()
    lib.espeak_Terminate()
    dlclose = getattr(_ctypes, "dlclose", None) or getattr(_ctypes, "FreeLibrary", None)
    if dlclose is not None:
        dlclose(lib._handle)


def _declare(lib) -> None:
    """Declares the C signatures we call (ctypes would otherwise guess int everywhere)."""
    lib.espeak_Initialize.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int)
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_Terminate.argtypes = ()
    lib.espeak_Terminate.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = (_SynthCallback,)
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = (ctypes.c_char_p,)
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int)
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_ListVoices.argtypes = (ctypes.c_void_p,)
    lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
    lib.espeak_Synth.argtypes = (
        ctypes.c_void_p,  # text
        ctypes.c_size_t,  # size in bytes, including the terminating NUL
        ctypes.c_uint,  # position
        ctypes.c_int,  # position type
        ctypes.c_uint,  # end position (0: none)
        ctypes.c_uint,  # flags
        ctypes.c_void_p,  # unique identifier out
        ctypes.c_void_p,  # user data
    )
    lib.espeak_Synth.restype = ctypes.c_int
    if hasattr(lib, "espeak_ng_SetRandSeed"):
        lib.espeak_ng_SetRandSeed.argtypes = (ctypes.c_long,)
        lib.espeak_ng_SetRandSeed.restype = ctypes.c_int


def list_voices() -> list[str]:
    """Names of the espeak-ng voices that can speak with the wheel's data, sorted
    (``["af", "am", ..., "en", "en-029", "en-us", ...]``); each is a valid ``voice``.

    The wheel ships voice files for a few languages whose pronunciation dictionary it lacks
    (Faroese ``fo``, for one); espeak accepts them but says nothing, so they are left out.
    """
    import espeakng_loader

    data = Path(espeakng_loader.get_data_path())
    with _LOCK:
        lib = _library()
        voices = lib.espeak_ListVoices(None)
        identifiers = []
        i = 0
        while voices[i]:
            identifiers.append(voices[i].contents.identifier.decode())  # e.g. "gmw/en-029"
            i += 1
    names = set()
    for identifier in identifiers:
        # A voice file names its dictionary, or uses its first language's base code.
        spec = (data / "lang" / identifier).read_text(errors="replace").split("\n")
        fields = [line.split() for line in spec if line.strip()]
        explicit = [f[1] for f in fields if f[0] == "dictionary" and len(f) > 1]
        language = [f[1] for f in fields if f[0] == "language" and len(f) > 1]
        dictionary = explicit[0] if explicit else (language or [identifier])[0].split("-")[0]
        if (data / f"{dictionary}_dict").is_file():
            names.add(identifier.split("/")[-1])
    return sorted(names)


def _unknown_voice(voice: str) -> InputError:
    return InputError(
        f"unknown espeak voice {voice!r}; try one of {', '.join(SUGGESTED_VOICES)}, ... "
        "(`espeak-ng --voices` or ggtalker_jax.world.speech.list_voices())"
    )


def check_voice(voice: str) -> None:
    """Raise :class:`InputError` (one line, with suggestions) unless espeak-ng knows ``voice``.

    Cheap (no synthesis): lets a long job refuse a bad voice before it starts.
    """
    with _LOCK:
        lib = _library()
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise _unknown_voice(voice)


def synthesize(
    text: str,
    voice: str = "en",
    rate_wpm: int = 165,
    pitch: int = 50,
    *,
    silence_before_s: float = 0.0,
    silence_after_s: float = 0.0,
) -> Speech:
    """Speaks ``text`` with espeak-ng and returns 16 kHz audio with phoneme and word timings.

    Deterministic: the same arguments give the same samples.

    Args:
      text: what to say (UTF-8, any script the voice reads). Punctuation makes pauses: about
        0.15 s at a comma, 0.33 s between sentences.
      voice: an espeak voice (``en``, ``en-us``, ``de``, ``es``...; see :func:`list_voices`).
      rate_wpm: speaking rate in words per minute, 80..450.
      pitch: base pitch, 0..100.
      silence_before_s: seconds of silence prepended (one ``_`` pause phoneme covers it).
      silence_after_s: seconds of silence appended.

    Returns:
      :class:`Speech` with ``audio`` [A] float32 at 16 kHz and phonemes on the same timeline.

    Raises:
      InputError: empty text, text with nothing to speak, an unknown voice, or a rate or pitch
        out of range.
    """
    if not text or not text.strip():
        raise InputError("text to synthesize is empty; pass some words, e.g. --text 'Hello'")
    if not 80 <= rate_wpm <= 450:
        raise InputError(f"speaking rate {rate_wpm} wpm is out of range; use 80..450")
    if not 0 <= pitch <= 100:
        raise InputError(f"pitch {pitch} is out of range; use 0..100")
    if silence_before_s < 0 or silence_after_s < 0:
        raise InputError("silence_before_s and silence_after_s must be >= 0 seconds")
    global _collector
    encoded = text.encode("utf-8")
    with _LOCK:
        lib = _library(fresh=True)
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise _unknown_voice(voice)
        lib.espeak_SetParameter(_PARAM_RATE, int(rate_wpm), 0)
        lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
        collected = _collector = _Collector()
        try:
            status = lib.espeak_Synth(
                encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
            )
        finally:
            _collector = None
        espeak_rate = _state["rate"]
    if status != 0:
        raise RuntimeError(f"espeak_Synth failed with status {status} for voice {voice!r}")
    return _assemble(text, voice, collected, espeak_rate, silence_before_s, silence_after_s)


def _assemble(
    text: str,
    voice: str,
    collected: _Collector,
    espeak_rate: int,
    silence_before_s: float,
    silence_after_s: float,
) -> Speech:
    """Resamples the collected audio to 16 kHz and turns event samples into phoneme spans."""
    raw = (
        np.concatenate(collected.chunks).astype(np.float32) / 32768.0
        if collected.chunks
        else np.zeros(0, np.float32)
    )
    if not any(not symbol.startswith(("_", "(")) for _, symbol, _ in collected.phonemes):
        # Punctuation-only text, or a voice whose dictionary is missing from the wheel's data.
        raise InputError(
            f"espeak voice {voice!r} spoke no phonemes for {text!r}; use words in that "
            "language, or a voice from ggtalker_jax.world.speech.list_voices()"
        )
    speech = resample_to_16k(raw, espeak_rate)
    n_before = int(round(silence_before_s * SAMPLE_RATE))
    n_after = int(round(silence_after_s * SAMPLE_RATE))
    audio = np.concatenate(
        [np.zeros(n_before, np.float32), np.clip(speech, -1.0, 1.0), np.zeros(n_after, np.float32)]
    )
    offset = n_before / SAMPLE_RATE
    speech_end = offset + speech.shape[0] / SAMPLE_RATE
    total = audio.shape[0] / SAMPLE_RATE

    # Onsets in seconds; each phoneme ends where the next begins. Language-switch markers like
    # "(en)" have no duration; the last event ("_") marks the end of the audio.
    spans: list[Phoneme] = [Phoneme("_", 0.0, offset)]  # silence_before_s (may be empty)
    for sample, symbol, stress in collected.phonemes:
        if not symbol.startswith("("):
            start = min(offset + sample / espeak_rate, speech_end)
            spans.append(Phoneme(symbol, start, start, stress))
    spans.append(Phoneme("_", speech_end, total))  # silence_after_s (may be empty)
    phonemes = _tile(spans, total)
    words = _words(text, collected.words, espeak_rate, offset, phonemes)
    return Speech(audio=audio, phonemes=tuple(phonemes), words=words, voice=voice)


def _tile(onsets: list[Phoneme], total: float) -> list[Phoneme]:
    """Makes each phoneme end at the next onset, drops spans shorter than one 16 kHz sample and
    merges runs of pauses, so the phonemes tile [0, total] with pauses between words."""
    min_len = 1.0 / SAMPLE_RATE
    out: list[Phoneme] = []
    for i, p in enumerate(onsets):
        end = onsets[i + 1].start if i + 1 < len(onsets) else total
        if end - p.start < min_len:
            continue
        if out and out[-1].symbol.startswith("_") and p.symbol.startswith("_"):
            out[-1] = dataclasses.replace(out[-1], end=end)
        else:
            out.append(dataclasses.replace(p, end=end))
    # Dropped spans leave holes: close them by extending the previous phoneme.
    return [
        dataclasses.replace(p, end=out[i + 1].start) if i + 1 < len(out) else p
        for i, p in enumerate(out)
    ]


def _words(
    text: str,
    events: list[tuple[int, int, int]],
    espeak_rate: int,
    offset: float,
    phonemes: list[Phoneme],
) -> tuple[Word, ...]:
    """Word spans: from the word event to the next word event or the next pause, if earlier."""
    pauses = [p.start for p in phonemes if p.symbol.startswith("_")]
    starts = [offset + s / espeak_rate for s, _, _ in events]
    end_of_speech = phonemes[-1].end if phonemes else offset
    words = []
    for i, (_, position, length) in enumerate(events):
        # text_position counts characters (not bytes) from 1.
        word_text = text[position - 1 : position - 1 + length]
        next_start = starts[i + 1] if i + 1 < len(starts) else end_of_speech
        next_pause = next((t for t in pauses if t > starts[i]), end_of_speech)
        words.append(Word(word_text, starts[i], min(next_start, next_pause)))
    return tuple(words)
