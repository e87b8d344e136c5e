"""Pallas backward kernel: back-to-front gradients, one program per tile.

Each pixel starts at the last slot that contributed to it (saved by the forward) with the
final transmittance, and undoes the compositing one Gaussian at a time:

* ``T_before = T_after / (1 - alpha)`` (exact: alpha <= 0.999);
* ``dC/dc_g = alpha T_before``;
* ``dC/dalpha_g = c_g T_before - S / (1 - alpha)`` with ``S`` the colour composited behind
  ``g``; ``dT_final/dalpha_g = -T_final / (1 - alpha)``;
* through ``alpha = o exp(-sigma)`` (zero where alpha was clamped to 0.999) to the opacity,
  the conic and the 2D mean.

The per-pixel terms are summed over the tile and written to the slot's own row: every slot
belongs to exactly one tile, so there are no atomics; XLA then sums the rows of each Gaussian
(a segment sum). Slots no pixel reached keep the zeros of the aliased output buffers.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from ggtalker_jax.kernels.splat.config import KernelConfig
from ggtalker_jax.kernels.splat.forward import gaussian_alpha, pixel_centres
from ggtalker_jax.kernels.splat.reference import MAX_ALPHA

GRAD_FIELDS = ("mx", "my", "ca", "cb", "cc", "op")


def _store_slot(scalar_refs, col_ref, j, sums, grad_col):
    """Write slot ``j``'s tile-summed gradients (the slot belongs to this tile alone)."""
    for ref, value in zip(scalar_refs, sums, strict=True):
        ref[j] = value
    col_ref[j, :] = grad_col


def _backward_kernel(
    start_ref,
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
    *refs,
    tiles_x,
    n_tiles,
    tile_size,
    chunk,
    capacity,
):
    # refs: 7 aliased zero inputs (unused here), then the 7 outputs they alias.
    g_mx, g_my, g_ca, g_cb, g_cc, g_op, g_col = refs[7:]
    tile = pl.program_id(0)
    start = start_ref[tile]
    px, py = pixel_centres(tile, tiles_x, n_tiles, tile_size)
    last = last_ref[0, :]
    t_final = trans_ref[0, :]
    v_col = vcol_ref[0, :, :]  # [P, Dp]
    v_trans = vtrans_ref[0, :]
    dp = col_ref.shape[1]
    gauss_refs = (mx_ref, my_ref, ca_ref, cb_ref, cc_ref, op_ref)
    top = jnp.max(last)

    def cond(carry):
        return carry[0] > start

    def body(carry):
        k, trans, behind = carry
        for u in range(chunk):
            idx = k - 1 - u
            j = jnp.clip(idx, 0, capacity - 1)
            alpha, ok, dx, dy, sigma, (a, b, c, o) = gaussian_alpha(gauss_refs, j, px, py)
            ok = ok & (idx < last) & (idx >= start)
            ra = 1.0 / (1.0 - alpha)
            trans = jnp.where(ok, trans * ra, trans)
            fac = jnp.where(ok, alpha * trans, 0.0)
            color = col_ref[j, :]  # [Dp]
            v_alpha = (
                jnp.sum((color[None, :] * trans[:, None] - behind * ra[:, None]) * v_col, axis=1)
                - t_final * ra * v_trans
            )
            behind = behind + fac[:, None] * color[None, :]
            vis = jnp.exp(-sigma)
            live = ok & (o * vis <= MAX_ALPHA)
            v_sigma = jnp.where(live, -o * vis * v_alpha, 0.0)
            sums = (
                jnp.sum(v_sigma * (a * dx + b * dy)),
                jnp.sum(v_sigma * (b * dx + c * dy)),
                jnp.sum(0.5 * v_sigma * dx * dx),
                jnp.sum(v_sigma * dx * dy),
                jnp.sum(0.5 * v_sigma * dy * dy),
                jnp.sum(jnp.where(live, vis * v_alpha, 0.0)),
            )
            grad_col = jnp.sum(fac[:, None] * v_col, axis=0)  # [Dp]

            store = functools.partial(
                _store_slot, (g_mx, g_my, g_ca, g_cb, g_cc, g_op), g_col, j, sums, grad_col
            )
            pl.when(idx >= start)(store)

        return k - chunk, trans, behind

    init = (top, t_final, jnp.zeros((tile_size * tile_size, dp), jnp.float32))
    jax.lax.while_loop(cond, body, init)


def backward_tiles(
    ranges,
    gathered,
    trans,
    last,
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
      v_color: ``[R, P, Dp]`` and v_trans: ``[R, P]`` cotangents.

    Returns:
      dict of slot-ordered gradients ``mx, my, ca, cb, cc, op [M]``, ``colors [M, Dp]``.
    """
    ts = config.tile_size
    tiles_x, tiles_y = -(-width // ts), -(-height // ts)
    n_tiles = tiles_x * tiles_y
    r = n_images * n_tiles
    n_pix = ts * ts
    capacity, dp = gathered["colors"].shape
    kernel = functools.partial(
        _backward_kernel,
        tiles_x=tiles_x,
        n_tiles=n_tiles,
        tile_size=ts,
        chunk=config.chunk,
        capacity=capacity,
    )
    zeros = [jnp.zeros((capacity,), jnp.float32) for _ in GRAD_FIELDS]
    zeros.append(jnp.zeros((capacity, dp), jnp.float32))
    tile_specs = [
        pl.BlockSpec((1, n_pix), lambda i: (i, 0)),
        pl.BlockSpec((1, n_pix), lambda i: (i, 0)),
        pl.BlockSpec((1, n_pix, dp), lambda i: (i, 0, 0)),
        pl.BlockSpec((1, n_pix), lambda i: (i, 0)),
    ]
    whole = pl.no_block_spec  # the whole array; the kernel indexes it by slot
    n_plain = 8  # start + 6 Gaussian fields + colours
    in_specs = [whole] * n_plain + tile_specs + [whole] * len(zeros)
    compiler_params = None
    if not config.interpret:
        from jax.experimental.pallas import triton as plgpu

        compiler_params = plgpu.CompilerParams(num_warps=config.num_warps, num_stages=1)
    first_alias = n_plain + len(tile_specs)
    outs = pl.pallas_call(
        kernel,
        grid=(r,),
        in_specs=in_specs,
        out_specs=[whole] * len(zeros),
        out_shape=[jax.ShapeDtypeStruct(z.shape, z.dtype) for z in zeros],
        input_output_aliases={first_alias + i: i for i in range(len(zeros))},
        interpret=config.interpret,
        compiler_params=compiler_params,
        name="splat_backward",
    )(
        ranges[:, 0],
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
        *zeros,
    )
    grads = dict(zip(GRAD_FIELDS, outs[:6], strict=True))
    grads["colors"] = outs[6]
    return grads
