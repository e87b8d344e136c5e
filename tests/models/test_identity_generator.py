"""The Identity-Gaussian Generator at tiny sizes: shapes, the initial map, image dependence,
visibility, one optimizer step, save -> load, no retracing.

Every jitted function lives at module scope and every test calls it with the same shapes,
so the suite compiles the forward once and the training step once (per xdist worker).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from ggtalker_jax.config.e2v import E2VConfig, E2VDataConfig
from ggtalker_jax.errors import InputError
from ggtalker_jax.flame import load_flame
from ggtalker_jax.geometry.camera import portrait_camera
from ggtalker_jax.geometry.rigging import decode_texels
from ggtalker_jax.geometry.uv import MAP_SLICES, surface_points
from ggtalker_jax.models.identity_generator import IdentityGenerator, lift_texels
from ggtalker_jax.models.layers import sample_bilinear
from ggtalker_jax.render.head import make_head_template, pose_mesh
from ggtalker_jax.types import FlameParams

B, CROP, UV = 2, 32, 16
TINY = E2VConfig(
    uv_size=UV,
    encoder_widths=(8, 8, 16, 16),
    uv_widths=(8, 16),
    global_dim=8,
    uv_embed_dim=4,
    data=E2VDataConfig(crop_size=CROP, image_size=CROP),
)


@functools.cache
def _template():
    return make_head_template(load_flame(), UV)


def _batch(rng, yaw=0.0):
    """A frontal (or yawed) source camera, neutral FLAME, a random image."""
    model = _template().model
    viewmat, K = portrait_camera(np.zeros(3), CROP, yaw=yaw)
    image = rng.uniform(size=(B, CROP, CROP, 3)).astype(np.float32)
    return (
        jnp.asarray(image),
        FlameParams.zeros(model.n_shape, model.n_exp, (B,)),
        jnp.broadcast_to(jnp.asarray(viewmat), (B, 4, 4)),
        jnp.broadcast_to(jnp.asarray(K), (B, 3, 3)),
    )


@jax.jit
def _forward(graphdef, state, batch):
    """The map and (for the tests) the lift the generator saw: one compilation for all."""
    _, params, viewmat, K = batch
    vertices = pose_mesh(_template().model, params)
    lift = lift_texels(_template(), vertices, viewmat, K, (CROP, CROP))
    return nnx.merge(graphdef, state)(*batch), lift, vertices


def _generate(graphdef, state, batch):
    return _forward(graphdef, state, batch)[0]


def _toy_loss(graphdef, state, batch):
    """Pull every covered texel's colour channels towards raw 1.0."""
    out = nnx.merge(graphdef, state)(*batch)
    color = _template().layout.gather(out)[..., MAP_SLICES["color"]]
    return jnp.mean((color - 1.0) ** 2)


@functools.partial(jax.jit, static_argnums=(0,))
def _train_step(optimizer, graphdef, state, opt_state, batch):
    loss, grads = jax.value_and_grad(_toy_loss, argnums=1)(graphdef, state, batch)
    with jax.numpy_dtype_promotion("standard"):  # optax mixes its int32 count with floats
        updates, opt_state = optimizer.update(grads, opt_state, state)
    return optax.apply_updates(state, updates), opt_state, loss


@pytest.fixture(scope="module")
def generator():
    return IdentityGenerator(_template(), TINY, nnx.Rngs(0))


def test_output_shape_and_initial_map(generator, rng):
    template = _template()
    out = _generate(*nnx.split(generator), _batch(rng))
    assert out.shape == (B, UV, UV, 14) and out.dtype == jnp.float32
    # Training starts on the mesh: the offsets decode to exactly zero.
    local = decode_texels(template.layout.gather(out))
    assert local.offsets.shape == (B, template.n, 3)
    np.testing.assert_array_equal(np.asarray(local.offsets), 0.0)
    # ... and at the template map, up to a small delta; uncovered texels are zero.
    base = np.broadcast_to(template.base_map, out.shape)
    mask = template.layout.mask
    delta = np.abs(np.asarray(out) - base)[:, mask]
    assert 0 < delta.max() < 0.1, delta.max()
    np.testing.assert_array_equal(np.asarray(out)[:, ~mask], 0.0)


def test_map_depends_on_the_image_at_visible_texels(generator, rng):
    template = _template()
    batch = _batch(rng)
    graphdef, state = nnx.split(generator)
    out, lift, _ = _forward(graphdef, state, batch)
    other = _generate(graphdef, state, (1.0 - batch[0], *batch[1:]))
    visible = np.asarray(lift.visibility) > 0  # [B, N]
    change = np.abs(np.asarray(template.layout.gather(out - other)))  # [B, N, 14]
    non_offset = np.ones(14, bool)
    non_offset[MAP_SLICES["offset"]] = False
    assert change[visible][:, non_offset].min(axis=-1).max() > 0
    assert change[visible][:, non_offset].mean() > 1e-5
    np.testing.assert_array_equal(change[..., MAP_SLICES["offset"]], 0.0)


