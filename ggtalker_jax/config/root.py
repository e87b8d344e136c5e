"""The top of the config tree: one section per stage."""

from __future__ import annotations

import dataclasses
import json

from ggtalker_jax.config.a2e import A2EConfig
from ggtalker_jax.config.base import check
from ggtalker_jax.config.demo import DemoConfig
from ggtalker_jax.config.e2v import E2VConfig
from ggtalker_jax.config.preview import PreviewConfig
from ggtalker_jax.config.world import MAX_SEED, WorldConfig


@dataclasses.dataclass(frozen=True)
class Config:
    """Top-level configuration.

    Attributes:
      name: the named config it came from.
      seed: global seed (the demo's world seed).
      flame_model: FLAME ``.pkl``/``.npz`` path, or "" for the shipped procedural head.
      preview: :class:`PreviewConfig`.
      demo: :class:`DemoConfig`.
      world: :class:`WorldConfig` (what ``ggtalker world`` generates).
      e2v: :class:`E2VConfig` (the Gaussian head and its Expression-Visual prior).
      a2e: :class:`A2EConfig` (the Audio-Expression prior).
    """

    name: str = "tiny"
    seed: int = 0
    flame_model: str = ""
    preview: PreviewConfig = dataclasses.field(default_factory=PreviewConfig)
    demo: DemoConfig = dataclasses.field(default_factory=DemoConfig)
    world: WorldConfig = dataclasses.field(default_factory=WorldConfig)
    e2v: E2VConfig = dataclasses.field(default_factory=E2VConfig)
    a2e: A2EConfig = dataclasses.field(default_factory=A2EConfig)

    def __post_init__(self):
        check(0 <= self.seed <= MAX_SEED, "seed", self.seed, f"an integer from 0 to {MAX_SEED}")

    def to_json(self) -> str:
        """The resolved config as JSON (written next to outputs and checkpoints)."""
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)
