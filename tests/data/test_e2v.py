"""E2V data: procedural batches (shapes, determinism, splits, masks, novel views) and batches
from clip folders, with one clear line for every bad folder.

Sizes are tiny (32² frames, 64² textures, 2 identities, batches of 4): the procedural source
compiles two programs (``batch`` and ``views``), the clip source none.
"""

import os

import jax
import numpy as np
import pytest

from ggtalker_jax.config import WorldConfig
from ggtalker_jax.config.e2v import E2VDataConfig
from ggtalker_jax.data.clip import Clip, read_clip, write_clip
from ggtalker_jax.data.e2v import E2VBatch, ProceduralE2V, make_e2v_source
from ggtalker_jax.data.e2v_clips import ClipE2V, find_clip_folders
from ggtalker_jax.data.e2v_pool import build_identity_pool
from ggtalker_jax.errors import InputError
from ggtalker_jax.flame import load_flame
from ggtalker_jax.types import FLAME_PARAM_FIELDS, FlameParams
from ggtalker_jax.world.folder import write_world

SIZE = 32
BATCH = 4


@pytest.fixture(scope="module")
def model():
    return load_flame()


@pytest.fixture(scope="module")
def config():
    seed = int(os.environ["GGTALKER_TEST_SEED"]) % 1000
    return E2VDataConfig(
        identities=2, heldout=2, seed=seed, image_size=SIZE, crop_size=SIZE, texture_size=64
    )


@pytest.fixture(scope="module")
def train(model, config):
    return make_e2v_source(model, config, BATCH, "train")


@pytest.fixture(scope="module")
def batch0(train):
    return jax.device_get(train.batch(0))


def _leaves_equal(a, b) -> bool:
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return all(np.array_equal(x, y) for x, y in pairs)


def check_shapes(batch: E2VBatch, model, b: int, size: int, crop: int):
    shapes = {
        "source_image": (b, crop, crop, 3),
        "source_viewmat": (b, 4, 4),
        "source_K": (b, 3, 3),
        "target_image": (b, size, size, 3),
        "target_viewmat": (b, 4, 4),
        "target_K": (b, 3, 3),
        "target_mask": (b, size, size),
        "background": (b, 3),
    }
    for name, shape in shapes.items():
        value = getattr(batch, name)
        assert value.shape == shape and value.dtype == np.float32, name
    assert batch.identity.shape == (b,) and batch.identity.dtype == np.int32
    # Every render complete: the rasterizer's fixed work sufficed (clips: nothing rendered).
    assert batch.dropped.shape == (b,) and (np.asarray(batch.dropped) == 0).all()
    for params in (batch.source_params, batch.target_params):
        assert params.shape.shape == (b, model.n_shape)
        assert params.expression.shape == (b, model.n_exp)
        assert params.eye_pose.shape == (b, 6) and params.jaw_pose.shape == (b, 3)
    for image in (batch.source_image, batch.target_image):
        assert image.min() >= 0.0 and image.max() <= 1.0
    assert set(np.unique(batch.target_mask)) <= {0.0, 1.0}


def test_batch_shapes_and_ranges(batch0, model, config):
    check_shapes(batch0, model, BATCH, SIZE, SIZE)
    assert set(batch0.identity.tolist()) <= {0, 1}
    p = batch0.target_params
    assert (p.jaw_pose[:, 0] >= 0).all() and (p.jaw_pose[:, 0] <= config.max_jaw).all()
    assert (np.abs(p.global_pose) <= config.max_head_rotation / 2 + 1e-6).all()
    assert (p.translation == 0).all()
    # The shape is the identity's, the same in source and target.
    np.testing.assert_array_equal(batch0.source_params.shape, p.shape)


def test_batches_are_deterministic_in_position(train, batch0, count_traces):
    with count_traces() as traces:
        again = jax.device_get(train.batch(0))
        other = jax.device_get(train.batch(1))
    assert traces() == 0  # one compiled program for every position
    assert _leaves_equal(batch0, again)
    assert not np.array_equal(batch0.target_image, other.target_image)
    assert not np.array_equal(batch0.source_params.expression, other.source_params.expression)


