"""Argument checks of :func:`~ggtalker_jax.kernels.splat.api.rasterization`: one
:class:`SplatInputError` line naming the argument, the value and the fix.

Shapes, dtypes and static values are checked at trace time (so also under a caller's
``jit``); values (NaN, negative scales, opacities outside 0..1) only on concrete arrays at
eager calls, since inside ``jit`` a bad Gaussian is culled and counted instead.
"""

from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

from ggtalker_jax.kernels.splat.config import KernelConfig, SplatInputError

RENDER_MODES = ("RGB", "D", "ED", "RGB+D", "RGB+ED")
BACKENDS = ("auto", "reference", "pallas", "xla")


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


def check_static(
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


def as_float32(name: str, value):
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


def check_shapes(means, quats, scales, opacities, colors, viewmats, Ks, backgrounds, render_mode):
    """Shapes (trace time): every mismatch is one :class:`SplatInputError` line."""
    batch, _ = _check_gaussians(means, quats, scales, opacities, colors, render_mode)
    c = _check_cameras(viewmats, Ks, batch)
    _check_backgrounds(backgrounds, colors, batch, c, render_mode)


def _finite(a, item_ndim: int):
    """Per item (the last ``item_ndim`` axes reduced): all entries finite."""
    return np.isfinite(a).all(axis=tuple(range(-item_ndim, 0))) if item_ndim else np.isfinite(a)


def check_values(means, quats, scales, opacities, colors, viewmats, Ks, backgrounds):
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
