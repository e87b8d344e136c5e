"""Named configs and ``--set`` overrides.

Named configs are the modules of ``ggtalker_jax.configs`` (the repository's ``configs/``
folder), found by listing it: adding ``configs/NAME.py`` with
``get_config(arg: str | None) -> Config`` makes ``--config NAME`` work. :func:`load_config`
picks one and applies ``--set a.b=value`` overrides, converting each value to the field's
type; the sections validate themselves when rebuilt.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import pkgutil
import types
import typing

from ggtalker_jax.config.root import Config
from ggtalker_jax.errors import InputError


def config_names() -> tuple[str, ...]:
    """Names of the configs in ``ggtalker_jax.configs``, sorted."""
    import ggtalker_jax.configs as package

    return tuple(sorted(m.name for m in pkgutil.iter_modules(package.__path__)))


def load_config(
    name: str = "tiny", overrides: list[str] | tuple[str, ...] = (), arg: str | None = None
) -> Config:
    """Load a named config and apply ``key.sub=value`` overrides.

    Raises:
      InputError: unknown config name, unknown key, a section set as a value, or a value of
        the wrong type or out of range.
    """
    names = config_names()
    if name not in names:
        raise InputError(f"unknown config {name!r}; choose one of {', '.join(names)}")
    config = importlib.import_module(f"ggtalker_jax.configs.{name}").get_config(arg)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"--set {item!r}: expected key=value, e.g. preview.cell_size=256")
        config = override(config, key.strip().split("."), value.strip(), key)
    return config


def override(obj, path: list[str], value: str, full_key: str):
    """``obj`` with the field at ``path`` set from the string ``value`` (one ``--set``)."""
    fields = {f.name: f for f in dataclasses.fields(obj)}
    if path[0] not in fields:
        raise InputError(
            f"--set {full_key}: unknown key {path[0]!r}; known: {', '.join(sorted(fields))}"
        )
    current = getattr(obj, path[0])
    if len(path) > 1:
        if not dataclasses.is_dataclass(current):
            raise InputError(f"--set {full_key}: {path[0]!r} has no sub-keys")
        return dataclasses.replace(obj, **{path[0]: override(current, path[1:], value, full_key)})
    if dataclasses.is_dataclass(current):
        sub = ", ".join(f"{full_key}.{f.name}" for f in dataclasses.fields(current))
        raise InputError(
            f"--set {full_key}={value}: {path[0]!r} is a section, not a value; set one of its "
            f"fields: {sub}"
        )
    hint = typing.get_type_hints(type(obj))[path[0]]
    return dataclasses.replace(obj, **{path[0]: parse_value(value, hint, full_key)})


def parse_value(value: str, hint, full_key: str):
    """Convert one ``--set`` string to ``hint`` (bool, int, finite float, str, or a tuple of
    str or int given comma-separated)."""
    if isinstance(hint, types.UnionType):
        hint = next(h for h in typing.get_args(hint) if h is not type(None))
    if typing.get_origin(hint) is tuple and typing.get_args(hint)[0] in (str, int):
        kind = typing.get_args(hint)[0]
        items = tuple(v.strip() for v in value.split(",") if v.strip())
        try:
            return tuple(kind(v) for v in items)
        except ValueError:
            raise InputError(
                f"--set {full_key}={value!r}: expected comma-separated integers, e.g. 16,32,64"
            ) from None
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
