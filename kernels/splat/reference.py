"""The oracle: dense per-pixel alpha compositing in pure ``jnp`` (also the CPU path).

Every pixel looks at every projected Gaussian of its image, sorted by depth, with exactly
the kernel's rules (gsplat 1.5): ``sigma = 0.5 (a dx^2 + c dy^2) + b dx dy`` with
``d = mean2d - (pixel + 0.5)``; skip ``sigma < 0``; ``alpha = min(0.999, o exp(-sigma))``;
skip ``alpha < 1/255``; stop before the Gaussian that would bring transmittance to
``<= 1e-4``. Tiles are not needed: with ``o <= 1`` the opacity-aware box of the projection
contains every pixel where ``alpha >= 1/255``, so dense and tiled compositing agree.

Differentiable by JAX autodiff; memory is ``pixels_per_chunk x N`` per image.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ggtalker_jax.kernels.splat.projection import ALPHA_THRESHOLD

T_STOP = 1e-4
MAX_ALPHA = 0.999


def composite_image_reference(
    means2d,
    conics,
    opacities,
    colors,
    depths,
    radii,
    width: int,
    height: int,
    pixels_per_chunk: int = 4096,
):
    """Composite one image.

    Args:
      means2d: ``[N, 2]``.  conics: ``[N, 3]``.  opacities: ``[N]``.  colors: ``[N, D]``.
      depths: ``[N]`` (sort key).  radii: ``[N, 2]`` (0 = culled).

    Returns:
      ``(color [H, W, D], transmittance [H, W])``: the accumulated colour without
      background, and the final transmittance ``T`` (alpha = 1 - T).
    """
    visible = jnp.any(radii > 0, axis=-1)
    order = jnp.argsort(jnp.where(visible, depths, jnp.inf), stable=True)
    mx, my = means2d[order, 0], means2d[order, 1]
    ca, cb, cc = conics[order, 0], conics[order, 1], conics[order, 2]
    op = jnp.where(visible[order], opacities[order], 0.0)
    col = colors[order]
    n_pix = width * height
    chunk = min(pixels_per_chunk, n_pix)
    n_chunks = -(-n_pix // chunk)
    idx = jnp.arange(n_chunks * chunk).reshape(n_chunks, chunk)

    def one_chunk(pix):
        px = (pix % width).astype(mx.dtype) + 0.5
        py = (pix // width).astype(mx.dtype) + 0.5
        dx = mx[None, :] - px[:, None]
        dy = my[None, :] - py[:, None]
        sigma = 0.5 * (ca[None, :] * dx * dx + cc[None, :] * dy * dy) + cb[None, :] * dx * dy
        alpha = jnp.minimum(MAX_ALPHA, op[None, :] * jnp.exp(-sigma))
        alpha = jnp.where((sigma >= 0) & (alpha >= ALPHA_THRESHOLD), alpha, 0.0)
        after = jnp.cumprod(1.0 - alpha, axis=-1)  # T after each Gaussian
        # Stopped at or before g: the first Gaussian that would end with T <= 1e-4 and
        # everything behind it are left out.
        stop = jnp.cumsum((after <= T_STOP).astype(jnp.int32), axis=-1) > 0
        keep = jnp.where(stop, 0.0, alpha)
        after_kept = jnp.cumprod(1.0 - keep, axis=-1)
        before = jnp.concatenate([jnp.ones_like(after_kept[:, :1]), after_kept[:, :-1]], -1)
        weight = keep * before
        # HIGHEST: on GPUs a float32 matmul defaults to TF32, far too coarse for an oracle.
        color = jnp.matmul(weight, col, precision=jax.lax.Precision.HIGHEST)
        return color, after_kept[:, -1]

    color, trans = jax.lax.map(one_chunk, idx)
    color = color.reshape(-1, col.shape[-1])[:n_pix].reshape(height, width, -1)
    trans = trans.reshape(-1)[:n_pix].reshape(height, width)
    return color, trans


def composite_reference(proj: dict, colors, width: int, height: int):
    """:func:`composite_image_reference` over images: ``proj`` fields ``[I, N, ...]``,
    ``colors [I, N, D]`` -> ``(color [I, H, W, D], transmittance [I, H, W])``."""
    fn = lambda m, c, o, col, d, r: composite_image_reference(m, c, o, col, d, r, width, height)
    return jax.vmap(fn)(
        proj["means2d"], proj["conics"], proj["opacities"], colors, proj["depths"], proj["radii"]
    )
