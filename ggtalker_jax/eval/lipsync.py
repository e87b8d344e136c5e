"""Do the lips follow the speech? Mouth opening measured on the FLAME mesh against the sound.

The mouth opening is the distance between the inner-lip landmarks 62 (upper) and 66 (lower) of
the iBUG 68 layout, in metres, on the posed mesh; the sound is the per-frame RMS energy
(:func:`ggtalker_jax.audio.wav.energy_envelope`, frame ``t`` covering ``[t, t + 1) / fps``).
"""

from __future__ import annotations

import numpy as np

from ggtalker_jax.errors import InputError
from ggtalker_jax.types import FPS, SAMPLE_RATE

INNER_LIP_LANDMARKS = (62, 66)  # upper and lower inner-lip midpoints (iBUG 68)


def inner_lip_distance(landmarks: np.ndarray) -> np.ndarray:
    """Mouth opening ``[...]`` in metres from landmarks ``[..., 68, 3]``."""
    landmarks = np.asarray(landmarks)
    if landmarks.ndim < 2 or landmarks.shape[-2:] != (68, 3):
        raise InputError(
            f"landmarks have shape {landmarks.shape}; expected [..., 68, 3] (iBUG 68 layout)"
        )
    upper, lower = INNER_LIP_LANDMARKS
    return np.linalg.norm(landmarks[..., upper, :] - landmarks[..., lower, :], axis=-1)


def silent_frames(energy: np.ndarray, rel: float = 0.02, margin: int = 2) -> np.ndarray:
    """Frames ``[T]`` bool of silence: energy below ``rel`` × its peak and at least ``margin``
    frames away from any sounding frame (a mouth may anticipate or release a sound)."""
    energy = np.asarray(energy, np.float64)
    quiet = energy < rel * max(float(energy.max(initial=0.0)), 1e-12)
    near_sound = np.convolve((~quiet).astype(float), np.ones(2 * margin + 1), "same") > 0
    return quiet & ~near_sound


def lip_energy_report(
    opening: np.ndarray, audio: np.ndarray, rate: int = SAMPLE_RATE, fps: float = FPS
) -> dict:
    """How well a mouth-opening track follows the audio.

    Args:
      opening: ``[T]`` mouth opening per frame (e.g. :func:`inner_lip_distance`), metres.
      audio: ``[A]`` mono samples at ``rate``.

    Returns:
      ``{"r": Pearson r of opening and energy, "speech_mm": mean opening where the energy is
      above half its peak, "silence_mm": mean opening in :func:`silent_frames`,
      "silent_frames": their count, "frames": T}``.
    """
    from ggtalker_jax.audio.wav import energy_envelope

    opening = np.asarray(opening, np.float64)
    energy = energy_envelope(np.asarray(audio), rate, fps, n_frames=opening.shape[0])
    if opening.ndim != 1 or opening.shape[0] < 3:
        raise InputError(f"opening has shape {opening.shape}; expected [T] with T >= 3")
    r = float(np.corrcoef(opening, energy)[0, 1]) if opening.std() > 0 else 0.0
    silent = silent_frames(energy)
    loud = energy > 0.5 * energy.max()
    return {
        "r": r,
        "speech_mm": float(1000 * opening[loud].mean()) if loud.any() else float("nan"),
        "silence_mm": float(1000 * opening[silent].mean()) if silent.any() else float("nan"),
        "silent_frames": int(silent.sum()),
        "frames": int(opening.shape[0]),
    }
