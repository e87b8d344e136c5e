"""XLA tile compositor (the CPU backend): the Pallas kernels' algorithm in plain ``jnp``.

Same inputs as :func:`vjp.composite_tiles` (the binned, depth-sorted tile lists of
:func:`binning.bin_gaussians`), same per-pixel rules as :mod:`reference`, same gradient
conventions as :mod:`backward` (:data:`backward.SCALAR_SUMS`, :func:`backward.combine_sums`
after one segment sum back to Gaussians).

Schedule: persistent lanes. XLA has no per-tile programs, and a lock-step walk of every
tile pays the longest list for all of them (15k head Gaussians at 128²: the longest tile
list is 3.4x the mean, and half the tiles are empty). Instead ``lanes`` tiles are in
flight at once; a ``while_loop`` step composites the next ``chunk`` slots of every lane as
``[lanes, chunk, P]`` arrays (cumulative products along the chunk), and a lane whose list
is exhausted, or all of whose pixels have stopped, writes its tile out and takes the next
tile from a queue sorted longest first (empty tiles never enter it; the switch runs under
a ``cond``, so steps without one skip it). The backward does the same back to front, from
each tile's final transmittance and its last contributing slot, writing per-slot sums
over the tile's pixels that one segment sum turns into per-Gaussian gradients.

Measured (this 2-core AMD EPYC, shared: min of interleaved runs; 15k head Gaussians,
128², 8² tiles, compositing only, forward / forward+backward):

- backward on ``[K, C, P, D]`` colour arrays (colour behind each slot as a cumsum): 54 /
  253 ms. Now ``[K, C, P]`` scalars only (``g = colour . v_color``; the colour behind a
  slot enters only as its dot with ``v_color``): 47 / 101 ms. The whole frame with
  projection and binning: see ``tools/bench_splat_cpu.py``.
- prefix sums as a ``[C, C]`` triangular matmul (log space) instead of cumprod/cumsum:
  about even in the forward (kept: fewer ops), slower in the backward (reverted there).
- lanes x chunk at 8² tiles: 16x16, 32x16, 32x8, 64x8 within the noise (+-20%); 64x4 and
  16x8 slower. 16² tiles composite 2.5x more pixel pairs: about 2x slower end to end.
- a chunk unrolled slot by slot lets XLA's elementwise fusion recompute the chain of
  earlier slots for every output element (the backward paid O(chunk²)); a scatter into the
  loop-carried ``[M, ...]`` slot buffer made the backward scale with the capacity (133,
  177, 340 ms at 64k, 128k, 256k slots), hence the per-lane ``dynamic_update_slice``
  (its cost no longer changes with the capacity: 538 vs 550 ms at 128k / 256k slots
  before the scalar rewrite).

Floor (15k head Gaussians, 128², 8² tiles): 43.7k (tile, Gaussian) pairs after the
ellipse test, 2.8M pixel-Gaussian pairs, of which the early stop leaves 2.6M (the head is
not opaque everywhere); 16² tiles give 27.4k pairs but 7.0M pixel pairs. The forward
costs about 20 flops per pair and the backward about 60: ~0.2 GFLOP, a few ms at the
~50 GFLOP/s of two AVX-512 cores. Projection and binning (not in this file) take ~20 ms
of the frame. See ``tools/bench_splat_cpu.py`` for the measured times.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from ggtalker_jax.kernels.splat.backward import SCALAR_SUMS, combine_sums
from ggtalker_jax.kernels.splat.binning import tile_grid
from ggtalker_jax.kernels.splat.projection import ALPHA_THRESHOLD
from ggtalker_jax.kernels.splat.reference import MAX_ALPHA, T_STOP

# Columns of the slot-ordered parameter table: mean x, y, conic a, b, c, opacity, colours.
N_PARAMS = 6
LANES = 16
CHUNK = 16
HIGHEST = jax.lax.Precision.HIGHEST


def _pixel_centres(tile, tiles_x: int, n_tiles: int, tile_size: int):
    """Pixel centres ``(px, py) [K, P]`` of the tiles ``tile [K]`` (image-major order)."""
    t = tile % n_tiles
    lane = jnp.arange(tile_size * tile_size, dtype=jnp.int32)[None, :]
    px = ((t % tiles_x)[:, None] * tile_size + lane % tile_size).astype(jnp.float32) + 0.5
    py = ((t // tiles_x)[:, None] * tile_size + lane // tile_size).astype(jnp.float32) + 0.5
    return px, py


def _alpha(params, px, py):
    """Alpha of a chunk of slots ``params [K, C, 6 + D]`` at pixels ``[K, P]``: ``(alpha,
    ok, dx, dy, vis)`` ``[K, C, P]`` with the reference's rules (``vis = exp(-sigma)``)."""
    mx, my, a, b, c, o = (params[:, :, i : i + 1] for i in range(N_PARAMS))
    dx = mx - px[:, None, :]
    dy = my - py[:, None, :]
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    vis = jnp.exp(-sigma)
    alpha = jnp.minimum(MAX_ALPHA, o * vis)
    ok = (sigma >= 0.0) & (alpha >= ALPHA_THRESHOLD)
    return alpha, ok, dx, dy, vis


