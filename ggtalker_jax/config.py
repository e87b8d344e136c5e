"""Configuration: frozen dataclasses, validated at construction, loaded by name.

Named configs live in ``ggtalker_jax.configs`` (the repository's ``configs/`` folder); each
module has ``get_config(arg: str | None) -> Config``. :func:`load_config` picks one and
applies ``--set a.b=value`` overrides, converting each value to the field's type.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import types
import typing

from ggtalker_jax.errors import InputError

CONFIG_NAMES = ("tiny", "h100")

# Bounds of the synthetic world (``ggtalker world`` and the demo): past them a request takes
# days or cannot fit in memory, and a typo (an extra zero) should be refused at once instead
# of hanging. ``ggtalker world --help`` prints them; the world also checks one clip's memory
# against what is free before it starts.
MAX_IDENTITIES = 100_000
MAX_CLIPS_PER_IDENTITY = 10_000
MAX_CLIPS = 1_000_000
MAX_SECONDS = 600
MAX_RESOLUTION = 2048
MAX_VIEWS = 8
MAX_SEED = 2**32 - 1


@dataclasses.dataclass(frozen=True)
class PreviewConfig:
    """The FLAME preview grid.

    Attributes:
      cell_size: pixels per grid cell (square).
      expression_strength: coefficient applied to each shown expression component.
    """

    cell_size: int = 192
    expression_strength: float = 2.0

    def __post_init__(self):
        _check(32 <= self.cell_size <= 1024, "preview.cell_size", self.cell_size, "32 to 1024")
        _check(
            self.expression_strength > 0,
            "preview.expression_strength",
            self.expression_strength,
            "> 0",
        )


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
        _check(0.4 <= self.seconds <= 60, "demo.seconds", self.seconds, "between 0.4 and 60")
        _check(
            32 <= self.resolution <= MAX_RESOLUTION and self.resolution % 2 == 0,
            "demo.resolution",
            self.resolution,
            f"an even number from 32 to {MAX_RESOLUTION}",
        )
        _check(0 <= self.views <= MAX_VIEWS, "demo.views", self.views, f"between 0 and {MAX_VIEWS}")
        _check(bool(self.language.strip()), "demo.language", self.language, "an espeak voice")
        _check(1 <= self.grid_frames <= 16, "demo.grid_frames", self.grid_frames, "1 to 16")


@dataclasses.dataclass(frozen=True)
class Config:
    """Top-level configuration.

    Attributes:
      name: the named config it came from.
      seed: global seed.
      flame_model: FLAME ``.pkl``/``.npz`` path, or "" for the shipped procedural head.
      preview: :class:`PreviewConfig`.
      demo: :class:`DemoConfig`.
    """

    name: str = "tiny"
    seed: int = 0
    flame_model: str = ""
    preview: PreviewConfig = dataclasses.field(default_factory=PreviewConfig)
    demo: DemoConfig = dataclasses.field(default_factory=DemoConfig)

    def __post_init__(self):
        _check(0 <= self.seed <= MAX_SEED, "seed", self.seed, f"an integer from 0 to {MAX_SEED}")

    def to_json(self) -> str:
        """The resolved config as JSON (written next to outputs and checkpoints)."""
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)


def _check(ok: bool, field: str, value, want: str) -> None:
    if not ok:
        raise InputError(f"config: {field}={value!r} is invalid; expected {want}")


def load_config(
    name: str = "tiny", overrides: list[str] | tuple[str, ...] = (), arg: str | None = None
) -> Config:
    """Load a named config and apply ``key.sub=value`` overrides.

    Raises:
      InputError: unknown config name, unknown key, or a value of the wrong type.
    """
    if name not in CONFIG_NAMES:
        raise InputError(f"unknown config {name!r}; choose one of {', '.join(CONFIG_NAMES)}")
    config = importlib.import_module(f"ggtalker_jax.configs.{name}").get_config(arg)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"--set {item!r}: expected key=value, e.g. preview.cell_size=256")
        config = _override(config, key.strip().split("."), value.strip(), key)
    return config


def _override(obj, path: list[str], value: str, full_key: str):
    fields = {f.name: f for f in dataclasses.fields(obj)}
    if path[0] not in fields:
        raise InputError(
            f"--set {full_key}: unknown key {path[0]!r}; known: " f"{', '.join(sorted(fields))}"
        )
    current = getattr(obj, path[0])
    if len(path) > 1:
        if not dataclasses.is_dataclass(current):
            raise InputError(f"--set {full_key}: {path[0]!r} has no sub-keys")
        return dataclasses.replace(obj, **{path[0]: _override(current, path[1:], value, full_key)})
    if dataclasses.is_dataclass(current):
        sub = ", ".join(f"{full_key}.{f.name}" for f in dataclasses.fields(current))
        raise InputError(
            f"--set {full_key}={value}: {path[0]!r} is a section, not a value; set one of its "
            f"fields: {sub}"
        )
    hint = typing.get_type_hints(type(obj))[path[0]]
    return dataclasses.replace(obj, **{path[0]: _parse(value, hint, full_key)})


def _parse(value: str, hint, full_key: str):
    if isinstance(hint, types.UnionType):
        hint = next(h for h in typing.get_args(hint) if h is not type(None))
    try:
        if hint is bool:
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(value)
            return value.lower() in ("true", "1")
        if hint is float and not math.isfinite(float(value)):
            raise ValueError(value)
        if hint in (int, float, str):
            return hint(value)
    except (ValueError, TypeError):
        name = {int: "integer", float: "finite number"}.get(hint, getattr(hint, "__name__", hint))
        raise InputError(f"--set {full_key}={value!r}: not a valid {name}") from None
    raise InputError(f"--set {full_key}: fields of type {hint} cannot be set from the command line")
