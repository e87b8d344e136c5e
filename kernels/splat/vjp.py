"""The differentiable tile compositor: forward and backward kernels joined by ``custom_vjp``.

Inputs are per-Gaussian (flat over images); the slot gather and the segment sum that maps
slot gradients back to Gaussians happen here in XLA, so the kernels only see slot order.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from ggtalker_jax.kernels.splat.backward import SCALAR_SUMS, backward_tiles, combine_sums
from ggtalker_jax.kernels.splat.config import KernelConfig
from ggtalker_jax.kernels.splat.forward import forward_tiles


def _gather(means2d, conics, opacities, colors, gaussian):
    g = jnp.minimum(gaussian, means2d.shape[0] - 1)  # unused slots hold I * N
    return {
        "mx": means2d[g, 0],
        "my": means2d[g, 1],
        "ca": conics[g, 0],
        "cb": conics[g, 1],
        "cc": conics[g, 2],
        "op": opacities[g],
        "colors": colors[g].T,  # channel-major [D, M]: the kernels read scalars
    }


@functools.partial(jax.custom_vjp, nondiff_argnums=(6, 7, 8, 9))
def composite_tiles(
    means2d, conics, opacities, colors, gaussian, ranges, n_images, width, height, config
):
    """Composite sorted tile lists.

    Args:
      means2d: ``[G, 2]``, conics: ``[G, 3]``, opacities: ``[G]``, colors: ``[G, D]`` for
        ``G = images * N`` Gaussians (flat).
      gaussian: ``[M]`` int32 Gaussian per sorted slot.  ranges: ``[R, 2]`` per tile.
      n_images, width, height, config: static.

    Returns:
      ``(color [R, Dp, P], trans [R, P])``: channel-major per tile, ``Dp`` the next power
      of two of ``D`` (extra channels zero).
    """
    out, _ = _fwd(
        means2d, conics, opacities, colors, gaussian, ranges, n_images, width, height, config
    )
    return out


def _fwd(means2d, conics, opacities, colors, gaussian, ranges, n_images, width, height, config):
    gathered = _gather(means2d, conics, opacities, colors, gaussian)
    color, trans, last, *checkpoints = forward_tiles(
        ranges, gathered, n_images, width, height, config
    )
    residuals = (gathered, gaussian, ranges, trans, last, tuple(checkpoints), conics, opacities)
    return (color, trans), residuals


def _bwd(n_images, width, height, config, residuals, cotangents):
    gathered, gaussian, ranges, trans, last, checkpoints, conics, opacities = residuals
    v_color, v_trans = cotangents
    scalar, color = backward_tiles(
        ranges,
        gathered,
        trans,
        last,
        checkpoints,
        v_color,
        v_trans,
        n_images,
        width,
        height,
        config,
    )
    # One segment sum over [M, 6 + D] rows; sentinel slots (index G) are dropped.
    n_sums = len(SCALAR_SUMS)
    rows = jax.ops.segment_sum(
        jnp.concatenate([scalar[:, :n_sums], color], -1),
        gaussian,
        num_segments=opacities.shape[0],
    )
    v_mean, v_conic, v_opacity = combine_sums(rows[:, :n_sums], conics, opacities)
    return (v_mean, v_conic, v_opacity, rows[:, n_sums:], None, None)


composite_tiles.defvjp(_fwd, _bwd)
__all__ = ["KernelConfig", "composite_tiles"]