def _prefix(x, exclusive=False):
    """Prefix sums of ``x [K, C, P]`` along the chunk as one ``[C, C]`` triangular matmul
    (``jnp.cumsum`` lowers to an associative scan: a dozen small ops per chunk, and on
    CPU the loop's per-op overhead dominates)."""
    c = x.shape[1]
    i = jnp.arange(c)
    tri = (i[None, :] < i[:, None]) if exclusive else (i[None, :] <= i[:, None])
    return jnp.einsum("ij,kjp->kip", tri.astype(x.dtype), x, precision=HIGHEST)


def _queue(work):
    """Tiles with work, longest first: ``(order [R], n_work)``."""
    order = jnp.argsort(-work, stable=True).astype(jnp.int32)
    return order, jnp.sum(work > 0).astype(jnp.int32)


def _refill(take, tile, q, order, n_work, sentinel):
    """Lanes in ``take [K]`` get the next queued tiles (or go idle): ``(tile, q, fresh)``."""
    rank = jnp.cumsum(take.astype(jnp.int32)) - 1
    pos = q + rank
    new = jnp.where(pos < n_work, order[jnp.minimum(pos, order.shape[0] - 1)], sentinel)
    tile = jnp.where(take, new, tile)
    return tile, q + jnp.sum(take).astype(jnp.int32), take