def test_visibility_with_a_frontal_camera(generator, rng):
    """The back of the head is hidden, the face is seen, pixels land on the face."""
    template = _template()
    _, lift, vertices = _forward(*nnx.split(generator), _batch(rng))
    z = np.asarray(surface_points(vertices, template.faces, template.layout))[0, :, 2]
    vis = np.asarray(lift.visibility[0])
    assert set(np.unique(vis)) <= {0.0, 1.0}
    assert (z < -0.05).sum() > 10 and (z > 0.05).sum() > 10
    assert vis[z < -0.05].mean() < 0.05, vis[z < -0.05].mean()
    assert vis[z > 0.05].mean() > 0.9, vis[z > 0.05].mean()
    facing = np.asarray(lift.facing[0])
    assert np.all(facing <= vis) and facing[z > 0.05].mean() > 0.3
    px = np.asarray(lift.pixels[0])[vis > 0]
    assert np.all((px > 0) & (px < CROP))


def test_one_optimizer_step_lowers_a_toy_loss(generator, rng):
    batch = _batch(rng)
    graphdef, state = nnx.split(generator)
    optimizer = optax.adam(1e-3)
    opt_state = optimizer.init(state)
    state1, opt_state, loss0 = _train_step(optimizer, graphdef, state, opt_state, batch)
    _, _, loss1 = _train_step(optimizer, graphdef, state1, opt_state, batch)
    assert np.isfinite(float(loss0)) and float(loss1) < float(loss0)


def test_save_load_gives_identical_outputs_without_retracing(generator, rng, count_traces):
    batch = _batch(rng)
    graphdef, state = nnx.split(generator)
    out = _generate(graphdef, state, batch)
    saved = jax.tree.map(np.asarray, nnx.state(generator))  # what a checkpoint holds
    fresh = IdentityGenerator(_template(), TINY, nnx.Rngs(7))
    assert not np.array_equal(np.asarray(_generate(*nnx.split(fresh), batch)), np.asarray(out))
    nnx.update(fresh, saved)
    with count_traces() as traces:
        again = _generate(*nnx.split(fresh), batch)
    np.testing.assert_array_equal(np.asarray(again), np.asarray(out))
    assert traces() == 0


def test_parameters_are_float32_and_prior(generator):
    from ggtalker_jax.models.variables import IDENTITY, PRIOR

    params = nnx.state(generator, nnx.Param)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))
    assert not jax.tree.leaves(nnx.state(generator, IDENTITY))
    n_prior = sum(x.size for x in jax.tree.leaves(nnx.state(generator, PRIOR)))
    assert n_prior == sum(x.size for x in jax.tree.leaves(params)) > 0


def test_refuses_a_template_of_another_size():
    with pytest.raises(InputError, match="uv_size"):
        IdentityGenerator(_template(), E2VConfig(uv_size=32, **_tiny_widths()), nnx.Rngs(0))


def test_refuses_a_reference_image_of_another_size(rng):
    generator = IdentityGenerator(_template(), TINY, nnx.Rngs(0))
    image, params, viewmat, K = _batch(rng)
    wrong = jnp.zeros((B, 2 * CROP, 2 * CROP, 3), jnp.float32)
    with pytest.raises(
        InputError, match=r"shape \(2, 64, 64, 3\); this generator reads \[B, 32, 32, 3\]"
    ):
        generator(wrong, params, viewmat, K)


def _tiny_widths():
    return dict(encoder_widths=(8, 8, 16, 16), uv_widths=(8, 16), global_dim=8, uv_embed_dim=4)


def test_sample_bilinear_pixel_centres_and_zero_outside():
    """Feature pixel centres read back exactly; half a pixel past the edge reads half."""
    feature = jnp.arange(2 * 4 * 4 * 1, dtype=jnp.float32).reshape(2, 4, 4, 1)
    # Image 8x8 over a 4x4 feature map: feature pixel (i, j) centres at image (2j+1, 2i+1).
    points = jnp.asarray([[[1.0, 1.0], [3.0, 5.0], [2.0, 1.0], [-2.0, 1.0]]] * 2)
    out = np.asarray(sample_bilinear(feature, points, 8))[..., 0]
    f = np.asarray(feature)[..., 0]
    np.testing.assert_allclose(out[:, 0], f[:, 0, 0])
    np.testing.assert_allclose(out[:, 1], f[:, 2, 1])
    np.testing.assert_allclose(out[:, 2], 0.5 * (f[:, 0, 0] + f[:, 0, 1]))
    np.testing.assert_allclose(out[:, 3], 0.0)
    edge = np.asarray(sample_bilinear(feature, jnp.asarray([[[0.0, 1.0]]] * 2), 8))[..., 0]
    np.testing.assert_allclose(edge[:, 0], 0.5 * f[:, 0, 0])


def test_blocks_run_bfloat16_activations_on_float32_params(rng):
    from ggtalker_jax.models.layers import Downsample, ResBlock, Upsample

    rngs = nnx.Rngs(0)
    blocks = [
        ResBlock(4, 8, rngs, dtype=jnp.bfloat16),
        Downsample(8, 8, rngs, dtype=jnp.bfloat16),
        Upsample(8, 4, rngs, dtype=jnp.bfloat16),
    ]
    x = jnp.asarray(rng.normal(size=(2, 8, 8, 4)), jnp.float32)
    for block in blocks:
        assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(nnx.state(block)))
        x = block(x)
        assert x.dtype == jnp.bfloat16
    assert x.shape == (2, 8, 8, 4) and bool(jnp.all(jnp.isfinite(x.astype(jnp.float32))))
