"""Identity textures (fine detail, different per person) and the rest of a shot: torso under
the neck, head motion with large rotations, cameras."""

import numpy as np
import pytest
from scipy import ndimage

from ggtalker_jax.flame import load_flame
from ggtalker_jax.geometry.camera import portrait_camera, project_points
from ggtalker_jax.world import scene
from ggtalker_jax.world.texture import REGIONS, make_texture, make_uv_maps


@pytest.fixture(scope="module")
def model():
    return load_flame()


@pytest.fixture(scope="module")
def maps(model):
    return make_uv_maps(model, 256)


def _face_skin(maps):
    """Skin texels on the front of the face between the eyes and the mouth (no hair, brows
    or lips), away from region borders."""
    p = maps.position
    face = (maps.region == REGIONS.index("skin")) & (p[..., 2] > 0.04)
    face &= (p[..., 1] > -0.06) & (p[..., 1] < 0.02)
    return ndimage.binary_erosion(face, iterations=2)


def test_uv_maps_cover_every_region(maps, model):
    for name in REGIONS:
        assert (maps.region == REGIONS.index(name)).sum() > 500, name
    covered = maps.region >= 0
    lo, hi = np.asarray(model.v_template).min(0), np.asarray(model.v_template).max(0)
    assert (maps.position[covered] >= lo - 1e-4).all() and (
        maps.position[covered] <= hi + 1e-4
    ).all()
    assert maps.ear.any() and not (maps.ear & ~covered).any()
    # The eyeballs sit left and right of the midline at eye height.
    assert maps.eye_center[0, 0] * maps.eye_center[1, 0] < 0


def test_texture_has_fine_detail(maps, rng):
    face = _face_skin(maps)
    assert face.sum() > 1000
    tex = make_texture(maps, rng).astype(np.float64)
    assert tex.shape == (256, 256, 3)
    luma = tex.mean(-1)
    detail = ndimage.laplace(luma)[face].std()
    blurred = ndimage.laplace(ndimage.gaussian_filter(luma, 1.0))[face].std()
    # Pores and freckles: texel-scale contrast that a one-texel blur removes.
    assert detail > 10.0 and detail > 5 * blurred, (detail, blurred)


def test_textures_differ_per_identity_and_repeat_per_seed(maps, rng):
    seed = int(rng.integers(2**31))
    a = make_texture(maps, np.random.default_rng([seed, 0]))
    b = make_texture(maps, np.random.default_rng([seed, 1]))
    np.testing.assert_array_equal(a, make_texture(maps, np.random.default_rng([seed, 0])))
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 8
    # Hair on the crown, none on the front of the face or the ears.
    for tex in (a, b):
        luma = tex.astype(float).mean(-1)
        crown = (maps.position[..., 1] > 0.11) & (maps.region >= 0)
        face = _face_skin(maps)
        hair_like = np.abs(luma[crown].mean() - luma[face].mean())
        assert hair_like > 5 or np.abs(tex[crown].mean(0) - tex[face].mean(0)).max() > 10


def test_empty_texels_take_the_nearest_used_colour(maps, rng):
    tex = make_texture(maps, rng).astype(int)
    eye = maps.region == REGIONS.index("eyeball")
    ring = ndimage.binary_dilation(eye, iterations=2) & (maps.region < 0)
    assert ring.sum() > 50
    # Texels just outside an eyeball island continue the island (sclera), not the skin.
    nearest = ndimage.distance_transform_edt(~eye, return_distances=False, return_indices=True)
    outside = tex[ring]
    inside = tex[nearest[0][ring], nearest[1][ring]]
    assert np.abs(outside - inside).max() <= 1


def test_torso_hangs_under_the_neck(model, rng):
    rest = np.asarray(model.v_template)
    neck = np.asarray(model.masks["boundary"])
    center = rest[neck].mean(0)
    radius = float(np.linalg.norm((rest[neck] - center)[:, [0, 2]], axis=-1).mean())
    torso = scene.make_torso(center, radius, rng, rings=20, segments=64)
    v = torso.vertices
    assert v.shape == (20 * 64, 3) and torso.faces.max() < len(v)
    assert torso.ft.shape == torso.faces.shape and torso.vt.min() >= 0 and torso.vt.max() <= 1
    # The collar's floor lies inside the neck just above its cut, so the neck always
    # disappears into the shirt; the rim is a little wider than the neck.
    floor, rim = v[:64], v[64:128]
    assert np.linalg.norm((floor - center)[:, [0, 2]], axis=-1).max() < radius
    assert (floor[:, 1] > center[1]).all() and (floor[:, 1] < center[1] + 0.01).all()
    assert np.linalg.norm((rim - center)[:, [0, 2]], axis=-1).min() > radius
    # Shoulders: much wider than the head, below the collar.
    assert np.ptp(v[:, 0]) > 2 * np.ptp(rest[:, 0])
    assert v[:, 1].max() < center[1] + 0.03 and v[:, 1].min() < center[1] - 0.2


def test_pose_torso_is_rigid_about_the_root(rng):
    vertices = rng.normal(size=(50, 3)).astype(np.float32)
    root = rng.normal(size=3)
    pose = rng.normal(size=(4, 3)) * 0.3
    shift = rng.normal(size=(4, 3)) * 0.01
    posed = scene.pose_torso(vertices, root, pose, root + shift)
    assert posed.shape == (4, 50, 3)
    d0 = np.linalg.norm(vertices[:, None] - vertices[None], axis=-1)
    for t in range(4):
        d = np.linalg.norm(posed[t][:, None] - posed[t][None], axis=-1)
        np.testing.assert_allclose(d, d0, atol=1e-4)  # distances kept
    still = scene.pose_torso(vertices, root, np.zeros((1, 3)), root[None])
    np.testing.assert_allclose(still[0], vertices, atol=1e-6)
    # A vertex at the root moves with the root only.
    at_root = scene.pose_torso(root[None].astype(np.float32), root, pose, root + shift)
    np.testing.assert_allclose(at_root[:, 0], root + shift, atol=1e-5)


def test_head_motion_is_smooth_with_large_rotations(rng):
    motion = scene.head_motion(rng, 200)
    assert {k: v.shape for k, v in motion.items()} == {
        "global_pose": (200, 3),
        "neck_pose": (200, 3),
        "eye_pose": (200, 6),
        "translation": (200, 3),
    }
    yaw = motion["neck_pose"][:, 1]
    assert np.abs(yaw).max() >= 0.4  # large turns of the head (radians)
    assert np.abs(motion["global_pose"]).max() <= 0.1  # the body only sways
    for value in motion.values():
        # Smooth at 25 fps: under 2.5 rad/s, and the speed itself changes slowly.
        assert np.abs(np.diff(value, axis=0)).max() < 0.1
        assert np.abs(np.diff(value, 2, axis=0)).max() < 0.015


def test_portrait_camera_looks_at_its_target(rng):
    target = rng.normal(size=3) * 0.05
    for yaw in (0.0, 0.6, -0.9):
        view, K = portrait_camera(target, 128, yaw=yaw, pitch=0.1)
        uv, depth = project_points(target[None], view, K)
        np.testing.assert_allclose(uv[0], [64, 64], atol=1e-3)
        assert depth[0] == pytest.approx(0.9, abs=1e-4)