def forward_xla(table, ranges, tiles_x, n_tiles, tile_size, lanes, chunk):
    """Front-to-back compositing of every tile.

    Args:
      table: ``[M, 6 + D]`` slot-ordered parameters (``mx, my, a, b, c, o``, colours).
      ranges: ``[R, 2]`` int32 slot range per tile.

    Returns:
      ``(color [R, P, D], trans [R, P], last [R, P] int32)``: ``last`` is one past the last
      slot that contributed to the pixel (0 if none).
    """
    r = ranges.shape[0]
    m, width = table.shape
    d = width - N_PARAMS
    n_pix = tile_size * tile_size
    start = jnp.concatenate([ranges[:, 0], jnp.zeros((1,), jnp.int32)])  # row R: idle lanes
    end = jnp.concatenate([ranges[:, 1], jnp.zeros((1,), jnp.int32)])
    order, n_work = _queue(end[:r] - start[:r])
    k = min(lanes, r)
    offsets = jnp.arange(chunk, dtype=jnp.int32)[None, :]

    def load(lane, fresh):
        """Lane state of freshly assigned tiles (``fresh [K]``), the others kept."""
        tile = lane["tile"]
        px, py = _pixel_centres(tile, tiles_x, n_tiles, tile_size)
        f = fresh[:, None]
        new = {
            "tile": tile,
            "ptr": start[tile],
            "end": end[tile],
            "px": px,
            "py": py,
            "trans": jnp.ones((k, n_pix), jnp.float32),
            "acc": jnp.zeros((k, n_pix, d), jnp.float32),
            "last": jnp.zeros((k, n_pix), jnp.int32),
            "done": jnp.zeros((k, n_pix), jnp.bool_),
        }
        return {
            key: jnp.where(
                fresh if v.ndim == 1 else (f if v.ndim == 2 else f[..., None]), v, lane[key]
            )
            for key, v in new.items()
        }

    def switch(args):
        lane, q, outs, finished = args
        row = jnp.where(finished, lane["tile"], r)
        keys = ("acc", "trans", "last")
        outs = tuple(o.at[row].set(lane[key]) for o, key in zip(outs, keys, strict=True))
        tile, q, fresh = _refill(finished, lane["tile"], q, order, n_work, r)
        return load(dict(lane, tile=tile), fresh), q, outs

    def cond(carry):
        return jnp.any(carry[0]["tile"] < r)

    def body(carry):
        lane, q, outs = carry
        px, py, trans, acc, last, done = (
            lane[key] for key in ("px", "py", "trans", "acc", "last", "done")
        )
        slots = lane["ptr"][:, None] + offsets  # [K, C]
        valid = slots < lane["end"][:, None]
        params = table[jnp.minimum(slots, m - 1)]  # [K, C, 6 + D]
        # The chunk at once: transmittance after each slot is a cumulative product (ok
        # slots only); it only falls, so "stop before the slot that brings T <= 1e-4" keeps
        # exactly the ok slots with T_after > 1e-4. Unrolled sequentially instead, XLA's
        # elementwise fusion recomputed the chain of earlier slots for every output.
        alpha, ok, _, _, _ = _alpha(params, px, py)
        ok = ok & valid[:, :, None] & jnp.logical_not(done)[:, None, :]
        log_t = jnp.where(ok, jnp.log1p(-alpha), 0.0)
        before = trans[:, None, :] * jnp.exp(_prefix(log_t, exclusive=True))
        after = jnp.where(ok, before * (1.0 - alpha), before)
        keep = ok & (after > T_STOP)
        weight = jnp.where(keep, alpha * before, 0.0)  # [K, C, P]
        acc = acc + jnp.einsum("kcp,kcd->kpd", weight, params[:, :, N_PARAMS:], precision=HIGHEST)
        done = done | jnp.any(ok & (after <= T_STOP), axis=1)
        trans = trans * jnp.exp(jnp.sum(jnp.where(keep, log_t, 0.0), axis=1))
        last = jnp.maximum(last, jnp.max(jnp.where(keep, slots[:, :, None] + 1, 0), axis=1))
        ptr = lane["ptr"] + chunk
        lane = dict(lane, ptr=ptr, trans=trans, acc=acc, last=last, done=done)
        finished = (lane["tile"] < r) & ((ptr >= lane["end"]) | jnp.all(done, axis=-1))
        return jax.lax.cond(jnp.any(finished), switch, lambda a: a[:3], (lane, q, outs, finished))

    tile0 = jnp.where(jnp.arange(k) < n_work, order[:k], r)
    dummy = {
        "tile": tile0,
        **{key: jnp.zeros((k,), jnp.int32) for key in ("ptr", "end")},
        **{key: jnp.zeros((k, n_pix), jnp.float32) for key in ("px", "py", "trans")},
        "acc": jnp.zeros((k, n_pix, d), jnp.float32),
        "last": jnp.zeros((k, n_pix), jnp.int32),
        "done": jnp.zeros((k, n_pix), jnp.bool_),
    }
    lane = load(dummy, jnp.ones((k,), jnp.bool_))
    outs = (
        jnp.zeros((r + 1, n_pix, d), jnp.float32),
        jnp.ones((r + 1, n_pix), jnp.float32),
        jnp.zeros((r + 1, n_pix), jnp.int32),
    )
    _, _, outs = jax.lax.while_loop(cond, body, (lane, jnp.int32(k), outs))
    return tuple(o[:r] for o in outs)


