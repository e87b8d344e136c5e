"""Tile-based Gaussian splatting: a gsplat-compatible API over JAX backends.

Stages, each importable and tested on its own: :mod:`projection` (EWA, gsplat 1.5 numerics),
:mod:`binning` (fixed-capacity tile intersections, one 32-bit sort), :mod:`reference` (dense
pure-jnp oracle), :mod:`forward` and :mod:`backward` (Pallas kernels), :mod:`vjp` (their
``custom_vjp``), :mod:`checks` (argument checks), :mod:`api` (``rasterization``).
Imports nothing from the talking-head stack.
"""

from ggtalker_jax.kernels.splat.api import rasterization, resolve_backend
from ggtalker_jax.kernels.splat.checks import RENDER_MODES, SplatInputError
from ggtalker_jax.kernels.splat.config import KernelConfig

__all__ = ["RENDER_MODES", "KernelConfig", "SplatInputError", "rasterization", "resolve_backend"]
