"""The Body Inpainter and its image math: disk dilation against scipy on random masks (one
radius per image, traced), jitter, the hole and the composite, the network's shapes, the
exact background outside the hole, its start at the composited head, save -> load, and
one-line shape errors."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage as ndi
from flax import nnx

from ggtalker_jax.config.inpainter import InpainterConfig, InpainterDataConfig
from ggtalker_jax.errors import InputError
from ggtalker_jax.models.inpainter import BodyInpainter, hole_radius
from ggtalker_jax.render.compose import (
    ALPHA_THRESHOLD,
    composite,
    dilate_mask,
    hole_mask,
    inpainter_inputs,
    over,
    shift_image,
    squared_distance_to_mask,
)

B, S = 2, 32
TINY = InpainterConfig(widths=(4, 8, 8), data=InpainterDataConfig(image_size=S))


def _disk_reference(mask: np.ndarray, radius: float) -> np.ndarray:
    """scipy's binary dilation with the disk x² + y² <= r²."""
    r = int(np.floor(radius))
    if r == 0:
        return mask.copy()
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    return ndi.binary_dilation(mask, structure=x * x + y * y <= radius * radius)


@functools.partial(jax.jit, static_argnames="max_radius")
def _dilate(mask, radius, max_radius):
    return dilate_mask(mask, radius, max_radius)


@pytest.mark.parametrize("shape", [(3, 24, 31), (2, 2, 17, 16)])
def test_dilation_with_a_traced_radius_per_image_matches_scipy(rng, shape):
    density = rng.uniform(0.005, 0.05)
    masks = rng.uniform(size=shape) < density
    masks[(0,) * (len(shape) - 2)][:3, :4] = True  # a block on the border
    lead = shape[:-2]
    radii = rng.uniform(0.0, 6.5, size=lead).astype(np.float32)
    radii.reshape(-1)[0] = 0.0  # radius 0 is the mask itself
    out = np.asarray(_dilate(jnp.asarray(masks), jnp.asarray(radii), max_radius=7))
    assert out.shape == shape and out.dtype == np.float32
    for index in np.ndindex(*lead):
        want = _disk_reference(masks[index], float(radii[index]))
        np.testing.assert_array_equal(out[index], want.astype(np.float32), err_msg=str(index))


def test_dilation_of_soft_masks_and_python_radius(rng):
    soft = rng.uniform(size=(20, 22)).astype(np.float32) ** 8  # mostly below 0.5
    out = np.asarray(dilate_mask(soft, 3))
    np.testing.assert_array_equal(out, _disk_reference(soft > 0.5, 3.0).astype(np.float32))
    # A radius above max_radius is cut to it.
    capped = np.asarray(dilate_mask(soft, 9.0, max_radius=2))
    np.testing.assert_array_equal(capped, _disk_reference(soft > 0.5, 2.0).astype(np.float32))


def test_squared_distance_matches_the_euclidean_distance_transform(rng):
    mask = rng.uniform(size=(19, 23)) < 0.03
    mask[0, 0] = True
    d2 = np.asarray(squared_distance_to_mask(mask, 30))  # the window covers the image
    want = np.round(ndi.distance_transform_edt(~mask) ** 2)  # integers, up to float noise
    np.testing.assert_array_equal(d2, want)
    # A 5x5 window (R = 2): exact up to 8 = 2² + 2², "far" beyond.
    near = np.asarray(squared_distance_to_mask(mask, 2))
    np.testing.assert_array_equal(near[want <= 8], want[want <= 8])
    assert np.all(near[want > 8] >= 1e8)


def test_traced_radius_needs_max_radius():
    with pytest.raises(InputError, match="max_radius") as err:
        jax.jit(lambda m, r: dilate_mask(m, r))(jnp.zeros((1, 8, 8)), jnp.ones((1,)))
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="leading shape"):
        dilate_mask(jnp.zeros((2, 8, 8)), jnp.ones((3,)))


def test_shift_image_integer_is_exact_and_fractional_is_bilinear(rng):
    image = jnp.asarray(rng.uniform(size=(2, 9, 11, 3)), jnp.float32)
    out = np.asarray(shift_image(image, jnp.asarray([2.0, -3.0]), jnp.asarray([-1.0, 4.0])))
    x = np.asarray(image)
    want = np.zeros_like(x)
    want[0, :-1, 2:] = x[0, 1:, :-2]  # right 2, up 1
    want[1, 4:, :-3] = x[1, :-4, 3:]  # left 3, down 4
    np.testing.assert_array_equal(out, want)
    half = np.asarray(shift_image(image[0], 0.5, 0.0))
    np.testing.assert_allclose(half[:, 1:], 0.5 * (x[0, :, 1:] + x[0, :, :-1]), atol=1e-6)
    np.testing.assert_allclose(half[:, 0], 0.5 * x[0, :, 0], atol=1e-6)
    # One fractional shift per image, in both axes: separable linear interpolation.
    out = np.asarray(shift_image(image, jnp.asarray([0.25, -1.5]), jnp.asarray([0.0, 0.75])))
    np.testing.assert_allclose(out[0, :, 1:], 0.75 * x[0, :, 1:] + 0.25 * x[0, :, :-1], atol=1e-6)
    cols = 0.5 * x[1, :, 1:-1] + 0.5 * x[1, :, 2:]  # x - (-1.5): between x + 1 and x + 2
    rows = 0.25 * cols[1:] + 0.75 * cols[:-1]  # y - 0.75: between y - 1 and y
    np.testing.assert_allclose(out[1, 1:, :-2], rows, atol=1e-6)