def test_heldout_identities_are_other_people(train, model, config):
    heldout = make_e2v_source(model, config, BATCH, "heldout")
    np.testing.assert_array_equal(heldout.identities, [2, 3])
    for a in range(2):
        for b in range(2):
            assert not np.allclose(train.pool.shape[a], heldout.pool.shape[b])
            assert not np.array_equal(train.pool.texture[a], heldout.pool.texture[b])
    batch = jax.device_get(heldout.batch(0))  # same shapes: the training source's program
    assert set(batch.identity.tolist()) <= {2, 3}


def test_pool_workers_make_the_same_people(train, model, config):
    pool = build_identity_pool(model, config, [1, 0], workers=2)
    np.testing.assert_array_equal(pool.index, [1, 0])
    for name in ("shape", "texture", "camera_target"):
        np.testing.assert_array_equal(getattr(pool, name), getattr(train.pool, name)[::-1])


def test_head_mask_is_where_the_image_is_not_background(batch0):
    bg = batch0.background[:, None, None, :]
    differs = np.any(batch0.target_image != bg, axis=-1)  # [B, H, W]
    head = batch0.target_mask > 0
    assert head.any(axis=(1, 2)).all() and (~head).any(axis=(1, 2)).all()
    assert not differs[~head].any()  # off the head: exactly the background colour
    assert differs[head].mean() > 0.99  # on it: shaded texture
    # The source shows the head on the same colour.
    src_bg = np.all(batch0.source_image == bg, axis=-1)
    assert 0.1 < src_bg.mean() < 0.9
    # The head is framed inside the image: the border is background.
    border = np.concatenate([head[:, 0], head[:, -1], head[:, :, 0], head[:, :, -1]], axis=-1)
    assert src_bg[:, [0, -1]].all() and src_bg[:, :, [0, -1]].all()
    assert border.mean() < 0.05


def test_views_yaw_zero_is_the_source_camera(train, model):
    yaws = [0.0, 0.524]
    views = jax.device_get(train.views([1, 0], yaws, position=3, same_pose=True))
    check_shapes(views, model, 4, SIZE, SIZE)
    np.testing.assert_array_equal(views.identity, [1, 1, 0, 0])
    # Same camera, same pose, same size: the yaw-0 target is the source image.
    np.testing.assert_allclose(views.target_viewmat[::2], views.source_viewmat[::2], atol=1e-6)
    np.testing.assert_allclose(views.target_image[::2], views.source_image[::2], atol=1e-5)
    assert np.abs(views.target_image[1::2] - views.source_image[1::2]).mean() > 0.01
    # The yawed camera circles the same target at the same distance.
    eye = lambda v: -np.einsum("bji,bj->bi", v[:, :3, :3], v[:, :3, 3])
    src, tgt = eye(views.source_viewmat), eye(views.target_viewmat)
    np.testing.assert_allclose(np.linalg.norm(src, axis=-1), np.linalg.norm(tgt, axis=-1), 1e-4)
    # Default: a new expression, seen from the same cameras (self-reenactment at yaw 0).
    fresh = jax.device_get(train.views([1, 0], yaws, position=3))
    np.testing.assert_allclose(fresh.target_viewmat, views.target_viewmat, atol=1e-6)
    assert not np.allclose(fresh.target_params.expression, fresh.source_params.expression)
    with pytest.raises(InputError, match=r"identities \[7\]"):
        train.views([7], yaws)


def test_make_e2v_source_refuses_missing_splits(model, config, tmp_path):
    import dataclasses

    with pytest.raises(InputError, match="heldout is 0"):
        make_e2v_source(model, dataclasses.replace(config, heldout=0), BATCH, "heldout")
    with pytest.raises(InputError, match="unknown; use 'train' or 'heldout'"):
        make_e2v_source(model, config, BATCH, "test")
    folder = dataclasses.replace(config, source=str(tmp_path))
    with pytest.raises(InputError, match="has no held-out split"):
        make_e2v_source(model, folder, BATCH, "heldout")
    assert isinstance(make_e2v_source(model, config, BATCH), ProceduralE2V)


