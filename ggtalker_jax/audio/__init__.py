"""Audio: WAV I/O and resampling, speech synthesis (espeak-ng), and phoneme → viseme → FLAME
mouth trajectories for the synthetic world.

Everything here is host-side numpy; nothing loads espeak-ng or scipy.signal until it is used.
"""

from ggtalker_jax.audio.speech import Phoneme, Speech, Word, check_voice, list_voices, synthesize
from ggtalker_jax.audio.visemes import (
    EXPRESSION_NAMES,
    VISEMES,
    SpeakingStyle,
    Viseme,
    VisemeSpan,
    mouth_opening,
    phoneme_to_visemes,
    phonemes_to_trajectories,
    phonemes_to_visemes,
)
from ggtalker_jax.audio.wav import (
    SAMPLE_RATE,
    energy_envelope,
    num_frames,
    read_wav,
    resample_to_16k,
    write_wav,
)

__all__ = [
    "EXPRESSION_NAMES",
    "SAMPLE_RATE",
    "VISEMES",
    "Phoneme",
    "SpeakingStyle",
    "Speech",
    "Viseme",
    "VisemeSpan",
    "Word",
    "check_voice",
    "energy_envelope",
    "list_voices",
    "mouth_opening",
    "num_frames",
    "phoneme_to_visemes",
    "phonemes_to_trajectories",
    "phonemes_to_visemes",
    "read_wav",
    "resample_to_16k",
    "synthesize",
    "write_wav",
]
