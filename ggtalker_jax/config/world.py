"""The synthetic world's section: what ``ggtalker world`` (and the demo's world) generates."""

from __future__ import annotations

import dataclasses

import numpy as np

from ggtalker_jax.config.base import check

# Bounds of a request: past them a world takes days or cannot fit in memory, and a typo (an
# extra zero) should be refused at once instead of hanging. ``ggtalker world --help`` prints
# them; the world also checks one clip's memory against what is free before it starts.
MAX_IDENTITIES = 100_000
MAX_CLIPS_PER_IDENTITY = 10_000
MAX_CLIPS = 1_000_000
MAX_SECONDS = 600
MAX_RESOLUTION = 2048
MAX_VIEWS = 8
MAX_SEED = 2**32 - 1


@dataclasses.dataclass(frozen=True)
class WorldConfig:
    """What to generate.

    Its fields, in this order, are written to every world's ``world.json`` (a world is
    resumed only by the same settings): adding one changes every stamp.

    Attributes:
      identities: number of people.
      clips_per_identity: clips per person.
      seconds: clip length.
      resolution: frame side in pixels (even).
      seed: world seed.
      languages: espeak voices; identity ``i`` speaks ``languages[i % len]``.
      views: extra cameras per clip (novel-view ground truth of the same instants).
      video: render frames; ``False`` writes audio + FLAME only (audio-prior data).
      texture_size: UV texture side in texels; 0 picks twice the resolution (128 to 1024),
        about one texel per pixel on a frontal face.
      shape_scale: std of the identity shape coefficients.
    """

    identities: int = 2
    clips_per_identity: int = 2
    seconds: float = 4.0
    resolution: int = 256
    seed: int = 0
    languages: tuple[str, ...] = ("en",)
    views: int = 0
    video: bool = True
    texture_size: int = 0
    shape_scale: float = 0.6

    def __post_init__(self):
        total = self.identities * self.clips_per_identity
        checks = [
            (1 <= self.identities <= MAX_IDENTITIES, "identities", f"1 to {MAX_IDENTITIES}"),
            (
                1 <= self.clips_per_identity <= MAX_CLIPS_PER_IDENTITY,
                "clips_per_identity",
                f"1 to {MAX_CLIPS_PER_IDENTITY}, and at most {MAX_CLIPS} clips in all",
            ),
            (total <= MAX_CLIPS, "clips_per_identity", f"at most {MAX_CLIPS} clips in all"),
            (0.4 <= self.seconds <= MAX_SECONDS, "seconds", f"between 0.4 and {MAX_SECONDS}"),
            (
                32 <= self.resolution <= MAX_RESOLUTION and self.resolution % 2 == 0,
                "resolution",
                f"an even number from 32 to {MAX_RESOLUTION} (H.264 needs even sizes)",
            ),
            (0 <= self.seed <= MAX_SEED, "seed", f"an integer from 0 to {MAX_SEED}"),
            (len(self.languages) >= 1, "languages", "at least one espeak voice"),
            (0 <= self.views <= MAX_VIEWS, "views", f"between 0 and {MAX_VIEWS}"),
            (
                self.texture_size == 0 or 64 <= self.texture_size <= 4096,
                "texture_size",
                "0 (auto) or 64 to 4096",
            ),
            (0 <= self.shape_scale <= 10, "shape_scale", "between 0 and 10"),
        ]
        for ok, name, want in checks:
            check(ok, f"world.{name}", getattr(self, name), want)

    @property
    def n_frames(self) -> int:
        """Frames per clip."""
        from ggtalker_jax.types import FPS  # here, so the CLI's --help does not import JAX

        return int(round(self.seconds * FPS))

    @property
    def texture_side(self) -> int:
        """The UV texture side actually used (resolves ``texture_size=0``)."""
        if self.texture_size:
            return self.texture_size
        return int(np.clip(2 * self.resolution, 128, 1024))
