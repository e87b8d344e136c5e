"""Audio as models take it: WAV I/O in the clip format (16 kHz mono 16-bit), resampling, and
a per-video-frame energy envelope. Host-side numpy; scipy.signal loads only when used.

Voices and mouth shapes for them belong to the synthetic world (:mod:`ggtalker_jax.world`).
"""

from ggtalker_jax.audio.wav import (
    energy_envelope,
    num_frames,
    read_wav,
    resample_to_16k,
    write_wav,
)

__all__ = ["energy_envelope", "num_frames", "read_wav", "resample_to_16k", "write_wav"]
