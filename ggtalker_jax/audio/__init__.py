"""Audio as models take it: WAV I/O in the clip format (16 kHz mono 16-bit), loading any
common format to 16 kHz mono, resampling, a per-video-frame energy envelope, and the jnp
log-mel features of the A2E prior. Host-side numpy except the features; scipy.signal and
ffmpeg load only when used.

Voices and mouth shapes for them belong to the synthetic world (:mod:`ggtalker_jax.world`).
"""

from ggtalker_jax.audio.load import load_audio
from ggtalker_jax.audio.wav import (
    energy_envelope,
    num_frames,
    read_wav,
    resample_to_16k,
    write_wav,
)

__all__ = [
    "energy_envelope",
    "load_audio",
    "num_frames",
    "read_wav",
    "resample_to_16k",
    "write_wav",
]
