"""The differentiable tile compositor: forward and backward kernels joined by ``custom_vjp``.

Inputs are per-Gaussian (flat over images); the slot gather and the segment sum that maps
slot gradients back to Gaussians happen here in XLA, so the kernels only see slot order.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from ggtalker_jax.kernels.splat.backward import GRAD_FIELDS, backward_tiles
from ggtalker_jax.kernels.splat.config import KernelConfig
from ggtalker_jax.kernels.splat.forward import forward_tiles


def _gather(means2d, conics, opacities, colors, gaussian):
    return {
        "mx": means2d[gaussian, 0],
        "my": means2d[gaussian, 1],
        "ca": conics[gaussian, 0],
        "cb": conics[gaussian, 1],
        "cc": conics[gaussian, 2],
        "op": opacities[gaussian],
        "colors": colors[gaussian],
    }


@functools.partial(jax.custom_vjp, nondiff_argnums=(6, 7, 8, 9))
def composite_tiles(
    means2d, conics, opacities, colors, gaussian, ranges, n_images, width, height, config
):
    """Composite sorted tile lists.

    Args:
      means2d: ``[G, 2]``, conics: ``[G, 3]``, opacities: ``[G]``, colors: ``[G, Dp]`` for
        ``G = images * N`` Gaussians (flat).
      gaussian: ``[M]`` int32 Gaussian per sorted slot.  ranges: ``[R, 2]`` per tile.
      n_images, width, height, config: static.

    Returns:
      ``(color [R, P, Dp], trans [R, P])``.
    """
    out, _ = _fwd(
        means2d, conics, opacities, colors, gaussian, ranges, n_images, width, height, config
    )
    return out


def _fwd(means2d, conics, opacities, colors, gaussian, ranges, n_images, width, height, config):
    gathered = _gather(means2d, conics, opacities, colors, gaussian)
    color, trans, last = forward_tiles(ranges, gathered, n_images, width, height, config)
    return (color, trans), (gathered, gaussian, ranges, trans, last, means2d.shape[0])


def _bwd(n_images, width, height, config, residuals, cotangents):
    gathered, gaussian, ranges, trans, last, n_gauss = residuals
    v_color, v_trans = cotangents
    slot = backward_tiles(
        ranges, gathered, trans, last, v_color, v_trans, n_images, width, height, config
    )
    seg = lambda x: jax.ops.segment_sum(x, gaussian, num_segments=n_gauss)
    v_means2d = jnp.stack([seg(slot["mx"]), seg(slot["my"])], -1)
    v_conics = jnp.stack([seg(slot["ca"]), seg(slot["cb"]), seg(slot["cc"])], -1)
    return (v_means2d, v_conics, seg(slot["op"]), seg(slot["colors"]), None, None)


composite_tiles.defvjp(_fwd, _bwd)
__all__ = ["GRAD_FIELDS", "KernelConfig", "composite_tiles"]
