"""Pallas backward kernel: back-to-front gradients, one program per tile.

Each pixel starts at the last slot that contributed to it (saved by the forward) with the
final transmittance, and undoes the compositing one Gaussian at a time:

* ``T_before = T_after / (1 - alpha)`` (exact: alpha <= 0.999);
* ``dC/dc_g = alpha T_before``;
* ``dC/dalpha_g = c_g T_before - S / (1 - alpha)`` with ``S`` the colour composited behind
  ``g``; ``dT_final/dalpha_g = -T_final / (1 - alpha)``;
* through ``alpha = o exp(-sigma)`` (zero where alpha was clamped to 0.999) to the opacity,
  the conic and the 2D mean.

The six per-pixel scalar terms are placed in the columns of one ``[P, 8]`` block (one-hot
rows) so a single block reduction sums them over the tile, and the colour terms in a second;
both are written to the slot's own row: every slot belongs to exactly one tile, so there
are no atomics; XLA then sums the rows of each Gaussian (one segment sum). Slots no pixel
reached keep the zeros of the aliased output buffers.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from ggtalker_jax.kernels.splat.binning import tile_grid
from ggtalker_jax.kernels.splat.config import KernelConfig
from ggtalker_jax.kernels.splat.forward import (
    compiler_params,
    gaussian_alpha,
    launch_order,
    make_exp,
    pixel_centres,
    segment_length,
)
from ggtalker_jax.kernels.splat.reference import MAX_ALPHA

# Columns of the per-Gaussian scalar gradients in the [M, 8] output rows.
SCALAR_COLUMNS = ("mean2d_x", "mean2d_y", "conic_a", "conic_b", "conic_c", "opacity")
N_SCALAR = 8  # padded to a power of two for Triton


def _store_slot(scalar_ref, col_ref, j, scalars, colors):
    """Write slot ``j``'s tile-summed gradients (the slot belongs to this tile alone)."""
    for column, value in enumerate(scalars):
        scalar_ref[j, column] = value
    for ch, value in enumerate(colors):
        col_ref[ch, j] = value


