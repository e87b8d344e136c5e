"""Configuration: frozen dataclasses, one section per stage, validated at construction,
loaded by name (:func:`load_config`) with ``--set a.b=value`` overrides.

Sections: :class:`WorldConfig` (``world``), :class:`DemoConfig` (``demo``),
:class:`PreviewConfig` (``preview``), :class:`E2VConfig` (``e2v``), :class:`A2EConfig`
(``a2e``), :class:`InpainterConfig` (``inpainter``), :class:`AdaptConfig` (``adapt``), under
:class:`Config`.
"""

from ggtalker_jax.config.a2e import A2EConfig, A2EDataConfig
from ggtalker_jax.config.adapt import AdaptConfig
from ggtalker_jax.config.demo import DemoConfig
from ggtalker_jax.config.e2v import E2VConfig, E2VDataConfig
from ggtalker_jax.config.inpainter import InpainterConfig, InpainterDataConfig
from ggtalker_jax.config.loading import config_names, load_config
from ggtalker_jax.config.preview import PreviewConfig
from ggtalker_jax.config.root import Config
from ggtalker_jax.config.world import (
    MAX_CLIPS,
    MAX_CLIPS_PER_IDENTITY,
    MAX_IDENTITIES,
    MAX_RESOLUTION,
    MAX_SECONDS,
    MAX_SEED,
    MAX_VIEWS,
    WorldConfig,
)

__all__ = [
    "MAX_CLIPS",
    "MAX_CLIPS_PER_IDENTITY",
    "MAX_IDENTITIES",
    "MAX_RESOLUTION",
    "MAX_SECONDS",
    "MAX_SEED",
    "MAX_VIEWS",
    "A2EConfig",
    "A2EDataConfig",
    "AdaptConfig",
    "Config",
    "DemoConfig",
    "E2VConfig",
    "E2VDataConfig",
    "InpainterConfig",
    "InpainterDataConfig",
    "PreviewConfig",
    "WorldConfig",
    "config_names",
    "load_config",
]
