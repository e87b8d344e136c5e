"""Pallas backward kernel: back-to-front gradients, one program per tile.

Each pixel starts at the last slot that contributed to it (saved by the forward) with the
final transmittance, and undoes the compositing one Gaussian at a time:

* ``T_before = T_after / (1 - alpha)`` (exact: alpha <= 0.999);
* ``dC/dc_g = alpha T_before``;
* ``dC/dalpha_g = c_g T_before - S / (1 - alpha)`` with ``S`` the colour composited behind
  ``g``; ``dT_final/dalpha_g = -T_final / (1 - alpha)``;
* through ``alpha = o exp(-sigma)`` (zero where alpha was clamped to 0.999) to the opacity,
  the conic and the 2D mean.

Per slot the kernel reduces over the tile's pixels only what does not depend on the
Gaussian's own constants: with ``w = exp(-sigma) dL/dalpha`` (zero where alpha was clamped)
and ``d = mean2d - pixel`` it stores the raw sums :data:`SCALAR_SUMS` (``w``, ``w dx``,
``w dy``, ``w dx^2``, ``w dx dy``, ``w dy^2``) and the colour sums; :func:`combine_sums`
turns them into gradients of the 2D mean, the conic and the opacity after the segment sum
(the conic and opacity are the same for every slot of a Gaussian in one image).

The per-pixel terms of one slot are packed into one tensor (``jnp.stack`` pairs, which
Triton lowers to register joins) so each group costs one block-wide reduction, i.e. one
cross-warp exchange through shared memory, instead of one per term. Every slot belongs to
exactly one tile, so the sums go to the slot's own row with no atomics; XLA then sums the
rows of each Gaussian (one segment sum). Slots no pixel reached keep the zeros of the
aliased output buffers.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from ggtalker_jax.kernels.splat.binning import tile_grid
from ggtalker_jax.kernels.splat.config import KernelConfig, padded_channels
from ggtalker_jax.kernels.splat.forward import (
    compiler_params,
    gaussian_alpha,
    launch_order,
    load_chunk,
    make_exp,
    pixel_centres,
    segment_length,
    slot_loaders,
)
from ggtalker_jax.kernels.splat.reference import MAX_ALPHA

# Columns of the per-slot scalar sums in the [M, 8] output rows (then two zero columns).
SCALAR_SUMS = ("w", "w_dx", "w_dy", "w_dxdx", "w_dxdy", "w_dydy")
N_SCALAR = 8  # padded to a power of two for Triton
# Colour channels per packed reduction: wide features (D = 32) take several groups, which
# bounds the registers and the size of the join tree Triton compiles.
COLOR_GROUP = 4


def color_groups(n_channels: int) -> tuple[int, int]:
    """``(channels per group, groups)`` for the packed colour reductions."""
    n_padded = padded_channels(n_channels)
    group = min(n_padded, COLOR_GROUP)
    return group, n_padded // group


def pack_bits(values):
    """Stack ``2**k`` equally shaped ``[P]`` vectors into ``[P, 2, ..., 2]`` (k axes) whose
    row-major flattening of the trailing axes is the list order (axis ``-1`` holds bit 0 of
    the index). ``jnp.stack`` of two is the one stack Triton lowers (a register join)."""
    if len(values) == 1:
        return values[0]
    if len(values) & (len(values) - 1):
        raise ValueError(f"pack_bits needs a power-of-two count, got {len(values)}")
    return jnp.stack([pack_bits(values[0::2]), pack_bits(values[1::2])], axis=-1)


def bits_shape(n: int) -> tuple[int, ...]:
    """Trailing shape of :func:`pack_bits` for ``n`` values."""
    return (2,) * (n.bit_length() - 1)


def combine_sums(sums, conics, opacities):
    """Gradients of ``(mean2d [G, 2], conic [G, 3], opacity [G])`` from per-Gaussian
    :data:`SCALAR_SUMS` ``[G, >= 6]`` (``sigma = 0.5 a dx^2 + b dx dy + 0.5 c dy^2`` and
    ``dL/dsigma = -o w``)."""
    w, wx, wy, wxx, wxy, wyy = (sums[:, i] for i in range(len(SCALAR_SUMS)))
    a, b, c = conics[:, 0], conics[:, 1], conics[:, 2]
    neg_o = -opacities
    v_mean = neg_o[:, None] * jnp.stack([a * wx + b * wy, b * wx + c * wy], -1)
    v_conic = neg_o[:, None] * jnp.stack([0.5 * wxx, wxy, 0.5 * wyy], -1)
    return v_mean, v_conic, w


def _store_slot(scalar_ref, col_ref, j, scalars, colors):
    """Write slot ``j``'s tile sums (the slot belongs to this tile alone)."""
    scalar_ref[j] = scalars
    if len(colors) == 1:  # the common case (D <= 4): rows of one block
        col_ref[j] = colors[0]
        return
    for g, value in enumerate(colors):
        col_ref[j, g] = value


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
    prefetch,
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
    refs = slot_loaders((mx_ref, my_ref, ca_ref, cb_ref, cc_ref, op_ref), col_ref, n_channels)
    # Slots k - 1, k - 2, ...: the list is walked back to front.
    load = functools.partial(load_chunk, refs, step=-1, chunk=chunk, capacity=capacity)
    top = jnp.minimum(jnp.max(last), seg_end)
    zero = jnp.zeros_like(t_final)
    group, n_groups = color_groups(n_channels)

    def cond(carry):
        return carry[0] > seg_start

    def body(carry):
        k, trans, behind, params = carry
        if prefetch:  # the next chunk's loads fly while this one is processed
            upcoming = load(k - 1 - chunk)
        else:
            params, upcoming = load(k - 1), ()
        behind = list(behind)
        for u in range(chunk):
            idx = k - 1 - u
            j = jnp.clip(idx, 0, capacity - 1)
            alpha, ok, dx, dy, vis = gaussian_alpha(params[u], px, py, exp)
            o = params[u][5]
            ok = ok & (idx < last) & (idx >= seg_start)
            ra = 1.0 / (1.0 - alpha)
            trans = jnp.where(ok, trans * ra, trans)  # T before this Gaussian
            fac = jnp.where(ok, alpha * trans, 0.0)
            v_alpha = -t_final * ra * v_trans
            colors = []
            for ch in range(n_channels):
                color = params[u][6 + ch]
                v_alpha = v_alpha + (color * trans - behind[ch] * ra) * v_col[ch]
                behind[ch] = behind[ch] + fac * color
                colors.append(fac * v_col[ch])
            live = ok & (o * vis <= MAX_ALPHA)  # no gradient where alpha was clamped
            w = jnp.where(live, vis * v_alpha, 0.0)
            w_dx, w_dy = w * dx, w * dy
            terms = [w, w_dx, w_dy, w_dx * dx, w_dx * dy, w_dy * dy, zero, zero]
            scalars = jnp.sum(pack_bits(terms), axis=0)
            colors += [zero] * (group * n_groups - n_channels)
            colors = [
                jnp.sum(pack_bits(colors[g * group : (g + 1) * group]), axis=0)
                for g in range(n_groups)
            ]
            store = functools.partial(_store_slot, g_scalar, g_col, j, scalars, colors)
            pl.when(idx >= seg_start)(store)
        return k - chunk, trans, tuple(behind), upcoming

    # Start from the segment's end: its transmittance, and the colour composited behind it
    # (final accumulation minus the accumulation up to the segment's end).
    trans0 = ck_trans_ref[tile, segment, :]
    behind0 = tuple(
        ck_acc_ref[tile, n_segments - 1, ch, :] - ck_acc_ref[tile, segment, ch, :]
        for ch in range(n_channels)
    )
    first = load(top - 1) if prefetch else ()
    jax.lax.while_loop(cond, body, (top, trans0, behind0, first))


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
      ``(sums [M, 8], colors [M, D])`` slot-ordered tile sums: the columns of ``sums`` are
      :data:`SCALAR_SUMS` then zeros (turned into gradients by :func:`combine_sums`), and
      ``colors`` the colour gradients.
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
        chunk=config.unroll(n_channels),
        capacity=capacity,
        n_channels=n_channels,
        n_segments=n_seg,
        exp=make_exp(config),
        prefetch=config.prefetch,
    )
    group, n_groups = color_groups(n_channels)
    # Rows of 2 x 2 x ... blocks: the packed reductions store one block per slot and group.
    zeros = [
        jnp.zeros((capacity, *bits_shape(N_SCALAR)), jnp.float32),
        jnp.zeros(
            (capacity, *((n_groups,) if n_groups > 1 else ()), *bits_shape(group)), jnp.float32
        ),
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
    color = color.reshape(capacity, group * n_groups)[:, :n_channels]
    return scalar.reshape(capacity, N_SCALAR), color
