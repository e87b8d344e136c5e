"""``rasterization``: gsplat-compatible Gaussian splatting with JAX backends.

Conventions (as gsplat 1.5): ``quats`` wxyz, linear ``scales``, ``opacities`` in 0..1,
``viewmats`` world->camera with +z forward and +y down, OpenCV ``Ks``, pixel centres at +0.5.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from ggtalker_jax.kernels.splat.binning import (
    bin_gaussians,
    count_intersections,
    default_capacity,
    round_capacity,
    tile_grid,
)
from ggtalker_jax.kernels.splat.checks import (
    as_float32,
    check_shapes,
    check_static,
    check_values,
)
from ggtalker_jax.kernels.splat.config import KernelConfig
from ggtalker_jax.kernels.splat.projection import project_batch
from ggtalker_jax.kernels.splat.reference import composite_reference
from ggtalker_jax.kernels.splat.vjp import composite_tiles
from ggtalker_jax.kernels.splat.xla import composite_tiles_xla


def _untile(color, trans, n_img: int, width: int, height: int, tile_size: int):
    """Per-tile ``color [R, P, D]`` and ``trans [R, P]`` (pixels row-major in each tile) to
    images ``[I, H, W, D]`` and ``[I, H, W]``."""
    tiles_x, tiles_y = tile_grid(width, height, tile_size)
    d = color.shape[-1]
    shape = (n_img, tiles_y, tiles_x, tile_size, tile_size)
    color = (
        color.reshape(*shape, d)
        .transpose(0, 1, 3, 2, 4, 5)
        .reshape(n_img, tiles_y * tile_size, tiles_x * tile_size, d)[:, :height, :width]
    )
    trans = (
        trans.reshape(shape)
        .transpose(0, 1, 3, 2, 4)
        .reshape(n_img, tiles_y * tile_size, tiles_x * tile_size)[:, :height, :width]
    )
    return color, trans


@functools.partial(
    jax.jit,
    static_argnames=(
        "width",
        "height",
        "render_mode",
        "backend",
        "tile_size",
        "capacity",
        "near_plane",
        "far_plane",
        "eps2d",
        "config",
    ),
)
def _render(
    means,
    quats,
    scales,
    opacities,
    colors,
    viewmats,
    Ks,
    backgrounds,
    *,
    width,
    height,
    render_mode,
    backend,
    tile_size,
    capacity,
    near_plane,
    far_plane,
    eps2d,
    config,
):
    batch, n = means.shape[:-2], means.shape[-2]
    c = viewmats.shape[-3]
    n_img = math.prod(batch) * c

    def per_image(x):  # [*B, N, ...] -> [I, N, ...] (same Gaussians for each camera)
        x = jnp.broadcast_to(
            x[..., None, :, :] if x.ndim > len(batch) + 1 else x[..., None, :],
            (*batch, c, *x.shape[len(batch) :]),
        )
        return x.reshape(n_img, *x.shape[len(batch) + 1 :])

    proj = project_batch(
        per_image(means),
        per_image(quats),
        per_image(scales),
        per_image(opacities),
        viewmats.reshape(n_img, 4, 4),
        Ks.reshape(n_img, 3, 3),
        width,
        height,
        near_plane,
        far_plane,
        eps2d,
    )
    features = []
    if "RGB" in render_mode:
        features.append(per_image(colors))
    if "D" in render_mode:
        features.append(proj["depths"][..., None])
    feat = jnp.concatenate(features, -1)  # [I, N, D']
    d_out = feat.shape[-1]

    if backend == "reference":
        color, trans = composite_reference(proj, feat, width, height)
        count = count_intersections(proj["means2d"], proj["radii"], width, height, tile_size)
        binned = {
            "count": count,
            "active": count,
            "overflow": jnp.array(False),
            "dropped": jnp.array(0, jnp.int32),
        }
    else:
        binned = bin_gaussians(
            proj["means2d"],
            proj["radii"],
            proj["depths"],
            width,
            height,
            tile_size,
            capacity,
            conics=proj["conics"],
            opacities=proj["opacities"],
        )
        args = (
            proj["means2d"].reshape(-1, 2),
            proj["conics"].reshape(-1, 3),
            proj["opacities"].reshape(-1),
            feat.reshape(-1, d_out),
            binned["gaussian"],
            binned["ranges"],
            n_img,
            width,
            height,
        )
        if backend == "xla":
            out, t = composite_tiles_xla(*args, tile_size)  # [R, P, D], pixel-major
        else:
            out, t = composite_tiles(*args, config)  # [R, Dp, P], channel-major
            out = out.transpose(0, 2, 1)
        color, trans = _untile(out, t, n_img, width, height, tile_size)
        color = color[..., :d_out]

    alpha = 1.0 - trans[..., None]  # [I, H, W, 1]
    n_rgb = d_out - (1 if "D" in render_mode else 0)
    rgb, depth = color[..., :n_rgb], color[..., n_rgb:]
    if backgrounds is not None and n_rgb:
        rgb = rgb + trans[..., None] * backgrounds.reshape(n_img, 1, 1, n_rgb)
    if "ED" in render_mode:
        depth = depth / jnp.maximum(alpha, 1e-10)
    out = jnp.concatenate([rgb, depth], -1).reshape(*batch, c, height, width, d_out)
    meta = {
        "radii": proj["radii"].reshape(*batch, c, n, 2),
        "means2d": proj["means2d"].reshape(*batch, c, n, 2),
        "depths": proj["depths"].reshape(*batch, c, n),
        "conics": proj["conics"].reshape(*batch, c, n, 3),
        "n_invalid": jnp.sum(proj["invalid"]) // c,
        "n_intersections": binned["count"],
        "n_active": binned["active"],
        "overflow": binned["overflow"],
        "dropped": binned["dropped"],
    }
    return out, alpha.reshape(*batch, c, height, width, 1), meta


def resolve_backend(backend: str) -> str:
    """The backend ``backend`` names: ``"auto"`` is ``"pallas"`` on a GPU and ``"xla"``
    elsewhere; any other name is itself."""
    if backend == "auto":
        return "pallas" if jax.default_backend() == "gpu" else "xla"
    return backend


def rasterization(
    means,
    quats,
    scales,
    opacities,
    colors,
    viewmats,
    Ks,
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    backgrounds=None,
    render_mode: str = "RGB",
    tile_size: int = 16,
    backend: str = "auto",
    capacity: int | None = None,
    config: KernelConfig | None = None,
):
    """Render Gaussians into ``C`` cameras per batch element (gsplat-compatible).

    Args:
      means: ``[..., N, 3]`` world positions.  quats: ``[..., N, 4]`` wxyz (any norm > 0).
      scales: ``[..., N, 3]`` linear.  opacities: ``[..., N]`` in 0..1.
      colors: ``[..., N, D]`` any channel count (``None`` for ``"D"``/``"ED"``).
      viewmats: ``[..., C, 4, 4]`` world->camera.  Ks: ``[..., C, 3, 3]``.
      width, height: image size (ints).  near_plane, far_plane: depth culling,
        ``0 < near_plane < far_plane``.
      eps2d: low-pass dilation added to the 2D covariance (>= 0).
      backgrounds: ``[..., C, D]`` colour behind the Gaussians (RGB channels only; the
        depth-only modes ignore it, as gsplat does, and accept only ``None`` or ``[..., C, 1]``).
      render_mode: ``"RGB"``, ``"D"`` (accumulated depth), ``"ED"`` (expected depth),
        ``"RGB+D"``, ``"RGB+ED"``: depth is appended as the last channel.
      tile_size: tile side (power of two).
      backend: ``"pallas"`` (GPU kernels; interpreted on CPU, slow), ``"xla"`` (the same
        tile algorithm in plain XLA: the CPU path), ``"reference"`` (dense pure jnp, the
        oracle), ``"auto"`` (pallas on GPU, xla elsewhere).
      capacity: static number of tile-intersection slots (pallas and xla); ``None`` picks a
        heuristic.
      config: :class:`KernelConfig` for the Pallas backend.

    Returns:
      ``(render_colors [..., C, H, W, D(+1)], render_alphas [..., C, H, W, 1], meta)``.
      ``meta`` holds ``radii``, ``means2d``, ``depths``, ``conics`` per camera, and
      ``n_invalid`` (Gaussians culled for NaN/Inf, negative scale or zero quaternion),
      ``n_intersections`` (tile-box pairs: what ``capacity`` must hold), ``n_active`` (pairs
      left to composite after the exact ellipse-tile test; the box count on the reference
      backend), ``overflow`` and ``dropped`` (intersections beyond capacity),
      ``capacity``. Called eagerly, an overflow is retried once with enough capacity; under
      a caller's ``jit`` it cannot be, so read ``meta["overflow"]`` and raise ``capacity``.

    Raises:
      SplatInputError: one line naming the argument, the value and the fix. At trace time
        (also under ``jit``): wrong shapes, no Gaussians or no cameras, non-real dtypes,
        non-int or non-positive ``width``/``height``/``capacity``, ``tile_size`` not a power
        of two, ``near_plane <= 0``, ``far_plane <= near_plane``, negative or NaN ``eps2d``,
        an unknown ``render_mode`` or ``backend``. For concrete (non-traced) inputs only:
        NaN/Inf in any array, negative scales, zero quaternions, opacities outside 0..1.
        Traced, such Gaussians are culled and counted in ``meta["n_invalid"]``, and
        opacities above 1 meet gsplat's 0.999 alpha clamp.
    """
    width, height, near_plane, far_plane, eps2d, tile_size, capacity = check_static(
        width,
        height,
        near_plane,
        far_plane,
        eps2d,
        render_mode,
        backend,
        tile_size,
        capacity,
        config,
    )
    arrays = dict(
        means=means, quats=quats, scales=scales, opacities=opacities, viewmats=viewmats, Ks=Ks
    )
    means, quats, scales, opacities, viewmats, Ks = (as_float32(k, a) for k, a in arrays.items())
    colors = None if colors is None else as_float32("colors", colors)
    backgrounds = None if backgrounds is None else as_float32("backgrounds", backgrounds)
    check_shapes(means, quats, scales, opacities, colors, viewmats, Ks, backgrounds, render_mode)
    check_values(means, quats, scales, opacities, colors, viewmats, Ks, backgrounds)
    backend = resolve_backend(backend)
    if config is None:
        on_gpu = jax.default_backend() == "gpu"
        config = KernelConfig(tile_size=tile_size, interpret=not on_gpu, fast_math=on_gpu)
    n_img = math.prod(viewmats.shape[:-2])
    if capacity is None:
        capacity = default_capacity(n_img, means.shape[-2], width, height, tile_size)
    kwargs = dict(
        width=width,
        height=height,
        render_mode=render_mode,
        backend=backend,
        tile_size=tile_size,
        near_plane=near_plane,
        far_plane=far_plane,
        eps2d=eps2d,
        config=config,
    )
    args = (means, quats, scales, opacities, colors, viewmats, Ks, backgrounds)
    out, alphas, meta = _render(*args, capacity=capacity, **kwargs)
    eager = not isinstance(means, jax.core.Tracer)
    if eager and backend in ("pallas", "xla") and bool(meta["overflow"]):
        capacity = round_capacity(int(meta["n_intersections"]))
        out, alphas, meta = _render(*args, capacity=capacity, **kwargs)
    meta["capacity"] = capacity
    return out, alphas, meta
