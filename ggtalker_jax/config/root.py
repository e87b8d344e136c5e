"""The top of the config tree: one section per stage."""

from __future__ import annotations

import dataclasses
import json

from ggtalker_jax.config.a2e import A2EConfig
from ggtalker_jax.config.adapt import AdaptConfig
from ggtalker_jax.config.base import check
from ggtalker_jax.config.demo import DemoConfig
from ggtalker_jax.config.e2v import E2VConfig
from ggtalker_jax.config.inpainter import InpainterConfig
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
      inpainter: :class:`InpainterConfig` (the Body Inpainter and its prior).
      adapt: :class:`AdaptConfig` (customized adaptation to one identity).
    """

    name: str = "tiny"
    seed: int = 0
    flame_model: str = ""
    preview: PreviewConfig = dataclasses.field(default_factory=PreviewConfig)
    demo: DemoConfig = dataclasses.field(default_factory=DemoConfig)
    world: WorldConfig = dataclasses.field(default_factory=WorldConfig)
    e2v: E2VConfig = dataclasses.field(default_factory=E2VConfig)
    a2e: A2EConfig = dataclasses.field(default_factory=A2EConfig)
    inpainter: InpainterConfig = dataclasses.field(default_factory=InpainterConfig)
    adapt: AdaptConfig = dataclasses.field(default_factory=AdaptConfig)

    def __post_init__(self):
        check(0 <= self.seed <= MAX_SEED, "seed", self.seed, f"an integer from 0 to {MAX_SEED}")

    def to_json(self) -> str:
        """The resolved config as JSON (written next to outputs and checkpoints)."""
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)


def config_from_dict(values: dict) -> Config:
    """Rebuild a :class:`Config` from ``dataclasses.asdict`` output (a ``config.json``, an
    identity's record), every section validated again.

    Raises:
      InputError: not an object, or an unknown or invalid field (one line naming the first).
    """
    from ggtalker_jax.config.a2e import A2EDataConfig
    from ggtalker_jax.config.base import section_from_dict
    from ggtalker_jax.config.e2v import E2VDataConfig
    from ggtalker_jax.config.inpainter import InpainterDataConfig
    from ggtalker_jax.errors import InputError

    if not isinstance(values, dict):
        raise InputError(f"config: expected a JSON object, got {type(values).__name__}")
    sections = {
        "preview": (PreviewConfig, {}),
        "demo": (DemoConfig, {}),
        "world": (WorldConfig, {}),
        "e2v": (E2VConfig, {"data": E2VDataConfig}),
        "a2e": (A2EConfig, {"data": A2EDataConfig}),
        "inpainter": (InpainterConfig, {"data": InpainterDataConfig}),
        "adapt": (AdaptConfig, {}),
    }
    kwargs = dict(values)
    for name, (cls, nested) in sections.items():
        if name in kwargs:
            kwargs[name] = section_from_dict(cls, kwargs[name], name, nested)
    fields = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(kwargs) - fields)
    if unknown:
        raise InputError(
            f"config: unknown field {unknown[0]!r}; it was written by another version of ggtalker"
        )
    return Config(**kwargs)
