"""Pallas forward kernel: front-to-back alpha compositing, one program per tile.

Each program owns one ``tile_size x tile_size`` pixel block of one image and walks that
tile's depth-sorted intersection list in chunks of ``chunk`` Gaussians (unrolled; one
block-wide "all pixels done" test per chunk, which the prototype found fastest). Per-Gaussian
values are pre-gathered into slot order (structure of arrays), so the kernel reads scalars.

Outputs per tile: the colour accumulated without background ``[P, Dp]``, the final
transmittance ``[P]`` and, per pixel, one past the last slot that contributed ``[P]`` (the
backward pass starts there).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

# Importing the fuser registers a config flag that is part of JAX's tracing context. Pallas
# imports it lazily at the first pallas_call, which changes the context and would make the
# second call of every jitted renderer recompile; import it up front instead.
from jax.experimental.pallas import fuser as _fuser  # noqa: F401

from ggtalker_jax.kernels.splat.binning import tile_grid
from ggtalker_jax.kernels.splat.config import KernelConfig, padded_channels
from ggtalker_jax.kernels.splat.projection import ALPHA_THRESHOLD
from ggtalker_jax.kernels.splat.reference import MAX_ALPHA, T_STOP


def pixel_centres(tile, tiles_x: int, n_tiles: int, tile_size: int):
    """Pixel centres ``(px [P], py [P])`` of program ``tile`` (image-major tile order)."""
    t = tile % n_tiles
    ty, tx = t // tiles_x, t % tiles_x
    lane = jax.lax.broadcasted_iota(jnp.int32, (tile_size * tile_size,), 0)
    px = (tx * tile_size + lane % tile_size).astype(jnp.float32) + 0.5
    py = (ty * tile_size + lane // tile_size).astype(jnp.float32) + 0.5
    return px, py


LOG2_E = 1.4426950408889634


def make_exp(config: KernelConfig):
    """``exp`` for the kernels: ``ex2.approx.ftz.f32`` of ``x log2(e)`` when
    ``config.fast_math`` on a GPU (relative error about 2**-22; libdevice's accurate exp costs
    several times the instructions), else ``jnp.exp`` (interpret mode has no PTX)."""
    if not config.fast_math or config.interpret:
        return jnp.exp
    from jax.experimental.pallas import triton as plgpu

    def fast_exp(x):
        [out] = plgpu.elementwise_inline_asm(
            "ex2.approx.ftz.f32 $0, $1;",
            args=[x * LOG2_E],
            constraints="=r,r",
            pack=1,
            result_shape_dtypes=[jax.ShapeDtypeStruct(x.shape, jnp.float32)],
        )
        return out

    return fast_exp


def compiler_params(config: KernelConfig, num_warps: int):
    """Triton launch settings (``None`` in interpret mode)."""
    if config.interpret:
        return None
    from jax.experimental.pallas import triton as plgpu

    return plgpu.CompilerParams(num_warps=num_warps, num_stages=1)


def forward_warps(n_tiles_total: int, config: KernelConfig) -> int:
    """Warps per forward program (``config.num_warps``, or 4 for small batches, 2 else)."""
    if config.num_warps:
        return config.num_warps
    return 4 if n_tiles_total <= 2048 else 2


def slot_loaders(scalar_refs, col_ref, n_channels: int):
    """One loader per scalar of a slot: the 1-D refs, then each colour row of ``[D, M]``."""
    loaders = [lambda j, ref=ref: ref[j] for ref in scalar_refs]
    loaders += [lambda j, ch=ch: col_ref[ch, j] for ch in range(n_channels)]
    return loaders


def load_chunk(loaders, first, step: int, chunk: int, capacity: int):
    """Scalars of the ``chunk`` slots ``first + step * u``: a tuple per slot with one value
    per loader (indices are clipped to the buffer)."""
    slots = []
    for u in range(chunk):
        j = jnp.clip(first + step * u, 0, capacity - 1)
        slots.append(tuple(load(j) for load in loaders))
    return tuple(slots)


def gaussian_alpha(params, px, py, exp=jnp.exp):
    """Alpha of one slot at the pixels (rules of the module docstring of :mod:`reference`),
    from its scalars ``(mx, my, a, b, c, o, ...)``. Returns ``(alpha, ok, dx, dy, vis)``
    with ``vis = exp(-sigma)``."""
    mx, my, a, b, c, o = params[:6]
    dx = mx - px
    dy = my - py
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    vis = exp(-sigma)
    alpha = jnp.minimum(MAX_ALPHA, o * vis)
    ok = (sigma >= 0.0) & (alpha >= ALPHA_THRESHOLD)
    return alpha, ok, dx, dy, vis


def _forward_kernel(
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
    color_out,
    trans_out,
    last_out,
    ck_trans,
    ck_acc,
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
    tile = order_ref[pl.program_id(0)]
    start, end = start_ref[tile], end_ref[tile]
    px, py = pixel_centres(tile, tiles_x, n_tiles, tile_size)
    n_pix = tile_size * tile_size
    refs = slot_loaders((mx_ref, my_ref, ca_ref, cb_ref, cc_ref, op_ref), col_ref, n_channels)
    load = functools.partial(load_chunk, refs, step=1, chunk=chunk, capacity=capacity)

    def cond(carry):
        k, _, _, _, done, _ = carry
        # "Any pixel still running?" as a max: Triton has no lowering for reduce_and.
        return (k < end) & (jnp.max(jnp.where(done, 0, 1)) > 0)

    seg = segment_length(start, end, n_segments, chunk)

    def checkpoint(b, trans, acc):
        # State before slot start + b * seg: where backward segment b - 1 starts from.
        ck_trans[tile, b - 1, :] = trans
        for ch in range(n_channels):
            ck_acc[tile, b - 1, ch, :] = acc[ch]

    def body(carry):
        k, trans, acc, last, done, params = carry
        if prefetch:  # the next chunk's loads fly while this one is composited
            upcoming = load(k + chunk)
        else:
            params, upcoming = load(k), ()
        at_boundary = (k > start) & ((k - start) % seg == 0)
        pl.when(at_boundary)(functools.partial(checkpoint, (k - start) // seg, trans, acc))
        acc = list(acc)
        for u in range(chunk):
            idx = k + u
            alpha, ok, _, _, _ = gaussian_alpha(params[u], px, py, exp)
            ok = ok & (idx < end) & jnp.logical_not(done)
            next_t = trans * (1.0 - alpha)
            stop = ok & (next_t <= T_STOP)
            done = done | stop
            ok = ok & jnp.logical_not(stop)
            weight = jnp.where(ok, alpha * trans, 0.0)
            # One [P] accumulator per channel: no 2-D tensors, so no layout conversions.
            for ch in range(n_channels):
                acc[ch] = acc[ch] + weight * params[u][6 + ch]
            trans = jnp.where(ok, next_t, trans)
            last = jnp.where(ok, idx + 1, last)
        return k + chunk, trans, tuple(acc), last, done, upcoming

    zeros = jnp.zeros((n_pix,), jnp.float32)
    init = (
        start,
        jnp.ones((n_pix,), jnp.float32),
        (zeros,) * n_channels,
        jnp.zeros((n_pix,), jnp.int32),
        jnp.zeros((n_pix,), jnp.bool_),
        load(start) if prefetch else (),
    )
    k_end, trans, acc, last, _, _ = jax.lax.while_loop(cond, body, init)
    # Boundaries the loop did not reach (list ended or every pixel stopped) hold the final
    # state: nothing changes after k_end.
    for b in range(1, n_segments + 1):
        pl.when(start + b * seg >= k_end)(functools.partial(checkpoint, b, trans, acc))
    for ch in range(color_out.shape[1]):
        color_out[tile, ch, :] = acc[ch] if ch < n_channels else zeros
    trans_out[tile, :] = trans
    last_out[tile, :] = last


def forward_tiles(ranges, gathered, n_images: int, width: int, height: int, config: KernelConfig):
    """Run the forward kernel.

    Args:
      ranges: ``[R, 2]`` int32 slot range per tile (``R = images * tiles``).
      gathered: dict of slot-ordered arrays ``mx, my, ca, cb, cc, op [M]`` and
        ``colors [D, M]`` (channel-major).

    Returns:
      ``(color [R, Dp, P], trans [R, P], last [R, P] int32, ck_trans [R, S, P],
      ck_acc [R, S, Dp, P])`` with ``P = tile_size**2``, ``Dp`` the next power of two of
      ``D`` (extra channels are zero) and ``S`` backward segments per tile: the
      transmittance and accumulated colour at the end of each segment, from which the
      backward restarts each segment independently.
    """
    ts = config.tile_size
    tiles_x, tiles_y = tile_grid(width, height, ts)
    n_tiles = tiles_x * tiles_y
    r = n_images * n_tiles
    n_pix = ts * ts
    n_channels, capacity = gathered["colors"].shape
    dp = padded_channels(n_channels)
    n_seg = backward_segments(r, config)
    kernel = functools.partial(
        _forward_kernel,
        tiles_x=tiles_x,
        n_tiles=n_tiles,
        tile_size=ts,
        chunk=config.unroll(n_channels),
        capacity=capacity,
        n_channels=n_channels,
        n_segments=n_seg,
        exp=make_exp(config),
        prefetch=config.prefetch,
    )
    out_shape = (
        jax.ShapeDtypeStruct((r, dp, n_pix), jnp.float32),
        jax.ShapeDtypeStruct((r, n_pix), jnp.float32),
        jax.ShapeDtypeStruct((r, n_pix), jnp.int32),
        jax.ShapeDtypeStruct((r, n_seg, n_pix), jnp.float32),
        jax.ShapeDtypeStruct((r, n_seg, dp, n_pix), jnp.float32),
    )
    # Outputs are whole arrays written at the program's tile, which launch order picks.
    whole = pl.no_block_spec
    return pl.pallas_call(
        kernel,
        grid=(r,),
        out_shape=out_shape,
        in_specs=[whole] * 10,
        out_specs=(whole,) * len(out_shape),
        interpret=config.interpret,
        compiler_params=compiler_params(config, forward_warps(r, config)),
        name="splat_forward",
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
    )


def segment_length(start, end, n_segments: int, chunk: int):
    """Slots per backward segment of a tile: the list split in ``n_segments`` parts, rounded
    up to whole chunks (the forward checkpoints at chunk starts)."""
    per = (end - start + n_segments - 1) // n_segments
    return jnp.maximum((per + chunk - 1) // chunk * chunk, chunk)


def backward_segments(n_tiles_total: int, config: KernelConfig) -> int:
    """Segments per tile list for the backward: more when there are few tiles, so that long
    lists are split over more programs (``config.backward_segments`` if set)."""
    if config.backward_segments:
        return config.backward_segments
    return 8 if n_tiles_total <= 2048 else 2


def launch_order(ranges, config: KernelConfig):
    """Tile per program: longest intersection lists first when ``config.heavy_first`` (the
    long tail of a few heavy tiles then overlaps the many light ones), else in order."""
    if not config.heavy_first:
        return jnp.arange(ranges.shape[0], dtype=jnp.int32)
    return jnp.argsort(ranges[:, 0] - ranges[:, 1], stable=True).astype(jnp.int32)
