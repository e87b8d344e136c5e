"""Phonemes → visemes → FLAME expression and jaw trajectories, for the synthetic world.

A viseme is a mouth shape: a jaw rotation (``jaw_pose[0]``, radians about +x, positive opens) and
weights for the procedural head's expression components
(:data:`ggtalker_jax.types.EXPRESSION_NAMES`; one unit is a few millimetres of lip motion).

The trajectory model is Cohen & Massaro's coarticulation (1993): every viseme span k has a target
x_k and a dominance function D_k(t) = α_k · exp(-(|t - c_k| / w_k)²) around its centre c_k, and
the mouth at time t is the dominance-weighted mean Σ D_k(t) x_k / Σ D_k(t). Strong dominance
(bilabials, labiodentals) makes a viseme reach its target even when it is short; weak dominance
(schwa) lets neighbours shape it. The blend is then smoothed with a Gaussian of the speaker's
time constant and averaged over each video frame's interval, so a frame shows the same time span
as :func:`ggtalker_jax.audio.wav.energy_envelope` measures.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from ggtalker_jax.errors import InputError
from ggtalker_jax.types import EXPRESSION_NAMES, FPS, SAMPLE_RATE
from ggtalker_jax.world.speech import Phoneme

N_VISEME_EXPRESSION = len(EXPRESSION_NAMES)
_PRESS = EXPRESSION_NAMES.index("lips_press")
_LIPS_PART = EXPRESSION_NAMES.index("lips_part")


@dataclasses.dataclass(frozen=True)
class Viseme:
    """A mouth-shape target.

    Attributes:
      name: ``sil``, ``PP``, ``FF``, ...
      jaw: jaw opening in radians (rotation of ``jaw_pose`` about +x).
      expression: [10] weights of :data:`EXPRESSION_NAMES`.
      dominance: how strongly the viseme holds its target against its neighbours (α).
    """

    name: str
    jaw: float
    expression: tuple[float, ...]
    dominance: float


def _viseme(name: str, jaw: float, dominance: float, **weights: float) -> Viseme:
    unknown = set(weights) - set(EXPRESSION_NAMES)
    assert not unknown, unknown
    return Viseme(name, jaw, tuple(weights.get(n, 0.0) for n in EXPRESSION_NAMES), dominance)


# Targets are for a neutral speaker; SpeakingStyle scales them. Jaw angles follow articulography
# ranges (a few degrees for consonants, up to about 17 degrees for open vowels).
VISEMES: dict[str, Viseme] = {
    v.name: v
    for v in (
        _viseme("sil", 0.0, 1.5),  # rest: lips closed, jaw closed
        _viseme("PP", 0.01, 4.0, lips_press=1.0),  # p b m: the closure must be seen, so dominant
        _viseme("FF", 0.04, 2.5, lips_press=0.35, upper_lip_raise=0.35, lips_part=0.1),  # f v
        _viseme("TH", 0.09, 1.2, lips_part=0.35, lips_spread=0.1),  # T D (tongue between teeth)
        _viseme("DD", 0.05, 0.9, lips_part=0.25),  # t d n l: high jaw (alveolar contact)
        _viseme("KK", 0.08, 0.7, lips_part=0.25),  # k g N h x
        _viseme(
            "CH", 0.07, 1.5, lips_round=0.4, lips_funnel=0.7, lips_part=0.35, upper_lip_raise=0.2
        ),
        _viseme("SS", 0.045, 1.3, lips_spread=0.5, smile=0.15, lips_part=0.2),  # s z ts
        _viseme("RR", 0.08, 1.0, lips_round=0.45, lips_funnel=0.3, lips_part=0.25),  # r R
        _viseme("AA", 0.30, 1.0, lips_part=0.6, lower_lip_depress=0.3),  # a A & V
        _viseme("E", 0.19, 1.0, lips_part=0.5, lips_spread=0.35),  # e E 3
        _viseme("I", 0.09, 1.0, lips_spread=0.8, smile=0.3, lips_part=0.4),  # i I j
        _viseme("O", 0.20, 1.2, lips_round=0.8, lips_funnel=0.3, lips_part=0.45),  # o O 0 W Y
        _viseme("U", 0.08, 1.4, lips_round=1.0, lips_funnel=0.6, lips_part=0.2),  # u U w y
        _viseme("@", 0.13, 0.6, lips_part=0.4),  # schwa: reduced, easily coarticulated
    )
}
"""The viseme table: name → :class:`Viseme`."""

# espeak-ng mnemonics (Kirshenbaum-like ASCII) of consonants, shared by all languages.
_CONSONANTS = {
    **dict.fromkeys(("p", "b", "m", "B", "p\\"), "PP"),
    **dict.fromkeys(("f", "v", "F", "M", "V\\"), "FF"),
    **dict.fromkeys(("T", "D"), "TH"),
    **dict.fromkeys(("t", "d", "n", "l", "L", "J", "n^", "l^", "t#", "d#"), "DD"),
    **dict.fromkeys(("k", "g", "N", "h", "H", "x", "X", "G", "Q", "q", "c", "?", "K", "ng"), "KK"),
    **dict.fromkeys(("S", "Z", "C", "tS", "dZ", "TS", "sx", "tc", "dj", "c;", "J;"), "CH"),
    **dict.fromkeys(("s", "z", "ts", "dz", "tz", "t_s", "d_z", "s'", "z'"), "SS"),
    **dict.fromkeys(("r", "R", "*", "**", "r*", "R2", "rr", "r."), "RR"),
    "w": "U",
    "j": "I",
}
_VOWEL_LETTERS = {
    **dict.fromkeys("aA&V", "AA"),
    **dict.fromkeys("eE3", "E"),
    **dict.fromkeys("iI", "I"),
    **dict.fromkeys("oO0YW", "O"),
    **dict.fromkeys("uUy", "U"),
    "@": "@",
}
# Length, palatalisation, nasalisation, dental and variant marks inside a mnemonic. Not 0 and 3:
# those are vowels (ɒ, ɜ).
_MODIFIERS = ":;#~-^[\"12456789'`\\/!|.="


def phoneme_to_visemes(symbol: str) -> tuple[str, ...]:
    """Viseme names for one espeak-ng phoneme mnemonic (leading stress marks are ignored).

    Diphthongs give one viseme per vowel letter (``aI`` → ``("AA", "I")``); pauses (``_``,
    ``_:``, ``_|``...) give ``("sil",)``; an event that only modifies the previous phoneme (a bare
    ``;`` palatalisation or ``:`` length mark) gives ``()``. Unknown symbols fall back by their
    letters: vowel letters to their vowel class, consonants by their first letter, anything else
    to the neutral consonant ``KK``.
    """
    symbol = symbol.lstrip("',%=")
    if not symbol or symbol.startswith("_"):
        return ("sil",)
    if symbol in _CONSONANTS:
        return (_CONSONANTS[symbol],)
    core = "".join(ch for ch in symbol if ch not in _MODIFIERS)
    if not core:
        return ()
    if core in _CONSONANTS:
        return (_CONSONANTS[core],)
    if core[0] == "?" and len(core) > 1:
        core = core[1:]  # a glottal onset before a vowel: the lips show the vowel
    if all(ch in _VOWEL_LETTERS for ch in core):
        names: list[str] = []
        for ch in core:
            if not names or names[-1] != _VOWEL_LETTERS[ch]:
                names.append(_VOWEL_LETTERS[ch])
        return tuple(names[:3])
    for key in (core[:2], core[:1]):  # aspirated kh, th; affricate variants
        if key in _CONSONANTS:
            return (_CONSONANTS[key],)
    if core[0] in _VOWEL_LETTERS:
        return (_VOWEL_LETTERS[core[0]],)
    return ("KK",)


# Uncovered time longer than this between two phonemes becomes a ``sil`` span (seconds).
_GAP_S = 0.01


@dataclasses.dataclass(frozen=True)
class VisemeSpan:
    """A viseme over a time span (seconds); ``stress`` as in :class:`Phoneme`."""

    name: str
    start: float
    end: float
    stress: int = 0


def phonemes_to_visemes(phonemes: Sequence[Phoneme]) -> tuple[VisemeSpan, ...]:
    """Maps timed phonemes to timed visemes.

    A diphthong's span is split: its first vowel holds 55% (the steady onset), the rest share the
    glide. Time between phonemes (e.g. the pause between two synthesized sentences) is silence,
    consecutive pauses merge into one ``sil`` span, and modifier-only events extend the previous
    span.
    """
    spans: list[VisemeSpan] = []
    for p in phonemes:
        if spans and p.start > spans[-1].end + _GAP_S:
            if spans[-1].name == "sil":
                spans[-1] = dataclasses.replace(spans[-1], end=p.start)
            else:
                spans.append(VisemeSpan("sil", spans[-1].end, p.start))
        names = phoneme_to_visemes(p.symbol)
        if not names:
            if spans:
                spans[-1] = dataclasses.replace(spans[-1], end=p.end)
                continue
            names = ("sil",)
        duration = max(p.end - p.start, 0.0)
        fractions = (
            [1.0] if len(names) == 1 else [0.55] + [0.45 / (len(names) - 1)] * (len(names) - 1)
        )
        t = p.start
        for name, f in zip(names, fractions, strict=True):
            end = t + f * duration
            if spans and name == "sil" and spans[-1].name == "sil":
                spans[-1] = dataclasses.replace(spans[-1], end=end)
            else:
                spans.append(VisemeSpan(name, t, end, p.stress))
            t = end
    return tuple(spans)


@dataclasses.dataclass(frozen=True)
class SpeakingStyle:
    """How one identity articulates.

    Attributes:
      amplitude: scales the jaw opening and every lip component except the bilabial press (a
        closure is a contact, not a size); about 0.7 (mumbling) to 1.3 (emphatic).
      lead_s: visual lead in seconds: positive moves the mouth before the sound (people typically
        lead by a few tens of ms), negative after it; about ±0.04.
      smoothing_s: standard deviation of the Gaussian smoothing of the blended trajectory
        (seconds); larger is lazier articulation.
      expression_gains: [10] per-component gains on top of ``amplitude``.
    """

    amplitude: float = 1.0
    lead_s: float = 0.0
    smoothing_s: float = 0.025
    expression_gains: tuple[float, ...] = (1.0,) * N_VISEME_EXPRESSION

    def __post_init__(self):
        if not 0.0 < self.amplitude <= 3.0:
            raise InputError(f"speaking style amplitude {self.amplitude} must be in (0, 3]")
        if abs(self.lead_s) > 0.2:
            raise InputError(f"speaking style lead_s {self.lead_s} must be within ±0.2 s")
        if not 0.0 <= self.smoothing_s <= 0.2:
            raise InputError(f"speaking style smoothing_s {self.smoothing_s} must be in [0, 0.2] s")
        gains = tuple(float(g) for g in self.expression_gains)
        if len(gains) != N_VISEME_EXPRESSION or not all(0.0 <= g <= 3.0 for g in gains):
            raise InputError(
                f"speaking style expression_gains {self.expression_gains} must be "
                f"{N_VISEME_EXPRESSION} values in [0, 3]"
            )
        object.__setattr__(self, "expression_gains", gains)

    @classmethod
    def random(cls, rng: np.random.Generator) -> SpeakingStyle:
        """A random plausible speaker: amplitude 0.7-1.3, lead 0-40 ms (the mouth moves before
        the sound it shapes, never after), smoothing 15-40 ms, gains 0.75-1.25. Deterministic
        for a given generator state."""
        return cls(
            amplitude=float(rng.uniform(0.7, 1.3)),
            lead_s=float(rng.uniform(0.0, 0.04)),
            smoothing_s=float(rng.uniform(0.015, 0.04)),
            expression_gains=tuple(float(g) for g in rng.uniform(0.75, 1.25, N_VISEME_EXPRESSION)),
        )


# Dominance width beyond a span's half-duration (s), and the dense rate of the blend per frame.
_WIDTH_PAD_S = 0.025
_SUBSTEPS = 16
# Stress scales vowel opening: unstressed vowels are reduced, primary stress is emphatic.
_STRESS_GAIN = (0.85, 0.95, 1.05)


def phonemes_to_trajectories(
    phonemes: Sequence[Phoneme],
    n_frames: int,
    fps: float = FPS,
    style: SpeakingStyle = SpeakingStyle(),  # noqa: B008 (frozen, so a safe default)
    n_exp: int = N_VISEME_EXPRESSION,
    audio: np.ndarray | None = None,
    rate: int = SAMPLE_RATE,
) -> tuple[np.ndarray, np.ndarray]:
    """Expression and jaw trajectories that articulate timed phonemes.

    Args:
      phonemes: timed phonemes (e.g. ``synthesize(...).phonemes``), times in seconds.
      n_frames: T, the number of video frames; frame t covers [t / fps, (t + 1) / fps). Time
        not covered by phonemes is silence.
      fps: video frame rate.
      style: the speaker's :class:`SpeakingStyle`.
      n_exp: expression coefficients to return: extra columns are zero, fewer truncate.
      audio: optional ``[S]`` samples the phoneme times refer to. When given, each span's
        opening (jaw and lips-part) scales with its loudness, as louder speech opens the mouth
        wider (Schulman 1989): gain ``sqrt(rms / median vowel rms)`` clipped to [0.5, 1.5].
      rate: sample rate of ``audio``.

    Returns:
      ``(expression [T, n_exp], jaw_pose [T, 3])`` float32; ``jaw_pose`` is axis-angle about +x
      (column 0, radians, positive opens). Silences are at rest (jaw near 0, lips closed).
    """
    if n_frames < 0 or n_exp < 0 or fps <= 0:
        raise InputError(
            f"n_frames={n_frames}, n_exp={n_exp}, fps={fps}: need T, n_exp >= 0, fps > 0"
        )
    spans = phonemes_to_visemes(phonemes)
    gains = None if audio is None else loudness_gains(spans, audio, rate)
    params = _blend(spans, n_frames, fps, style, gains)  # [T, 11]
    expression = np.zeros((n_frames, n_exp), np.float32)
    k = min(n_exp, N_VISEME_EXPRESSION)
    expression[:, :k] = params[:, 1 : 1 + k]
    jaw_pose = np.zeros((n_frames, 3), np.float32)
    jaw_pose[:, 0] = params[:, 0]
    return expression, jaw_pose


_VOWELS = ("AA", "E", "I", "O", "U", "@")


def loudness_gains(spans: Sequence[VisemeSpan], audio: np.ndarray, rate: int) -> np.ndarray:
    """Opening gain per span ``[K]`` from the audio's RMS over the span: ``sqrt(rms / ref)``
    clipped to [0.5, 1.5], ``ref`` the median RMS of the vowel spans (1 for silences)."""
    audio = np.asarray(audio, np.float64)
    if audio.ndim != 1:
        raise InputError(f"audio has shape {audio.shape}; expected mono samples [S]")
    rms = np.zeros(len(spans))
    for k, span in enumerate(spans):
        lo = int(np.clip(round(span.start * rate), 0, audio.shape[0]))
        hi = int(np.clip(round(span.end * rate), lo, audio.shape[0]))
        rms[k] = np.sqrt(np.mean(audio[lo:hi] ** 2)) if hi > lo else 0.0
    vowel = np.array([s.name in _VOWELS for s in spans], bool)
    ref = np.median(rms[vowel]) if vowel.any() else 0.0
    if ref <= 0:
        return np.ones(len(spans))
    gains = np.clip(np.sqrt(rms / ref), 0.5, 1.5)
    return np.where([s.name == "sil" for s in spans], 1.0, gains)


def _targets(spans: Sequence[VisemeSpan], style: SpeakingStyle) -> tuple[np.ndarray, np.ndarray]:
    """Per-span targets [K, 11] (jaw, 10 expression weights) and dominances [K], styled."""
    gains = np.asarray(style.expression_gains) * style.amplitude
    gains[_PRESS] = style.expression_gains[_PRESS]  # contact strength does not scale
    targets = np.zeros((len(spans), 1 + N_VISEME_EXPRESSION))
    dominance = np.zeros(len(spans))
    for k, span in enumerate(spans):
        v = VISEMES[span.name]
        is_vowel = span.name in _VOWELS
        stress = _STRESS_GAIN[span.stress] if is_vowel else 1.0
        targets[k, 0] = v.jaw * style.amplitude * stress
        targets[k, 1:] = np.asarray(v.expression) * gains
        targets[k, 1 + _LIPS_PART] *= stress
        dominance[k] = v.dominance
    return targets, dominance


def _blend(
    spans: Sequence[VisemeSpan],
    n_frames: int,
    fps: float,
    style: SpeakingStyle,
    gains: np.ndarray | None = None,  # [K] opening gain per span
) -> np.ndarray:  # [T, 11]
    """Dominance blend on a dense grid, Gaussian smoothing, then a per-frame box average."""
    n_dense = n_frames * _SUBSTEPS
    dt = 1.0 / (fps * _SUBSTEPS)
    t = (np.arange(n_dense) + 0.5) * dt  # dense sample centres, seconds
    # Silence before the first and after the last phoneme, so the ends come to rest.
    first = spans[0].start if spans else 0.0
    last = spans[-1].end if spans else 0.0
    horizon = max(last, n_frames / fps) + 1.0
    spans = [VisemeSpan("sil", -1.0, first), *spans, VisemeSpan("sil", last, horizon)]
    targets, dominance = _targets(spans, style)
    if gains is not None:
        opening = np.concatenate([[1.0], gains, [1.0]])
        targets[:, 0] *= opening
        targets[:, 1 + _LIPS_PART] *= opening
    num = np.zeros((n_dense, targets.shape[1]))
    den = np.zeros(n_dense)
    for k, span in enumerate(spans):
        half = max(span.end - span.start, 0.0) / 2
        centre = span.start + half - style.lead_s  # lead: the mouth gets there earlier
        width = half + _WIDTH_PAD_S
        # Beyond 4 widths the dominance is < 1e-7 of its peak: skip it to stay O(T) per span.
        lo = max(int(np.floor((centre - 4 * width) / dt)), 0)
        hi = min(int(np.ceil((centre + 4 * width) / dt)) + 1, n_dense)
        if lo >= hi:
            continue
        d = dominance[k] * np.exp(-(((t[lo:hi] - centre) / width) ** 2))
        num[lo:hi] += d[:, None] * targets[k][None, :]
        den[lo:hi] += d
    dense = num / np.maximum(den, 1e-12)[:, None]
    dense = _gaussian_smooth(dense, style.smoothing_s / dt)
    return dense.reshape(n_frames, _SUBSTEPS, -1).mean(axis=1).astype(np.float32)


def _gaussian_smooth(x: np.ndarray, sigma: float) -> np.ndarray:  # [N, D] -> [N, D]
    """Zero-phase Gaussian smoothing along axis 0 (edges held), sigma in samples."""
    if sigma < 0.5 or x.shape[0] == 0:
        return x
    radius = int(np.ceil(3 * sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    padded = np.concatenate([np.repeat(x[:1], radius, 0), x, np.repeat(x[-1:], radius, 0)])
    out = np.empty_like(x)
    for j in range(x.shape[1]):
        out[:, j] = np.convolve(padded[:, j], taps, mode="valid")
    return out


def mouth_opening(
    expression: np.ndarray,  # [T, n_exp]
    jaw_pose: np.ndarray,  # [T, 3]
    lips_weight: float = 0.1,
) -> np.ndarray:  # [T]
    """A scalar mouth-opening proxy: jaw angle (rad) + ``lips_weight`` × the lips-part weight.

    ``lips_weight`` converts the lips-part coefficient into jaw-equivalent radians (a unit of
    lips part opens the lips about as much as 0.1 rad of jaw). Used to check lips against audio
    energy.
    """
    return np.asarray(jaw_pose)[:, 0] + lips_weight * np.asarray(expression)[:, _LIPS_PART]
