"""Tile binning: (tile, Gaussian) intersections in a fixed-capacity buffer, sorted by tile
with depth order inside each tile, and each tile's range in the sorted list.

1. Sort each image's Gaussians by depth once (culled ones last).
2. Count the tiles each Gaussian's box touches; an exclusive cumsum over the flattened
   (image, depth-ordered Gaussian) list gives every Gaussian its slots in the buffer.
3. Fill the buffer: slot k belongs to the last Gaussian whose first slot is <= k (ones
   scattered at first slots, then a cumsum: XLA lowers cumsums on GPUs to one CUB scan),
   its tile is the k-th of its box.
   With conics and opacities given, a slot whose tile's pixel centres all lie outside the
   Gaussian's ``alpha >= 1/255`` ellipse (the exact minimum of the quadratic form over the
   tile's rectangle, see :func:`ellipse_reaches_tile`) gets the sentinel key instead: the
   box corners of tilted, elongated splats are never composited. On the head workload this
   removes about 18% of the box's pairs; the capacity still counts every box pair.
4. One stable sort of the (image, tile) keys (16 bits when they fit, else 32): entries of
   a tile stay in depth order, so no depth bits are needed in the key (the multi-image
   reorder pitfall is avoided).
5. Tile ranges from a scatter of run starts and ends.

Slots beyond the number of intersections hold a sentinel key that sorts last. If the boxes
need more slots than the capacity, the extra intersections are dropped and counted in the
returned ``overflow``/``dropped``: callers must never ignore them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def tile_grid(width: int, height: int, tile_size: int) -> tuple[int, int]:
    """Number of tiles along x and y."""
    return -(-width // tile_size), -(-height // tile_size)


def tile_boxes(means2d, radii, width: int, height: int, tile_size: int):
    """Tile rectangle ``[x0, x1) x [y0, y1)`` per Gaussian, ``[..., N, 4]`` int32; empty for
    culled ones (radius 0)."""
    tiles_x, tiles_y = tile_grid(width, height, tile_size)
    rx, ry = radii[..., 0].astype(jnp.float32), radii[..., 1].astype(jnp.float32)
    mx, my = means2d[..., 0], means2d[..., 1]
    x0 = jnp.clip(jnp.floor((mx - rx) / tile_size), 0, tiles_x).astype(jnp.int32)
    x1 = jnp.clip(jnp.floor((mx + rx) / tile_size) + 1, 0, tiles_x).astype(jnp.int32)
    y0 = jnp.clip(jnp.floor((my - ry) / tile_size), 0, tiles_y).astype(jnp.int32)
    y1 = jnp.clip(jnp.floor((my + ry) / tile_size) + 1, 0, tiles_y).astype(jnp.int32)
    visible = jnp.any(radii > 0, axis=-1)
    x1 = jnp.where(visible, x1, x0)
    return jnp.stack([x0, x1, y0, jnp.where(visible, y1, y0)], -1)


def count_intersections(means2d, radii, width: int, height: int, tile_size: int):
    """Total number of (tile, Gaussian) pairs over all images (int32 scalar)."""
    box = tile_boxes(means2d, radii, width, height, tile_size)
    return jnp.sum((box[..., 1] - box[..., 0]) * (box[..., 3] - box[..., 2]))


# Slack on the sigma threshold of the tile test, so that rounding (and the kernels' fast exp)
# can never make it drop a pair the kernels would composite.
SIGMA_SLACK = 0.01


def ellipse_reaches_tile(means2d, conics, opacities, tx, ty, width, height, tile_size):
    """Whether some pixel centre of tile ``(tx, ty)`` may get ``alpha >= 1/255``.

    ``alpha = o exp(-sigma)`` with ``sigma = 0.5 d^T Conic d`` reaches ``1/255`` only where
    ``sigma <= ln(255 o)``. The minimum of that convex quadratic over the rectangle spanned
    by the tile's pixel centres is 0 when the mean is inside; else it lies on an edge, where
    it is a 1-D quadratic minimised in closed form and clamped to the edge. All arguments
    broadcast elementwise (one entry per slot)."""
    x0 = (tx * tile_size).astype(jnp.float32) + 0.5
    y0 = (ty * tile_size).astype(jnp.float32) + 0.5
    x1 = jnp.minimum(x0 + (tile_size - 1), width - 0.5)
    y1 = jnp.minimum(y0 + (tile_size - 1), height - 0.5)
    mx, my = means2d[..., 0], means2d[..., 1]
    a, b, c = conics[..., 0], conics[..., 1], conics[..., 2]
    safe_a = jnp.where(a > 0, a, 1.0)
    safe_c = jnp.where(c > 0, c, 1.0)

    def sigma(dx, dy):
        return 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy

    best = jnp.full(mx.shape, jnp.inf, jnp.float32)
    for ex in (x0, x1):  # vertical edges: dx fixed, best dy = -b dx / c
        dx = ex - mx
        dy = jnp.clip(-b * dx / safe_c, y0 - my, y1 - my)
        best = jnp.minimum(best, sigma(dx, dy))
    for ey in (y0, y1):  # horizontal edges
        dy = ey - my
        dx = jnp.clip(-b * dy / safe_a, x0 - mx, x1 - mx)
        best = jnp.minimum(best, sigma(dx, dy))
    inside = (mx >= x0) & (mx <= x1) & (my >= y0) & (my <= y1)
    limit = jnp.log(jnp.maximum(opacities, 1e-30) / (1.0 / 255.0)) + SIGMA_SLACK
    return inside | (best <= limit)


def bin_gaussians(
    means2d,
    radii,
    depths,
    width: int,
    height: int,
    tile_size: int,
    capacity: int,
    conics=None,
    opacities=None,
):
    """Bin ``I`` images of ``N`` projected Gaussians into tiles.

    Args:
      means2d: ``[I, N, 2]``.  radii: ``[I, N, 2]`` int32 (0 = culled).  depths: ``[I, N]``.
      capacity: static number of intersection slots ``M``.
      conics: ``[I, N, 3]`` and opacities: ``[I, N]``, optional: drop the box's pairs whose
        tile the Gaussian never reaches (:func:`ellipse_reaches_tile`).

    Returns:
      dict with ``gaussian [M]`` int32 (flat index ``image * N + g`` per sorted slot;
      ``I * N`` in unused slots), ``ranges [I * tiles, 2]`` int32 (start, end) per tile, ``count``
      (box intersections, what the capacity must hold), ``active`` (pairs kept after the tile
      test), ``overflow`` (bool) and ``dropped`` (int32).
    """
    n_img, n = depths.shape
    tiles_x, tiles_y = tile_grid(width, height, tile_size)
    n_tiles = tiles_x * tiles_y
    n_runs = n_img * n_tiles
    box = tile_boxes(means2d, radii, width, height, tile_size)  # [I, N, 4]
    box_counts = (box[..., 1] - box[..., 0]) * (box[..., 3] - box[..., 2])
    order = jnp.argsort(jnp.where(box_counts > 0, depths, jnp.inf), axis=-1, stable=True)
    flat = (order + n * jnp.arange(n_img, dtype=order.dtype)[:, None]).reshape(-1)
    box = box.reshape(-1, 4)[flat]
    box_w = box[:, 1] - box[:, 0]
    counts = box_counts.reshape(-1)[flat]
    ends = jnp.cumsum(counts)
    starts = ends - counts
    total = ends[-1]
    # Slot -> owner: a 1 at each non-empty owner's first slot (distinct slots), a cumsum
    # gives the owner's rank among the non-empty ones, and a compaction table maps ranks to
    # positions. Cumsums lower to CUB scans on GPUs (a running max would not).
    nonempty = counts > 0
    rank = jnp.cumsum(nonempty.astype(jnp.int32)) - 1
    pos = jnp.arange(flat.shape[0], dtype=jnp.int32)
    position = (
        jnp.zeros_like(pos).at[jnp.where(nonempty, rank, flat.shape[0])].set(pos, mode="drop")
    )
    marks = (
        jnp.zeros((capacity,), jnp.int32)
        .at[jnp.where(nonempty, starts, capacity)]
        .add(1, mode="drop")
    )
    owner = position[jnp.maximum(jnp.cumsum(marks) - 1, 0)]
    slot = jnp.arange(capacity, dtype=jnp.int32)
    local = slot - starts[owner]
    w = jnp.maximum(box_w[owner], 1)
    tx = box[owner, 0] + local % w
    ty = box[owner, 2] + local // w
    owner_gaussian = flat[owner]  # flat (image, Gaussian) index
    image = owner_gaussian // n
    used = slot < total
    if conics is not None:
        used = used & ellipse_reaches_tile(
            means2d.reshape(-1, 2)[owner_gaussian],
            conics.reshape(-1, 3)[owner_gaussian],
            opacities.reshape(-1)[owner_gaussian],
            tx,
            ty,
            width,
            height,
            tile_size,
        )
    # The narrowest key that holds every (image, tile) and the sentinel: a 16-bit radix
    # sort makes half the passes of a 32-bit one.
    key_type = jnp.uint16 if n_runs < (1 << 16) else jnp.uint32
    sentinel = jnp.asarray(n_runs, key_type)
    key = jnp.where(used, (image * n_tiles + ty * tiles_x + tx).astype(key_type), sentinel)
    key, gaussian = jax.lax.sort(
        (key, owner_gaussian.astype(jnp.int32)), num_keys=1, is_stable=True
    )
    key_i = key.astype(jnp.int32)
    is_start = jnp.concatenate([jnp.ones((1,), bool), key[1:] != key[:-1]])
    is_end = jnp.concatenate([key[1:] != key[:-1], jnp.ones((1,), bool)])
    live = key_i < n_runs
    start = (
        jnp.zeros((n_runs,), jnp.int32)
        .at[jnp.where(is_start & live, key_i, n_runs)]
        .set(slot, mode="drop")
    )
    end = (
        jnp.zeros((n_runs,), jnp.int32)
        .at[jnp.where(is_end & live, key_i, n_runs)]
        .set(slot + 1, mode="drop")
    )
    dropped = jnp.maximum(total - capacity, 0).astype(jnp.int32)
    return {
        # Unused slots point one past the last Gaussian: gathers clip them, and the segment
        # sum of the backward drops them (pointing them at Gaussian 0 serialised hundreds of
        # thousands of atomic adds on one address).
        "gaussian": jnp.where(key_i < n_runs, gaussian, n_img * n),
        "ranges": jnp.stack([start, end], -1),
        "count": total.astype(jnp.int32),
        "active": jnp.sum(used).astype(jnp.int32),
        "overflow": dropped > 0,
        "dropped": dropped,
    }


def default_capacity(
    n_images: int, n_gaussians: int, width: int, height: int, tile_size: int = 16
) -> int:
    """A first guess of the slots needed: 4 tiles per Gaussian, at least 4 per tile, rounded
    up to a multiple of 65536 (bucketed so that retries rarely recompile)."""
    tiles_x, tiles_y = tile_grid(width, height, tile_size)
    guess = n_images * max(4 * n_gaussians, 4 * tiles_x * tiles_y)
    return round_capacity(guess)


def round_capacity(needed: int) -> int:
    """``needed`` plus 15% headroom, rounded up to a multiple of 65536."""
    bucket = 1 << 16
    return max(bucket, -(-int(needed * 1.15) // bucket) * bucket)
