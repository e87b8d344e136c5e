"""Variable types that tell prior parameters from identity-specific ones.

The priors train every :class:`flax.nnx.Param`; adaptation fine-tunes one person's
parameters, which carry their own type so an optimizer or a loop selects them by filter
(:data:`PRIOR`, :data:`IDENTITY`) instead of by name.
"""

from __future__ import annotations

from flax import nnx


class IdentityParam(nnx.Param):
    """A parameter that belongs to one identity (e.g. the color MLP's per-texel features)."""


PRIOR = nnx.All(nnx.Param, nnx.Not(IdentityParam))
"""Filter: the parameters shared across identities (what a prior trains)."""

IDENTITY = IdentityParam
"""Filter: the identity-specific parameters (what adaptation starts from scratch)."""
