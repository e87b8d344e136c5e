"""``rasterization``: gsplat-compatible Gaussian splatting with JAX backends.

Conventions (as gsplat 1.5): ``quats`` wxyz, linear ``scales``, ``opacities`` in 0..1,
``viewmats`` world->camera with +z forward and +y down, OpenCV ``Ks``, pixel centres at +0.5.
"""

from __future__ import annotations

import functools
import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

from ggtalker_jax.kernels.splat.binning import (
    bin_gaussians,
    count_intersections,
    default_capacity,
    round_capacity,
    tile_grid,
)
from ggtalker_jax.kernels.splat.config import KernelConfig
from ggtalker_jax.kernels.splat.projection import project_batch
from ggtalker_jax.kernels.splat.reference import composite_reference
from ggtalker_jax.kernels.splat.vjp import composite_tiles

RENDER_MODES = ("RGB", "D", "ED", "RGB+D", "RGB+ED")
BACKENDS = ("auto", "reference", "pallas")


class SplatInputError(ValueError):
    """Bad arguments to :func:`rasterization`: one line naming the argument and the fix."""


def _show(value) -> str:
    """A one-line repr of an argument for an error message (arrays by shape and dtype)."""
    text = repr(value)
    if "\n" in text or len(text) > 60:
        shape, dtype = getattr(value, "shape", "?"), getattr(value, "dtype", "?")
        text = f"<{type(value).__name__} shape={shape} dtype={dtype}>"
    return text


def _dims(*dims) -> str:
    """An expected shape, letters for free sizes: ``[2, C, 4, 4]``."""
    return "[" + ", ".join(str(d) for d in dims) + "]"


def _int_arg(name: str, value, what: str) -> int:
    """``value`` as a Python int >= 1 (NumPy integers too; bools and floats refused)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral) or value < 1:
        raise SplatInputError(f"{name}={_show(value)}: pass an int >= 1 ({what})")
    return int(value)


def _float_arg(name: str, value, what: str) -> float:
    """``value`` as a Python float (NumPy scalars too; bools, arrays and tracers refused)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise SplatInputError(f"{name}={_show(value)}: pass a Python float ({what})")
    return float(value)


def _check_static(
    width, height, near_plane, far_plane, eps2d, render_mode, backend, tile_size, capacity, config
):
    """The static (hashable, trace-time) arguments, returned as Python ints and floats:
    ``(width, height, near_plane, far_plane, eps2d, tile_size, capacity)``."""
    if not isinstance(render_mode, str) or render_mode not in RENDER_MODES:
        raise SplatInputError(f"render_mode={render_mode!r}; choose one of {RENDER_MODES}")
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise SplatInputError(f"backend={backend!r}; choose one of {BACKENDS}")
    width = _int_arg("width", width, "the image width in pixels")
    height = _int_arg("height", height, "the image height in pixels")
    tile_size = _int_arg("tile_size", tile_size, "a power of two, 16 by default")
    if tile_size & (tile_size - 1):
        raise SplatInputError(f"tile_size={tile_size}: pass a power of two, 16 by default")
    if capacity is not None:
        capacity = _int_arg("capacity", capacity, "tile-intersection slots; None picks a guess")
    if config is not None and not isinstance(config, KernelConfig):
        raise SplatInputError(f"config={_show(config)}: pass a KernelConfig or None")
    if config is not None and config.tile_size != tile_size:
        raise SplatInputError(
            f"config.tile_size={config.tile_size} != tile_size={tile_size}; pass the same to both"
        )
    near = _float_arg("near_plane", near_plane, "camera-space z, 0.01 by default")
    far = _float_arg("far_plane", far_plane, "camera-space z, 1e10 by default")
    eps = _float_arg("eps2d", eps2d, "pixels², 0.3 by default")
    if not 0 < near < math.inf:
        raise SplatInputError(f"near_plane={near}: pass a finite value > 0 (0.01 by default)")
    if not far > near:  # also refuses NaN; an infinite far plane is fine
        raise SplatInputError(
            f"far_plane={far} must exceed near_plane={near}; pass near_plane < far_plane"
        )
    if not 0 <= eps < math.inf:
        raise SplatInputError(
            f"eps2d={eps}: pass a finite value >= 0 (the 2D low-pass dilation, 0.3 by default)"
        )
    return width, height, near, far, eps, tile_size, capacity


def _as_float32(name: str, value):
    """``value`` as a float32 array: real numbers only (integers convert; bools, complex
    numbers, strings and ragged lists are refused instead of silently cast)."""
    if value is None:
        raise SplatInputError(f"{name} is None; pass an array")
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        try:
            dtype = np.asarray(value).dtype
        except ValueError:
            raise SplatInputError(
                f"{name} is not a rectangular array ({type(value).__name__} of uneven rows)"
            ) from None
    if not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)):
        raise SplatInputError(f"{name} has dtype {dtype}; pass real numbers (float32 is used)")
    return jnp.asarray(value, jnp.float32)


