"""The demo's section: the one-identity, one-clip world ``ggtalker demo`` builds and shows."""

from __future__ import annotations

import dataclasses

from ggtalker_jax.config.base import check
from ggtalker_jax.config.world import MAX_RESOLUTION, MAX_VIEWS


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """The world ``ggtalker demo`` builds and shows: one identity, one clip.

    Attributes:
      seconds: clip length.
      resolution: frame side in pixels (even).
      views: extra cameras (novel views of the same instants), shown beside the main view.
      language: espeak voice of the speaker.
      grid_frames: frames per row of ``demo_grid.png``.
    """

    seconds: float = 3.0
    resolution: int = 256
    views: int = 1
    language: str = "en"
    grid_frames: int = 6

    def __post_init__(self):
        check(0.4 <= self.seconds <= 60, "demo.seconds", self.seconds, "between 0.4 and 60")
        check(
            32 <= self.resolution <= MAX_RESOLUTION and self.resolution % 2 == 0,
            "demo.resolution",
            self.resolution,
            f"an even number from 32 to {MAX_RESOLUTION}",
        )
        check(0 <= self.views <= MAX_VIEWS, "demo.views", self.views, f"between 0 and {MAX_VIEWS}")
        check(bool(self.language.strip()), "demo.language", self.language, "an espeak voice")
        check(1 <= self.grid_frames <= 16, "demo.grid_frames", self.grid_frames, "1 to 16")
