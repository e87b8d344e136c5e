"""What every config section shares: the one-line check of a field."""

from __future__ import annotations

from ggtalker_jax.errors import InputError


def check(ok: bool, field: str, value, want: str) -> None:
    """Refuse a field value with one line naming it (as ``--set`` would spell it).

    Raises:
      InputError: ``config: FIELD=VALUE is invalid; expected WANT``.
    """
    if not ok:
        raise InputError(f"config: {field}={value!r} is invalid; expected {want}")