def backward_xla(
    table, ranges, trans, last, v_color, v_trans, tiles_x, n_tiles, tile_size, lanes, chunk
):
    """Per-slot gradient sums, back to front from each pixel's last contributing slot.

    Args:
      table, ranges: as for :func:`forward_xla`.  trans, last: its ``[R, P]`` outputs.
      v_color: ``[R, P, D]`` and v_trans: ``[R, P]`` cotangents.

    Returns:
      ``[M, 6 + D]`` slot-ordered tile sums: :data:`backward.SCALAR_SUMS`, then the colour
      gradients (zero for slots no pixel reached).
    """
    r = ranges.shape[0]
    m, width = table.shape
    d = width - N_PARAMS
    n_pix = tile_size * tile_size
    n_sums = len(SCALAR_SUMS)
    start = jnp.concatenate([ranges[:, 0], jnp.zeros((1,), jnp.int32)])
    top = jnp.concatenate([jnp.max(last, axis=-1), jnp.zeros((1,), jnp.int32)])
    top = jnp.maximum(top, start)
    pad = lambda x, v: jnp.concatenate([x, jnp.full((1, *x.shape[1:]), v, x.dtype)])
    per_tile = {
        "tf": pad(trans, 1.0),
        "lst": pad(last, 0),
        "vc": pad(v_color, 0.0),
        "vt": pad(v_trans, 0.0),
    }
    order, n_work = _queue(top[:r] - start[:r])
    k = min(lanes, r)
    offsets = jnp.arange(chunk, dtype=jnp.int32)[None, :]

    def load(lane, fresh):
        tile = lane["tile"]
        px, py = _pixel_centres(tile, tiles_x, n_tiles, tile_size)
        new = {
            "tile": tile,
            "ptr": top[tile],
            "lo": start[tile],
            "px": px,
            "py": py,
            "t": per_tile["tf"][tile],
            "behind": jnp.zeros((k, n_pix), jnp.float32),
            **{key: v[tile] for key, v in per_tile.items()},
        }
        f = fresh[:, None]
        return {
            key: jnp.where(
                fresh if v.ndim == 1 else (f if v.ndim == 2 else f[..., None]), v, lane[key]
            )
            for key, v in new.items()
        }

    def switch(args):
        lane, q, finished = args
        tile, q, fresh = _refill(finished, lane["tile"], q, order, n_work, r)
        return load(dict(lane, tile=tile), fresh), q

    def cond(carry):
        return jnp.any(carry[0]["tile"] < r)

    def body(carry):
        lane, q, sums = carry
        px, py, t, behind, tf, lst, vc, vt = (
            lane[key] for key in ("px", "py", "t", "behind", "tf", "lst", "vc", "vt")
        )
        slots = lane["ptr"][:, None] - 1 - offsets  # [K, C], walking down
        valid = slots >= lane["lo"][:, None]
        params = table[jnp.clip(slots, 0, m - 1)]
        # The chunk at once (slots walk down): T before each slot is the final T times the
        # cumulative product of 1 / (1 - alpha) (a triangular-matmul prefix sum in log space
        # measured slower here than cumprod/cumsum).
        alpha, ok, dx, dy, vis = _alpha(params, px, py)
        ok = ok & (slots[:, :, None] < lst[:, None, :]) & valid[:, :, None]
        ra = jnp.where(ok, 1.0 / (1.0 - alpha), 1.0)
        t_before = t[:, None, :] * jnp.cumprod(ra, axis=1)
        fac = jnp.where(ok, alpha * t_before, 0.0)
        # Colours only meet the pixels through dot products with the colour cotangent, so
        # the chunk works on [K, C, P] scalars: g = colour . v_color, and the colour behind
        # each slot enters as (colour behind) . v_color, an exclusive prefix sum of fac * g.
        g = jnp.einsum("kcd,kpd->kcp", params[:, :, N_PARAMS:], vc, precision=HIGHEST)
        fg = fac * g
        total = jnp.cumsum(fg, axis=1)
        t_before, total = jax.lax.optimization_barrier((t_before, total))
        behind_u = total - fg + behind[:, None]
        v_alpha = -tf[:, None] * ra * vt[:, None] + t_before * g - behind_u * ra
        live = ok & (params[:, :, 5:6] * vis <= MAX_ALPHA)
        w = jnp.where(live, vis * v_alpha, 0.0)
        w, dx, dy, fac = jax.lax.optimization_barrier((w, dx, dy, fac))
        w_dx, w_dy = w * dx, w * dy
        terms = [w, w_dx, w_dy, w_dx * dx, w_dx * dy, w_dy * dy]
        rows = jnp.concatenate(
            [
                jnp.stack([x.sum(-1) for x in terms], -1),
                jnp.einsum("kcp,kpd->kcd", fac, vc, precision=HIGHEST),
            ],
            -1,
        )  # [K, C, 6 + D]
        t = t_before[:, -1]
        behind = behind + jnp.sum(fg, axis=1)
        sums = _store_rows(sums, rows, lane["ptr"] - chunk, valid & (lane["tile"] < r)[:, None])
        ptr = lane["ptr"] - chunk
        lane = dict(lane, ptr=ptr, t=t, behind=behind)
        finished = (lane["tile"] < r) & (ptr <= lane["lo"])
        lane, q = jax.lax.cond(jnp.any(finished), switch, lambda a: a[:2], (lane, q, finished))
        return lane, q, sums

    tile0 = jnp.where(jnp.arange(k) < n_work, order[:k], r)
    dummy = {
        "tile": tile0,
        **{key: jnp.zeros((k,), jnp.int32) for key in ("ptr", "lo")},
        **{key: jnp.zeros((k, n_pix), jnp.float32) for key in ("px", "py", "t", "tf", "vt")},
        "behind": jnp.zeros((k, n_pix), jnp.float32),
        "vc": jnp.zeros((k, n_pix, d), jnp.float32),
        "lst": jnp.zeros((k, n_pix), jnp.int32),
    }
    lane = load(dummy, jnp.ones((k,), jnp.bool_))
    sums = jnp.zeros((chunk + m, n_sums + d), jnp.float32)
    _, _, sums = jax.lax.while_loop(cond, body, (lane, jnp.int32(k), sums))
    return sums[chunk:]