def test_hole_inputs_over_and_composite(rng):
    alpha = jnp.asarray(rng.uniform(size=(B, 16, 16)) ** 4, jnp.float32)
    head = jnp.asarray(rng.uniform(size=(B, 16, 16)) < 0.05, jnp.float32)
    hole = np.asarray(hole_mask(alpha, head, 2))
    union = (np.asarray(alpha) > ALPHA_THRESHOLD) | (np.asarray(head) > 0.5)
    for i in range(B):
        np.testing.assert_array_equal(hole[i], _disk_reference(union[i], 2.0))
    frame = jnp.asarray(rng.uniform(size=(B, 16, 16, 3)), jnp.float32)
    rgb = jnp.asarray(rng.uniform(size=(B, 16, 16, 3)), jnp.float32) * alpha[..., None]
    x = np.asarray(inpainter_inputs(rgb, alpha, frame, hole))
    assert x.shape == (B, 16, 16, 8)
    np.testing.assert_array_equal(x[..., 4:7], np.asarray(frame) * (1.0 - hole[..., None]))
    np.testing.assert_array_equal(x[..., 7], hole)
    np.testing.assert_allclose(
        np.asarray(over(rgb, alpha, frame)),
        np.asarray(rgb) + (1 - np.asarray(alpha))[..., None] * np.asarray(frame),
        rtol=1e-6,
    )
    pred = jnp.full_like(frame, jnp.nan)  # even a broken prediction leaves the outside
    out = np.asarray(composite(pred, frame, hole))
    np.testing.assert_array_equal(out[hole == 0], np.asarray(frame)[hole == 0])
    assert np.isnan(out[hole == 1]).all()


# --------------------------------------------------------------------------- the network


@jax.jit
def _apply(graphdef, state, head_rgb, head_alpha, frame, hole):
    return nnx.merge(graphdef, state)(head_rgb, head_alpha, frame, hole)


def _inputs(rng, size=S):
    alpha = np.zeros((B, size, size), np.float32)
    alpha[:, size // 4 : 3 * size // 4, size // 3 : 2 * size // 3] = 1.0
    alpha[:, size // 4 - 1] = 0.5  # a soft edge
    frame = rng.uniform(size=(B, size, size, 3)).astype(np.float32)
    head = rng.uniform(size=(B, size, size, 3)).astype(np.float32) * alpha[..., None]
    hole = np.asarray(hole_mask(alpha, alpha, 3))
    return tuple(jnp.asarray(a) for a in (head, alpha, frame, hole))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_shapes_exact_background_and_start_at_the_composited_head(rng, dtype):
    config = InpainterConfig(
        widths=(4, 8, 8), compute_dtype=dtype, data=InpainterDataConfig(image_size=S)
    )
    inpainter = BodyInpainter(config, nnx.Rngs(0))
    head, alpha, frame, hole = _inputs(rng)
    out = np.asarray(_apply(*nnx.split(inpainter), head, alpha, frame, hole))
    assert out.shape == (B, S, S, 3) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    outside = np.asarray(hole) == 0
    assert outside.any() and (~outside).any()
    np.testing.assert_array_equal(out[outside], np.asarray(frame)[outside])
    # A fresh network: the head over the holed frame (black in the rest of the hole).
    holed = np.asarray(frame) * (1.0 - np.asarray(hole))[..., None]
    base = np.clip(np.asarray(over(head, alpha, holed)), 0.0, 1.0)
    np.testing.assert_array_equal(out[~outside], base[~outside])
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(nnx.state(inpainter)))


def test_save_load_gives_identical_outputs_without_retracing(rng, count_traces):
    inpainter = BodyInpainter(TINY, nnx.Rngs(1))
    last = inpainter.unet.out.conv.kernel
    last[...] = jnp.asarray(rng.normal(scale=0.1, size=last.shape), jnp.float32)
    inputs = _inputs(rng)
    out = np.asarray(_apply(*nnx.split(inpainter), *inputs))
    holed = np.asarray(inputs[2]) * (1.0 - np.asarray(inputs[3]))[..., None]
    assert np.abs(out - np.clip(np.asarray(over(*inputs[:2], holed)), 0, 1)).max() > 1e-3
    saved = jax.tree.map(np.asarray, nnx.state(inpainter))
    fresh = BodyInpainter(TINY, nnx.Rngs(2))
    nnx.update(fresh, saved)
    with count_traces() as traces:
        again = np.asarray(_apply(*nnx.split(fresh), *inputs))
    np.testing.assert_array_equal(again, out)
    assert traces() == 0


def test_the_inference_radius_is_the_middle_of_the_training_range():
    assert hole_radius(TINY.data, S) == pytest.approx(0.04 * S)
    assert hole_radius(InpainterDataConfig(min_dilation=0.0, max_dilation=0.1), 512) == 25.6


@pytest.mark.parametrize(
    "change, message",
    [
        ({"size": 34}, "multiples of 4"),
        ({"alpha": (B, S, S, 1)}, "head_alpha has shape"),
        ({"hole": (B, S, S - 4)}, "hole has shape"),
        ({"frame": (B, S, S)}, "give [B, H, W, 3] images"),
    ],
)
def test_bad_shapes_are_one_line_errors_at_trace_time(rng, change, message):
    size = change.get("size", S)
    head, alpha, frame, hole = _inputs(rng, size)
    if "alpha" in change:
        alpha = jnp.zeros(change["alpha"], jnp.float32)
    if "hole" in change:
        hole = jnp.zeros(change["hole"], jnp.float32)
    if "frame" in change:
        frame = jnp.zeros(change["frame"], jnp.float32)
    inpainter = BodyInpainter(TINY, nnx.Rngs(0))
    with pytest.raises(InputError) as err:
        _apply(*nnx.split(inpainter), head, alpha, frame, hole)
    assert message in str(err.value) and "\n" not in str(err.value)
