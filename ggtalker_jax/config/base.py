"""What every config section shares: the one-line check of a field, the training fields'
checks, and rebuilding a section from its JSON."""

from __future__ import annotations

import dataclasses

from ggtalker_jax.errors import InputError


def check(ok: bool, field: str, value, want: str) -> None:
    """Refuse a field value with one line naming it (as ``--set`` would spell it).

    Raises:
      InputError: ``config: FIELD=VALUE is invalid; expected WANT``.
    """
    if not ok:
        raise InputError(f"config: {field}={value!r} is invalid; expected {want}")


def training_checks(section) -> list[tuple[bool, str, str]]:
    """``(ok, field, expected)`` for the training fields every prior's section has: batch
    size, steps, the AdamW schedule, the intervals and the activation dtype."""
    s = section
    return [
        (1 <= s.batch_size <= 65536, "batch_size", "1 to 65536"),
        (1 <= s.steps <= 10_000_000, "steps", "1 to 10000000"),
        (0 < s.learning_rate <= 1, "learning_rate", "above 0, at most 1"),
        (0 <= s.warmup_steps, "warmup_steps", "0 or more"),
        (0 <= s.weight_decay <= 1, "weight_decay", "0 to 1"),
        (0 < s.grad_clip, "grad_clip", "above 0"),
        (1 <= s.log_every, "log_every", "1 or more"),
        (1 <= s.checkpoint_every, "checkpoint_every", "1 or more"),
        (1 <= s.keep_checkpoints <= 1000, "keep_checkpoints", "1 to 1000"),
        (0 <= s.eval_every, "eval_every", "0 or more"),
        (s.compute_dtype in ("float32", "bfloat16"), "compute_dtype", "float32 or bfloat16"),
    ]


def section_from_dict(cls, values: dict, where: str, nested: dict):
    """Rebuild the config dataclass ``cls`` from ``dataclasses.asdict`` output, lists back to
    tuples, the sub-sections named in ``nested`` (``{field: dataclass}``) rebuilt in turn, and
    everything validated again.

    Raises:
      InputError: not an object, or an unknown or invalid field (one line naming the first).
    """
    if not isinstance(values, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(values).__name__}")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise InputError(
            f"{where}: unknown field {unknown[0]!r}; it was written by another version of "
            "ggtalker"
        )
    kwargs = {}
    for name, value in values.items():
        if name in nested:
            value = section_from_dict(nested[name], value, f"{where}.{name}", {})
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)
