"""The demo's section: the held-out person ``ggtalker demo`` adapts and makes speak."""

from __future__ import annotations

import dataclasses

from ggtalker_jax.config.base import check
from ggtalker_jax.config.world import MAX_RESOLUTION

MAX_DEMO_SECONDS = 120
MAX_DEMO_VIEWS = 4
SIDE_STEP = 16
"""The frame side must be a multiple of this: the Body Inpainter halves it four times."""


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """What ``ggtalker demo`` makes: one synthetic person of world ``Config.seed`` (a seed no
    shipped prior trained on), adapted from the shipped priors on one clip, then driven by
    two sentences it never saw.

    The time budget: the world is made first, then adaptation gets what is left of
    ``minutes`` after keeping ``reserve_minutes`` back for what its steps do not count
    (compiles, its held-out scores, writing the identity) and for the speaking, scoring and
    writing after it.

    Attributes:
      adapt_seconds: length of the adaptation clip (English, main camera only).
      heldout_seconds: length of each held-out sentence.
      resolution: frame side in pixels (a multiple of 16).
      views: extra cameras of the held-out sentence (novel-view ground truth; 0: the novel
        camera is the main one orbited by 30 degrees, without ground truth).
      language: espeak voice of the adaptation clip and the held-out sentence.
      other_language: espeak voice of the second held-out sentence (cross-language; the
        demo refuses ``language`` itself).
      minutes: the whole demo's time budget.
      reserve_minutes: the part of ``minutes`` adaptation's steps never get (above); when
        the world leaves less than that, adaptation still gets a quarter of a minute.
      grid_frames: instants of each sentence in ``demo_grid.png``.
    """

    adapt_seconds: float = 20.0
    heldout_seconds: float = 4.0
    resolution: int = 128
    views: int = 1
    language: str = "en"
    other_language: str = "de"
    minutes: float = 6.0
    reserve_minutes: float = 2.5
    grid_frames: int = 4

    def __post_init__(self):
        check(
            2.0 <= self.adapt_seconds <= MAX_DEMO_SECONDS,
            "demo.adapt_seconds",
            self.adapt_seconds,
            f"between 2 and {MAX_DEMO_SECONDS}",
        )
        check(
            0.8 <= self.heldout_seconds <= MAX_DEMO_SECONDS,
            "demo.heldout_seconds",
            self.heldout_seconds,
            f"between 0.8 and {MAX_DEMO_SECONDS}",
        )
        check(
            64 <= self.resolution <= MAX_RESOLUTION and self.resolution % SIDE_STEP == 0,
            "demo.resolution",
            self.resolution,
            f"a multiple of {SIDE_STEP} from 64 to {MAX_RESOLUTION}",
        )
        check(
            0 <= self.views <= MAX_DEMO_VIEWS,
            "demo.views",
            self.views,
            f"between 0 and {MAX_DEMO_VIEWS}",
        )
        for name in ("language", "other_language"):
            value = getattr(self, name)
            check(bool(value.strip()), f"demo.{name}", value, "an espeak voice (e.g. en, de)")
        check(0 < self.minutes <= 24 * 60, "demo.minutes", self.minutes, "above 0, at most 1440")
        check(
            0 <= self.reserve_minutes <= 24 * 60,
            "demo.reserve_minutes",
            self.reserve_minutes,
            "0 to 1440",
        )
        check(1 <= self.grid_frames <= 8, "demo.grid_frames", self.grid_frames, "1 to 8")