def _backward_kernel(
    order_ref,
    start_ref,
    end_ref,
    mx_ref,
    my_ref,
    ca_ref,
    cb_ref,
    cc_ref,
    op_ref,
    col_ref,
    trans_ref,
    last_ref,
    vcol_ref,
    vtrans_ref,
    ck_trans_ref,
    ck_acc_ref,
    _zero_scalar,
    _zero_col,
    g_scalar,
    g_col,
    *,
    tiles_x,
    n_tiles,
    tile_size,
    chunk,
    capacity,
    n_channels,
    n_segments,
    exp,
):
    program = pl.program_id(0)
    tile = order_ref[program // n_segments]
    segment = program % n_segments
    start, end = start_ref[tile], end_ref[tile]
    seg = segment_length(start, end, n_segments, chunk)
    seg_start = start + segment * seg
    seg_end = jnp.minimum(seg_start + seg, end)
    px, py = pixel_centres(tile, tiles_x, n_tiles, tile_size)
    last = last_ref[tile, :]
    t_final = trans_ref[tile, :]
    v_col = [vcol_ref[tile, ch, :] for ch in range(n_channels)]  # D x [P]
    v_trans = vtrans_ref[tile, :]
    gauss_refs = (mx_ref, my_ref, ca_ref, cb_ref, cc_ref, op_ref)
    top = jnp.minimum(jnp.max(last), seg_end)

    def cond(carry):
        return carry[0] > seg_start

    def body(carry):
        k, trans, behind = carry
        behind = list(behind)
        for u in range(chunk):
            idx = k - 1 - u
            j = jnp.clip(idx, 0, capacity - 1)
            alpha, ok, dx, dy, sigma, (a, b, c, o) = gaussian_alpha(gauss_refs, j, px, py, exp)
            ok = ok & (idx < last) & (idx >= seg_start)
            ra = 1.0 / (1.0 - alpha)
            trans = jnp.where(ok, trans * ra, trans)  # T before this Gaussian
            fac = jnp.where(ok, alpha * trans, 0.0)
            v_alpha = -t_final * ra * v_trans
            colors = []
            for ch in range(n_channels):
                color = col_ref[ch, j]
                v_alpha = v_alpha + (color * trans - behind[ch] * ra) * v_col[ch]
                behind[ch] = behind[ch] + fac * color
                colors.append(jnp.sum(fac * v_col[ch]))
            vis = exp(-sigma)
            live = ok & (o * vis <= MAX_ALPHA)  # no gradient where alpha was clamped
            v_sigma = jnp.where(live, -o * vis * v_alpha, 0.0)
            scalars = (
                jnp.sum(v_sigma * (a * dx + b * dy)),
                jnp.sum(v_sigma * (b * dx + c * dy)),
                jnp.sum(0.5 * v_sigma * dx * dx),
                jnp.sum(v_sigma * dx * dy),
                jnp.sum(0.5 * v_sigma * dy * dy),
                jnp.sum(jnp.where(live, vis * v_alpha, 0.0)),
            )
            store = functools.partial(_store_slot, g_scalar, g_col, j, scalars, colors)
            pl.when(idx >= seg_start)(store)
        return k - chunk, trans, tuple(behind)

    # Start from the segment's end: its transmittance, and the colour composited behind it
    # (final accumulation minus the accumulation up to the segment's end).
    trans0 = ck_trans_ref[tile, segment, :]
    behind0 = tuple(
        ck_acc_ref[tile, n_segments - 1, ch, :] - ck_acc_ref[tile, segment, ch, :]
        for ch in range(n_channels)
    )
    jax.lax.while_loop(cond, body, (top, trans0, behind0))


def backward_tiles(
    ranges,
    gathered,
    trans,
    last,
    checkpoints,
    v_color,
    v_trans,
    n_images: int,
    width: int,
    height: int,
    config: KernelConfig,
):
    """Per-slot gradients of the forward kernel's outputs.

    Args:
      ranges, gathered: as for :func:`forward.forward_tiles`.
      trans, last: the forward's ``[R, P]`` outputs.
      checkpoints: the forward's ``(ck_trans, ck_acc)``.
      v_color: ``[R, Dp, P]`` and v_trans: ``[R, P]`` cotangents.

    Returns:
      ``(scalar [M, 8], colors [D, M])`` slot-ordered gradients; the columns of ``scalar``
      are :data:`SCALAR_COLUMNS`, then zeros.
    """
    ts = config.tile_size
    tiles_x, tiles_y = tile_grid(width, height, ts)
    r = n_images * tiles_x * tiles_y
    n_channels, capacity = gathered["colors"].shape
    n_seg = checkpoints[0].shape[1]
    kernel = functools.partial(
        _backward_kernel,
        tiles_x=tiles_x,
        n_tiles=tiles_x * tiles_y,
        tile_size=ts,
        chunk=config.chunk,
        capacity=capacity,
        n_channels=n_channels,
        n_segments=n_seg,
        exp=make_exp(config),
    )
    zeros = [
        jnp.zeros((capacity, N_SCALAR), jnp.float32),
        jnp.zeros((n_channels, capacity), jnp.float32),
    ]
    whole = pl.no_block_spec  # whole arrays, indexed by tile and slot inside the kernel
    # order, start, end, 6 Gaussian fields, colours, trans, last, v_color, v_trans, 2 checkpoints
    n_inputs = 16
    first_alias = n_inputs
    scalar, color = pl.pallas_call(
        kernel,
        grid=(r * n_seg,),
        in_specs=[whole] * (n_inputs + len(zeros)),
        out_specs=[whole] * len(zeros),
        out_shape=[jax.ShapeDtypeStruct(z.shape, z.dtype) for z in zeros],
        # Slots no pixel reached are never written: they keep these zeros.
        input_output_aliases={first_alias + i: i for i in range(len(zeros))},
        interpret=config.interpret,
        compiler_params=compiler_params(config, config.backward_num_warps),
        name="splat_backward",
    )(
        launch_order(ranges, config),
        ranges[:, 0],
        ranges[:, 1],
        gathered["mx"],
        gathered["my"],
        gathered["ca"],
        gathered["cb"],
        gathered["cc"],
        gathered["op"],
        gathered["colors"],
        trans,
        last,
        v_color,
        v_trans,
        *checkpoints,
        *zeros,
    )
    return scalar, color