def _check_gaussians(means, quats, scales, opacities, colors, render_mode):
    """Per-Gaussian shapes; returns the batch dims and ``N``."""
    if means.ndim < 2 or means.shape[-1] != 3:
        raise SplatInputError(f"means has shape {tuple(means.shape)}; expected [..., N, 3]")
    batch, n = tuple(means.shape[:-2]), means.shape[-2]
    if n == 0:
        raise SplatInputError(
            f"means has shape {tuple(means.shape)}: it holds 0 Gaussians; pass at least one"
        )
    if 0 in batch:
        raise SplatInputError(
            f"means has shape {tuple(means.shape)}: a batch axis of size 0; pass at least one scene"
        )
    want = {
        "quats": (quats, (*batch, n, 4)),
        "scales": (scales, (*batch, n, 3)),
        "opacities": (opacities, (*batch, n)),
    }
    for name, (arr, shape) in want.items():
        if tuple(arr.shape) != shape:
            raise SplatInputError(
                f"{name} has shape {tuple(arr.shape)}; expected {_dims(*shape)} "
                f"to match means {tuple(means.shape)}"
            )
    if colors is None:
        if "RGB" in render_mode:
            raise SplatInputError(
                f"colors is None; render_mode={render_mode!r} needs colors {_dims(*batch, n, 'D')}"
            )
        return batch, n
    if colors.ndim != means.ndim or tuple(colors.shape[:-1]) != (*batch, n):
        raise SplatInputError(
            f"colors has shape {tuple(colors.shape)}; expected {_dims(*batch, n, 'D')} "
            "(one row per Gaussian; evaluate spherical harmonics to colours first)"
        )
    if colors.shape[-1] == 0:
        raise SplatInputError(
            f"colors has shape {tuple(colors.shape)}: 0 channels; pass at least one"
        )
    return batch, n


def _check_camera_shape(name: str, arr, batch, cameras, matrix):
    """``arr`` is ``[*batch, C, *matrix]``; ``cameras`` is C, or None to read it off ``arr``."""
    shape = tuple(arr.shape)
    found = shape[len(batch)] if len(shape) == len(batch) + 3 else None
    c = found if cameras is None else cameras
    if c is not None and shape == (*batch, c, *matrix):
        return
    expected = f"{name} has shape {shape}; expected {_dims(*batch, cameras or 'C', *matrix)}"
    if shape == (*batch, *matrix):  # the camera axis left out
        fix = f"{name}[None]" if not batch else f"{name}[..., None, :, :]"
        if cameras not in (None, 1):
            fix = f"jnp.broadcast_to({name}[..., None, :, :], {(*batch, cameras, *matrix)})"
        raise SplatInputError(f"{expected}: add a camera axis: {fix}")
    where = f" (the batch dims {batch} of means, then cameras)" if batch else ""
    raise SplatInputError(expected + where)


def _check_cameras(viewmats, Ks, batch):
    """Camera shapes: ``viewmats [*B, C, 4, 4]`` and ``Ks [*B, C, 3, 3]``; returns ``C``."""
    _check_camera_shape("viewmats", viewmats, batch, None, (4, 4))
    c = viewmats.shape[-3]
    if c == 0:
        raise SplatInputError(
            f"viewmats has shape {tuple(viewmats.shape)}: 0 cameras; pass at least one"
        )
    _check_camera_shape("Ks", Ks, batch, c, (3, 3))
    return c


def _check_backgrounds(backgrounds, colors, batch, c, render_mode):
    """``backgrounds [*B, C, D]`` for the colour channels. The depth-only modes have none, so
    there (as in gsplat, which swaps them for zeros) they are ignored: None or ``[*B, C, 1]``."""
    if backgrounds is None:
        return
    d = colors.shape[-1] if "RGB" in render_mode else 1
    if tuple(backgrounds.shape) == (*batch, c, d):
        return
    if "RGB" in render_mode:
        raise SplatInputError(
            f"backgrounds has shape {tuple(backgrounds.shape)}; expected {_dims(*batch, c, d)} "
            "(one colour per camera, the channels of colors)"
        )
    raise SplatInputError(
        f"backgrounds has shape {tuple(backgrounds.shape)}; render_mode={render_mode!r} has "
        "no colour channels: pass backgrounds=None (they are ignored in depth-only modes)"
    )