def _store_rows(sums, rows, first, valid):
    """Write each lane's slot rows ``rows [K, C, T]`` (slots ``first + C - 1`` down to
    ``first``) where ``valid [K, C]``. One read-modify-write ``dynamic_update_slice`` per
    lane keeps the loop-carried ``[C + M, T]`` buffer in place (a scatter into it copied
    the whole buffer every step: the backward took time proportional to the capacity).
    Row ``C + j`` holds slot ``j``; idle lanes' slots below 0 land in the first ``C``."""
    chunk = rows.shape[1]
    for lane in range(rows.shape[0]):
        at = (first[lane] + chunk, 0)
        old = jax.lax.dynamic_slice(sums, at, (chunk, sums.shape[1]))
        new = jnp.where(valid[lane, ::-1, None], rows[lane, ::-1], old)
        sums = jax.lax.dynamic_update_slice(sums, new, at)
    return sums


def _table(means2d, conics, opacities, colors, gaussian):
    g = jnp.minimum(gaussian, means2d.shape[0] - 1)  # unused slots hold I * N
    rows = jnp.concatenate([means2d, conics, opacities[:, None], colors], -1)
    return rows[g]


@functools.partial(jax.custom_vjp, nondiff_argnums=(6, 7, 8, 9, 10, 11))
def composite_tiles_xla(
    means2d,
    conics,
    opacities,
    colors,
    gaussian,
    ranges,
    n_images,
    width,
    height,
    tile_size,
    lanes=LANES,
    chunk=CHUNK,
):
    """Composite sorted tile lists with XLA (the arguments of :func:`vjp.composite_tiles`,
    with ``tile_size`` and the schedule's ``lanes`` and ``chunk`` instead of a config).

    Returns:
      ``(color [R, P, D], trans [R, P])`` per tile, pixels row-major within the tile.
    """
    out, _ = _fwd(
        means2d,
        conics,
        opacities,
        colors,
        gaussian,
        ranges,
        n_images,
        width,
        height,
        tile_size,
        lanes,
        chunk,
    )
    return out


def _fwd(
    means2d,
    conics,
    opacities,
    colors,
    gaussian,
    ranges,
    n_images,
    width,
    height,
    tile_size,
    lanes,
    chunk,
):
    tiles_x, tiles_y = tile_grid(width, height, tile_size)
    table = _table(means2d, conics, opacities, colors, gaussian)
    color, trans, last = forward_xla(
        table, ranges, tiles_x, tiles_x * tiles_y, tile_size, lanes, chunk
    )
    return (color, trans), (table, gaussian, ranges, trans, last, conics, opacities)


def _bwd(n_images, width, height, tile_size, lanes, chunk, residuals, cotangents):
    table, gaussian, ranges, trans, last, conics, opacities = residuals
    v_color, v_trans = cotangents
    tiles_x, tiles_y = tile_grid(width, height, tile_size)
    slot_sums = backward_xla(
        table,
        ranges,
        trans,
        last,
        v_color,
        v_trans,
        tiles_x,
        tiles_x * tiles_y,
        tile_size,
        lanes,
        chunk,
    )
    rows = jax.ops.segment_sum(slot_sums, gaussian, num_segments=opacities.shape[0])
    n_sums = len(SCALAR_SUMS)
    v_mean, v_conic, v_opacity = combine_sums(rows[:, :n_sums], conics, opacities)
    return (v_mean, v_conic, v_opacity, rows[:, n_sums:], None, None)


composite_tiles_xla.defvjp(_fwd, _bwd)
