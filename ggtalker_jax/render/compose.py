"""Compositing the rendered head into the original frame: the Body Inpainter's image math.

Pure ``jnp`` functions (no parameters), shared by the inpainter's training examples, its
evaluation, adaptation and inference. Conventions:

- images ``[..., H, W, 3]`` float in 0..1; masks ``[..., H, W]`` float 0..1 (or bool);
- the rendered head is *premultiplied*: ``head_rgb`` is its colour over a black background
  (what :func:`ggtalker_jax.render.head.render_gaussians` returns with ``background=None``)
  and ``head_alpha`` its accumulated opacity, so the head "over" an image ``x`` is
  ``head_rgb + (1 - head_alpha) · x``;
- the *hole* is the region the inpainter may repaint: the head (rendered or in the frame)
  grown by a radius, so the seam between the new head and the old frame lies in the
  neck, collar and background, where the inpainter blends. Outside the hole the final frame
  is the original frame, bit for bit (:func:`composite`).

Every function is jitted (for eager callers; inside a jit it inlines), as in
:mod:`ggtalker_jax.eval.metrics`.

Dilation is Euclidean (a disk of radius ``r`` pixels) and works with a radius that differs
per image inside ``jit`` (training draws one per example): a truncated, separable distance
transform (the two-pass construction of Meijster et al. 2000, with the second pass a
brute-force minimum over the ``2R + 1`` rows of a static window instead of a lower
envelope) gives every pixel's squared distance to the mask, capped at the static
``max_radius`` ``R``; thresholding it at ``r²`` is the dilation. It costs ``2 (2R + 1)``
shifted minima of the image, which XLA fuses: about 126 elementwise passes at ``R = 31``
(30 px at 512²).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from ggtalker_jax.errors import InputError

__all__ = [
    "ALPHA_THRESHOLD",
    "composite",
    "dilate_mask",
    "hole_mask",
    "inpainter_inputs",
    "over",
    "shift_image",
    "squared_distance_to_mask",
]

ALPHA_THRESHOLD = 0.1
"""Rendered opacity above which a pixel counts as head when the hole is cut: the faint fringe
below it lies within the dilation radius anyway (the splat footprint is a pixel or two)."""

_FAR = 1e9  # "no mask pixel within the window" (squared pixels; far above any R²)


def _shift_axis(x: jax.Array, k: int, axis: int, fill) -> jax.Array:
    """``y[i] = x[i + k]`` along ``axis`` (``fill`` where ``i + k`` is off the image)."""
    n = x.shape[axis]
    if k == 0:
        return x
    if abs(k) >= n:
        return jnp.full_like(x, fill)
    pad = [(0, 0)] * x.ndim
    pad[axis] = (0, k) if k > 0 else (-k, 0)
    padded = jnp.pad(x, pad, constant_values=fill)
    start = k if k > 0 else 0
    return jax.lax.slice_in_dim(padded, start, start + n, axis=axis)


@functools.partial(jax.jit, static_argnames="max_radius")
def squared_distance_to_mask(mask: jax.Array, max_radius: int) -> jax.Array:
    """Squared Euclidean distance, in pixels², from each pixel to the nearest mask pixel,
    exact up to ``max_radius`` (farther pixels get a large value, 1e9).

    Args:
      mask: ``[..., H, W]``; a pixel is in the mask where it is above 0.5 (or ``True``).
      max_radius: ``R``, static: the window is ``(2R + 1)²`` pixels.

    Returns:
      ``[..., H, W]`` float32; 0 on the mask.
    """
    mask = jnp.asarray(mask)
    inside = mask if mask.dtype == bool else mask > 0.5
    big = jnp.float32(_FAR)
    zero = jnp.where(inside, jnp.float32(0.0), big)  # [..., H, W]
    # Pass 1, along W: g(y, x) = min_{|k| <= R} k² where (y, x + k) is in the mask.
    g = zero
    for k in range(1, max_radius + 1):
        cost = jnp.float32(k * k)
        near = jnp.minimum(_shift_axis(zero, k, -1, big), _shift_axis(zero, -k, -1, big))
        g = jnp.minimum(g, near + cost)
    # Pass 2, along H: D(y, x) = min_{|j| <= R} g(y + j, x) + j².
    d = g
    for j in range(1, max_radius + 1):
        cost = jnp.float32(j * j)
        near = jnp.minimum(_shift_axis(g, j, -2, big), _shift_axis(g, -j, -2, big))
        d = jnp.minimum(d, near + cost)
    return jnp.minimum(d, big)


def dilate_mask(mask: jax.Array, radius, max_radius: int | None = None) -> jax.Array:
    """Grow a mask by a disk of ``radius`` pixels.

    Args:
      mask: ``[..., H, W]`` float 0..1 or bool; pixels above 0.5 are in the mask.
      radius: pixels (a disk: every pixel within Euclidean distance ``radius`` of a mask
        pixel joins): a Python number, or an array broadcastable to the leading shape
        ``[...]`` (a traced value, one per image).
      max_radius: the largest radius any image may have (static); needed when ``radius``
        is traced, else ``ceil(radius)``. A radius above it is cut to it.

    Returns:
      ``[..., H, W]`` float32 0/1.

    Raises:
      InputError: (trace time) a traced radius without ``max_radius``, a negative
        ``max_radius``, or a radius that does not broadcast to the leading shape.
    """
    mask = jnp.asarray(mask)
    lead = tuple(mask.shape[:-2])
    if max_radius is None:
        try:
            largest = float(jnp.max(jnp.asarray(radius)))
        except jax.errors.ConcretizationTypeError:
            raise InputError(
                "dilate_mask: the radius is traced; pass max_radius=<largest radius, px> "
                "(static) so the window size is known"
            ) from None
        max_radius = max(0, math.ceil(largest))
    if max_radius < 0:
        raise InputError(f"dilate_mask: max_radius={max_radius}; give 0 or more pixels")
    r = jnp.asarray(radius, jnp.float32)
    if r.ndim > len(lead) or r.shape != lead[len(lead) - r.ndim :]:
        raise InputError(
            f"dilate_mask: radius of shape {r.shape} does not match the masks' leading shape "
            f"{lead}; give one radius or one per image"
        )
    return _dilate(mask, jnp.broadcast_to(r, lead), int(max_radius))


@functools.partial(jax.jit, static_argnames="max_radius")
def _dilate(mask: jax.Array, radius: jax.Array, max_radius: int) -> jax.Array:
    """:func:`dilate_mask` with ``radius [...]`` and a static ``max_radius``."""
    r = jnp.minimum(radius, float(max_radius))[..., None, None]  # [..., 1, 1]
    return (squared_distance_to_mask(mask, max_radius) <= r * r).astype(jnp.float32)


def _shift_axis_bilinear(image: jax.Array, shift: jax.Array, axis: int) -> jax.Array:
    """Shift one image ``[H, W, C]`` by ``shift`` (scalar) pixels along ``axis`` (0 rows,
    1 columns), bilinearly, with zeros coming in from outside."""
    n = image.shape[axis]
    source = jnp.arange(n, dtype=jnp.float32) - shift  # [n]: where each output pixel reads
    lower = jnp.floor(source)
    frac = source - lower
    lower = lower.astype(jnp.int32)
    shape = [1, 1, 1]
    shape[axis] = n

    def tap(index: jax.Array, weight: jax.Array) -> jax.Array:
        inside = (index >= 0) & (index < n)
        weight = jnp.where(inside, weight, 0.0).astype(image.dtype).reshape(shape)
        return jnp.take(image, jnp.clip(index, 0, n - 1), axis=axis) * weight

    return tap(lower, 1.0 - frac) + tap(lower + 1, frac)


@jax.jit
def shift_image(image: jax.Array, dx, dy) -> jax.Array:
    """Translate images by ``(dx, dy)`` pixels (``+x`` right, ``+y`` down), bilinearly; what
    comes in from outside the image is zero. Integer shifts copy pixels exactly.

    Args:
      image: ``[..., H, W, C]`` float.
      dx, dy: shifts in pixels, scalars or ``[...]`` (one per image; may be traced).

    Returns:
      ``[..., H, W, C]``: ``out[y, x] = image[y - dy, x - dx]``.
    """
    image = jnp.asarray(image)
    lead = tuple(image.shape[:-3])
    dx = jnp.broadcast_to(jnp.asarray(dx, jnp.float32), lead)
    dy = jnp.broadcast_to(jnp.asarray(dy, jnp.float32), lead)

    def one(x, sx, sy):  # [H, W, C], scalars
        return _shift_axis_bilinear(_shift_axis_bilinear(x, sx, 1), sy, 0)

    for _ in lead:
        one = jax.vmap(one)
    return one(image, dx, dy)


def hole_mask(head_alpha: jax.Array, frame_head_mask: jax.Array, radius, max_radius=None):
    """The region the inpainter repaints: where the rendered head is (``alpha >``
    :data:`ALPHA_THRESHOLD`) or the frame's own head was, grown by ``radius`` pixels.

    Args:
      head_alpha: ``[..., H, W]`` rendered opacity.
      frame_head_mask: ``[..., H, W]`` the original frame's head mask (0/1).
      radius, max_radius: as :func:`dilate_mask`.

    Returns:
      ``[..., H, W]`` float32 0/1.
    """
    return dilate_mask(_head_union(head_alpha, frame_head_mask), radius, max_radius)


@jax.jit
def _head_union(head_alpha: jax.Array, frame_head_mask: jax.Array) -> jax.Array:
    """``[..., H, W]`` bool: rendered head or frame head."""
    alpha = jnp.asarray(head_alpha, jnp.float32)
    return (alpha > ALPHA_THRESHOLD) | (jnp.asarray(frame_head_mask, jnp.float32) > 0.5)


@jax.jit
def inpainter_inputs(head_rgb, head_alpha, frame, hole) -> jax.Array:
    """The inpainter's 8 input channels.

    Args:
      head_rgb: ``[..., H, W, 3]`` premultiplied rendered head.
      head_alpha: ``[..., H, W]``.
      frame: ``[..., H, W, 3]`` the original frame.
      hole: ``[..., H, W]`` (:func:`hole_mask`).

    Returns:
      ``[..., H, W, 8]`` float32: head RGB, alpha, the frame with the hole blacked out,
      the hole.
    """
    hole = jnp.asarray(hole, jnp.float32)[..., None]
    frame = jnp.asarray(frame, jnp.float32)
    return jnp.concatenate(
        [
            jnp.asarray(head_rgb, jnp.float32),
            jnp.asarray(head_alpha, jnp.float32)[..., None],
            frame * (1.0 - hole),
            hole,
        ],
        axis=-1,
    )


@jax.jit
def over(head_rgb, head_alpha, image) -> jax.Array:
    """The premultiplied head over ``image``: ``head_rgb + (1 - alpha) · image``
    (``[..., H, W, 3]``; alpha ``[..., H, W]``)."""
    alpha = jnp.asarray(head_alpha, jnp.float32)[..., None]
    return jnp.asarray(head_rgb, jnp.float32) + (1.0 - alpha) * jnp.asarray(image, jnp.float32)


@jax.jit
def composite(pred, frame, hole) -> jax.Array:
    """``hole · pred + (1 - hole) · frame``: the prediction inside the hole, the original
    frame (exactly, for a 0/1 hole) outside. ``[..., H, W, 3]``; hole ``[..., H, W]``."""
    h = jnp.asarray(hole, jnp.float32)[..., None]
    frame = jnp.asarray(frame, jnp.float32)
    blended = h * jnp.asarray(pred, jnp.float32) + (1.0 - h) * frame
    # A select, so the outside is the frame bit for bit even where pred is not finite.
    return jnp.where(h == 0.0, frame, blended)