def _check_shapes(means, quats, scales, opacities, colors, viewmats, Ks, backgrounds, render_mode):
    """Shapes (trace time): every mismatch is one :class:`SplatInputError` line."""
    batch, _ = _check_gaussians(means, quats, scales, opacities, colors, render_mode)
    c = _check_cameras(viewmats, Ks, batch)
    _check_backgrounds(backgrounds, colors, batch, c, render_mode)


def _finite(a, item_ndim: int):
    """Per item (the last ``item_ndim`` axes reduced): all entries finite."""
    return np.isfinite(a).all(axis=tuple(range(-item_ndim, 0))) if item_ndim else np.isfinite(a)


def _check_values(means, quats, scales, opacities, colors, viewmats, Ks, backgrounds):
    """Host entry (concrete arrays only; tracers are skipped, jit culls and counts instead):
    refuse NaN/Inf anywhere, negative scales, zero quaternions, opacities outside [0, 1]."""
    drop = "fix or drop them"
    checks = [
        ("means", means, "Gaussian", lambda a: _finite(a, 1), "finite", drop),
        (
            "scales",
            scales,
            "Gaussian",
            lambda a: _finite(a, 1) & (a >= 0).all(-1),
            "finite and >= 0",
            f"{drop} (scales are linear, not log)",
        ),
        (
            "quats",
            quats,
            "Gaussian",
            lambda a: _finite(a, 1) & ((a * a).sum(-1) > 0),
            "finite with non-zero norm",
            drop,
        ),
        (
            "opacities",
            opacities,
            "Gaussian",
            lambda a: _finite(a, 0) & (a >= 0) & (a <= 1),
            "finite and in [0, 1]",
            f"{drop} (opacities are probabilities: pass sigmoid(logits))",
        ),
        ("colors", colors, "Gaussian", lambda a: _finite(a, 1), "finite", drop),
        ("viewmats", viewmats, "camera", lambda a: _finite(a, 2), "finite", "fix them"),
        ("Ks", Ks, "camera", lambda a: _finite(a, 2), "finite", "fix them"),
        ("backgrounds", backgrounds, "camera", lambda a: _finite(a, 1), "finite", "fix them"),
    ]
    for name, arr, unit, ok, want, fix in checks:
        if arr is None or isinstance(arr, jax.core.Tracer):
            continue
        good = ok(np.asarray(arr))
        if not good.all():
            first = np.argwhere(~good)[0].tolist()
            raise SplatInputError(
                f"{name}: {int((~good).sum())} {unit}(s) are not {want} "
                f"(first at index {first}); {fix}"
            )


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
        out, t = composite_tiles(
            proj["means2d"].reshape(-1, 2),
            proj["conics"].reshape(-1, 3),
            proj["opacities"].reshape(-1),
            feat.reshape(-1, d_out),
            binned["gaussian"],
            binned["ranges"],
            n_img,
            width,
            height,
            config,
        )
        tiles_x, tiles_y = tile_grid(width, height, tile_size)
        shape = (n_img, tiles_y, tiles_x, tile_size, tile_size)
        dp = out.shape[1]  # [R, Dp, P], channel-major per tile
        color = (
            out.reshape(n_img, tiles_y, tiles_x, dp, tile_size, tile_size)
            .transpose(0, 1, 4, 2, 5, 3)
            .reshape(n_img, tiles_y * tile_size, tiles_x * tile_size, dp)[
                :, :height, :width, :d_out
            ]
        )
        trans = (
            t.reshape(shape)
            .transpose(0, 1, 3, 2, 4)
            .reshape(n_img, tiles_y * tile_size, tiles_x * tile_size)[:, :height, :width]
        )

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
      backend: ``"pallas"`` (GPU kernels; interpreted on CPU, slow), ``"reference"``
        (pure jnp), ``"auto"`` (pallas on GPU, reference elsewhere).
      capacity: static number of tile-intersection slots; ``None`` picks a heuristic.
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
    width, height, near_plane, far_plane, eps2d, tile_size, capacity = _check_static(
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
    means, quats, scales, opacities, viewmats, Ks = (_as_float32(k, a) for k, a in arrays.items())
    colors = None if colors is None else _as_float32("colors", colors)
    backgrounds = None if backgrounds is None else _as_float32("backgrounds", backgrounds)
    _check_shapes(means, quats, scales, opacities, colors, viewmats, Ks, backgrounds, render_mode)
    _check_values(means, quats, scales, opacities, colors, viewmats, Ks, backgrounds)
    if backend == "auto":
        backend = "pallas" if jax.default_backend() == "gpu" else "reference"
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
    if eager and backend == "pallas" and bool(meta["overflow"]):
        capacity = round_capacity(int(meta["n_intersections"]))
        out, alphas, meta = _render(*args, capacity=capacity, **kwargs)
    meta["capacity"] = capacity
    return out, alphas, meta