# --------------------------------------------------------------------------- clip folders


@pytest.fixture(scope="module")
def world(tmp_path_factory, model):
    """One identity, one 0.4 s clip (10 frames) at 32², with one extra camera."""
    seed = int(os.environ["GGTALKER_TEST_SEED"]) % 1000
    config = WorldConfig(
        identities=1,
        clips_per_identity=1,
        seconds=0.4,
        resolution=SIZE,
        seed=seed,
        views=1,
        texture_size=64,
    )
    out = tmp_path_factory.mktemp("e2v_world") / "w"
    write_world(out, model, config, progress=False)
    return out


def clip_config(**changes):
    return E2VDataConfig(**{"image_size": SIZE, "crop_size": 16, "seed": 3, **changes})


def test_clip_batches(world, model):
    assert [p.relative_to(world).as_posix() for p in find_clip_folders(world)] == ["id000/clip000"]
    source = make_e2v_source(model, clip_config(source=str(world)), 6)
    assert isinstance(source, ClipE2V) and len(source.clips[0].cameras) == 2
    batch = source.batch(0)
    check_shapes(batch, model, 6, SIZE, 16)
    assert _leaves_equal(batch, source.batch(0))
    assert not _leaves_equal(batch, source.batch(1))
    assert (batch.identity == 0).all() and (batch.background == 0).all()
    # Outside the head mask: black; the head itself is not.
    head = batch.target_mask > 0
    assert (batch.target_image[~head] == 0).all() and batch.target_image[head].mean() > 0.05
    # Distinct frames of one clip: the FLAME parameters of source and target differ.
    moved = np.abs(batch.source_params.jaw_pose - batch.target_params.jaw_pose).sum(-1)
    moved += np.abs(batch.source_params.neck_pose - batch.target_params.neck_pose).sum(-1)
    assert (moved > 0).all()
    # The source's K is the clip's, scaled to the crop.
    clip = read_clip(world / "id000" / "clip000")
    np.testing.assert_allclose(batch.source_K[0, :2], clip.K[0, :2] * 16 / SIZE, rtol=1e-6)
    np.testing.assert_allclose(batch.source_K[0, 2], [0, 0, 1])


def _one_frame_clip(clip: Clip) -> Clip:
    one = lambda a: None if a is None else a[:1]
    flame = FlameParams(
        **{
            k: getattr(clip.flame, k) if k == "shape" else getattr(clip.flame, k)[:1]
            for k in FLAME_PARAM_FIELDS
        }
    )
    return Clip(
        frames=one(clip.frames),
        audio=clip.audio[:640],
        flame=flame,
        viewmat=one(clip.viewmat),
        K=one(clip.K),
        head_mask=one(clip.head_mask),
        torso_mask=one(clip.torso_mask),
        meta=clip.meta,
    )


def _one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_clip_errors(world, model, tmp_path):
    clip_folder = world / "id000" / "clip000"
    with pytest.raises(InputError, match="holds no clip folders") as e:
        ClipE2V(tmp_path, model, clip_config(), 2)
    _one_line(e)
    with pytest.raises(InputError, match="no such folder") as e:
        ClipE2V(tmp_path / "nope", model, clip_config(), 2)
    with pytest.raises(InputError, match=r"frames are 32x32, but e2v.data.image_size is 64") as e:
        ClipE2V(world, model, clip_config(image_size=64), 2)
    assert "e2v.data.image_size=32" in _one_line(e)
    small = load_flame(n_shape=5)
    with pytest.raises(InputError, match=r"flame.npz: 20 shape and 10 expression components") as e:
        ClipE2V(clip_folder, small, clip_config(), 2)
    assert "has 5 and 10" in _one_line(e)
    write_clip(tmp_path / "short" / "clip000", _one_frame_clip(read_clip(clip_folder)))
    with pytest.raises(InputError, match="holds 1 frame; .* at least 2") as e:
        ClipE2V(tmp_path / "short", model, clip_config(), 2)
    _one_line(e)
