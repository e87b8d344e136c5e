"""The procedural FLAME-format head: layout, closed surface, rig, blendshapes, landmarks."""

import jax
import numpy as np
import pytest

from ggtalker_jax.errors import InputError
from ggtalker_jax.flame.lbs import flame_forward
from ggtalker_jax.flame.loader import default_head_path
from ggtalker_jax.flame.model import FlameModel
from ggtalker_jax.types import FlameParams
from ggtalker_jax.world.head.build import (
    EXPRESSION_NAMES,
    make_procedural_head,
    save_procedural_head,
)
from ggtalker_jax.world.head.surface import head_sdf

REQUIRED_MASKS = (
    "lips",
    "mouth_interior",
    "left_eyeball",
    "right_eyeball",
    "eye_region",
    "nose",
    "face",
    "forehead",
    "scalp",
    "neck",
    "boundary",
)


@pytest.fixture(scope="module")
def head():
    return make_procedural_head(seed=0)


@pytest.fixture(scope="module")
def other_head():
    """Another seed, and more components than designed (random extras)."""
    return make_procedural_head(seed=1, n_shape=23, n_exp=12)


def _mask(head, name):
    m = np.zeros(len(head["v_template"]), bool)
    m[head[f"mask_{name}"]] = True
    return m


def _landmarks(head, vertices):
    corners = vertices[head["f"][head["lmk_faces_idx"]]]  # [68, 3, 3]
    return np.einsum("lkc,lk->lc", corners, head["lmk_bary_coords"])


def _undirected_edge_counts(faces):
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), 1)
    return np.unique(edges, axis=0, return_counts=True)


# --- layout ------------------------------------------------------------------------------


def test_keys_shapes_and_dtypes(head):
    v = head["v_template"]
    n_v, n_f = len(v), len(head["f"])
    assert 4500 <= n_v <= 6000
    expected = {
        "v_template": ((n_v, 3), np.float32),
        "f": ((n_f, 3), np.int32),
        "shapedirs": ((n_v, 3, 30), np.float32),
        "posedirs": ((n_v, 3, 36), np.float32),
        "J_regressor": ((5, n_v), np.float32),
        "weights": ((n_v, 5), np.float32),
        "kintree_table": ((2, 5), np.int64),
        "n_shape": ((), np.int32),
        "n_exp": ((), np.int32),
        "ft": ((n_f, 3), np.int32),
        "lmk_faces_idx": ((68,), np.int32),
        "lmk_bary_coords": ((68, 3), np.float32),
    }
    for key, (shape, dtype) in expected.items():
        assert head[key].shape == shape, key
        assert head[key].dtype == dtype, key
    assert head["vt"].dtype == np.float32 and head["vt"].shape[1] == 2
    assert int(head["n_shape"]) == 20 and int(head["n_exp"]) == 10
    np.testing.assert_array_equal(head["kintree_table"], [[-1, 0, 1, 1, 1], [0, 1, 2, 3, 4]])
    assert head["f"].min() >= 0 and head["f"].max() < n_v
    for name in REQUIRED_MASKS:
        idx = head[f"mask_{name}"]
        assert idx.dtype == np.int32 and idx.size > 0, name
        assert idx.min() >= 0 and idx.max() < n_v and np.all(np.diff(idx) > 0), name
    assert len(EXPRESSION_NAMES) == 10


def test_weights_regressor_and_uvs_are_normalised(head):
    w, reg = head["weights"], head["J_regressor"]
    assert w.min() >= 0.0 and reg.min() >= 0.0
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-6)
    np.testing.assert_allclose(reg.sum(1), 1.0, atol=1e-6)
    vt, ft = head["vt"], head["ft"]
    assert vt.min() >= 0.0 and vt.max() <= 1.0
    assert ft.min() >= 0 and ft.max() < len(vt)
    # Each eyeball is rigid: one-hot on its joint.
    for name, joint in (("left_eyeball", 3), ("right_eyeball", 4)):
        np.testing.assert_array_equal(w[head[f"mask_{name}"], joint], 1.0)


def test_model_builds_from_the_arrays(head):
    model = FlameModel.from_arrays(head)
    assert model.n_shape == 20 and model.n_exp == 10 and model.n_joints == 5
    assert "mouth_interior" in model.masks


def test_deterministic_from_seed(head, other_head):
    again = make_procedural_head(seed=0)
    assert again.keys() == head.keys()
    for key in head:
        np.testing.assert_array_equal(again[key], head[key], err_msg=key)
    # Another seed: same template and designed components, different random components.
    np.testing.assert_array_equal(other_head["v_template"], head["v_template"])
    np.testing.assert_array_equal(other_head["shapedirs"][..., :14], head["shapedirs"][..., :14])
    assert not np.allclose(other_head["shapedirs"][..., 14:20], head["shapedirs"][..., 14:20])


def test_uv_islands_do_not_overlap(head):
    vt, ft = head["vt"], head["ft"]
    centres = vt[ft].mean(1)  # [F, 2]
    f = head["f"]
    regions = {
        name: np.all(_mask(head, name)[f], axis=1)
        for name in ("mouth_interior", "left_eyeball", "right_eyeball")
    }
    boxes = {}
    for name, sel in regions.items():
        uv = vt[ft[sel]].reshape(-1, 2)
        boxes[name] = (uv.min(0), uv.max(0))
    skin = ~np.any(np.stack(list(regions.values())), axis=0)
    for name, (lo, hi) in boxes.items():
        inside = np.all((centres[skin] > lo) & (centres[skin] < hi), axis=1)
        assert not inside.any(), f"skin faces in the {name} UV island"
    for a in boxes:
        for b in boxes:
            if a < b:
                lo = np.maximum(boxes[a][0], boxes[b][0])
                hi = np.minimum(boxes[a][1], boxes[b][1])
                assert np.any(lo >= hi), f"UV islands {a} and {b} overlap"


# --- surface -------------------------------------------------------------------------------


def test_watertight_except_the_neck_cut(head):
    v, f = head["v_template"].astype(np.float64), head["f"]
    edges, counts = _undirected_edge_counts(f)
    assert set(np.unique(counts)) <= {1, 2}, "an edge is shared by more than two faces"
    boundary = edges[counts == 1]
    # The boundary edges form one closed loop (every vertex on it has degree 2) ...
    loop_vertices, degree = np.unique(boundary, return_counts=True)
    assert np.all(degree == 2) and len(loop_vertices) == len(boundary)
    neighbours = {}
    for a, b in boundary:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    seen, stack = {boundary[0][0]}, [boundary[0][0]]
    while stack:
        for n in neighbours[stack.pop()]:
            if n not in seen:
                seen.add(n)
                stack.append(n)
    assert len(seen) == len(loop_vertices), "the boundary is more than one loop"
    # ... at the bottom of the neck, and it is the boundary mask.
    np.testing.assert_array_equal(loop_vertices, head["mask_boundary"])
    assert v[loop_vertices, 1].max() <= v[:, 1].min() + 1e-6
    # Consistent orientation: every directed edge appears once.
    directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    assert len(np.unique(directed, axis=0)) == len(directed)


def test_eyeballs_are_closed_outward_spheres(head):
    v, f = head["v_template"].astype(np.float64), head["f"]
    for name in ("left_eyeball", "right_eyeball"):
        sel = np.all(_mask(head, name)[f], axis=1)
        assert np.any(_mask(head, name)[f], axis=1).sum() == sel.sum(), "eyeball joined to skin"
        _, counts = _undirected_edge_counts(f[sel])
        assert np.all(counts == 2), f"{name} is not closed"
        tri = v[f[sel]]
        volume = np.einsum("fi,fi->f", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6
        centre = head["J_regressor"][3 if name == "left_eyeball" else 4] @ v
        radius = np.linalg.norm(v[head[f"mask_{name}"]] - centre, axis=1)
        np.testing.assert_allclose(radius, 0.012, atol=1e-6)
        assert 0.7 * 4 / 3 * np.pi * 0.012**3 < volume < 4 / 3 * np.pi * 0.012**3


def test_no_degenerate_faces_or_duplicate_vertices(head):
    v, f = head["v_template"].astype(np.float64), head["f"]
    tri = v[f]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    assert area.min() > 1e-8  # m^2; the thinnest faces close the lips (0.3 mm high)
    edges, _ = _undirected_edge_counts(f)
    assert np.linalg.norm(v[edges[:, 0]] - v[edges[:, 1]], axis=1).min() > 1e-4
    # Closed skin volume (neck open, but its disc adds little): outward normals.
    volume = np.einsum("fi,fi->f", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6
    assert 2e-3 < volume < 6e-3  # m^3: a head and neck


def test_head_proportions(head):
    v = head["v_template"]
    skull = v[v[:, 1] > -0.105]
    face = v[_mask(head, "face")]
    height = v[:, 1].max() - face[:, 1].min()  # crown to chin
    assert 0.20 < height < 0.26
    width = np.ptp(skull[~_mask(head, "ears")[v[:, 1] > -0.105], 0])
    assert 0.13 < width < 0.18
    assert v[_mask(head, "neck"), 1].mean() < 0.0 < v[_mask(head, "scalp"), 1].mean()
    assert v[_mask(head, "nose"), 2].max() > v[_mask(head, "face"), 2].max() - 1e-6


def test_cavity_and_sockets_lie_inside_the_head(head):
    v = head["v_template"].astype(np.float64)
    interior = v[head["mask_mouth_interior"]]
    assert np.all(head_sdf(interior) < 0.0), "the mouth cavity pokes out of the head"
    depth = v[_mask(head, "lips"), 2].max() - interior[:, 2].min()
    assert 0.03 < depth < 0.05


def test_eyes_are_visible_through_the_lids(head):
    """A ray from each cornea's front forward hits no skin face; the lids surround it."""
    v, f = head["v_template"].astype(np.float64), head["f"]
    skin = ~np.any(_mask(head, "left_eyeball")[f] | _mask(head, "right_eyeball")[f], axis=1)
    tri = v[f[skin]]
    for name in ("left_eyeball", "right_eyeball"):
        eye = v[head[f"mask_{name}"]]
        apex = eye[np.argmax(eye[:, 2])]
        for direction in ([0.0, 0.0, 1.0], [0.0, 0.3, 1.0], [0.0, -0.3, 1.0]):
            d = np.array(direction) / np.linalg.norm(direction)
            hit = _ray_hits(apex - 1e-4 * d, d, tri)
            assert hit.sum() == 0, f"skin covers the front of the {name}"
        # Straight up, the upper lid and brow are over the eyeball.
        assert _ray_hits(eye.mean(0), np.array([0.0, 1.0, 0.0]), tri).sum() >= 1


def _ray_hits(origin, direction, tri):
    """Möller–Trumbore: bool [F] for triangles [F, 3, 3] hit at t > 0."""
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    p = np.cross(direction, e2)
    det = np.einsum("fi,fi->f", e1, p)
    ok = np.abs(det) > 1e-14
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    s = origin - tri[:, 0]
    a = np.einsum("fi,fi->f", s, p) * inv
    q = np.cross(s, e1)
    b = np.einsum("i,fi->f", direction, q) * inv
    t = np.einsum("fi,fi->f", e2, q) * inv
    return ok & (a >= 0) & (b >= 0) & (a + b <= 1) & (t > 0)


# --- rig -----------------------------------------------------------------------------------


def test_joints_sit_where_flame_puts_them(head):
    v = head["v_template"].astype(np.float64)
    joints = head["J_regressor"].astype(np.float64) @ v
    root, neck, jaw, left, right = joints
    assert np.linalg.norm(root) < 0.03 and np.linalg.norm(neck) < 0.03
    ears = v[_mask(head, "ears")]
    assert abs(jaw[0]) < 1e-6 and abs(jaw[1] - ears[:, 1].mean()) < 0.02
    assert ears[:, 2].mean() < jaw[2] < v[_mask(head, "lips"), 2].min()
    for eye, name in ((left, "left_eyeball"), (right, "right_eyeball")):
        radius = np.linalg.norm(v[head[f"mask_{name}"]] - eye, axis=1)
        np.testing.assert_allclose(radius, 0.012, atol=1e-6)  # the eyeball's centre
    assert left[0] > 0.02 and right[0] < -0.02


def test_jaw_weights_are_smooth_and_local(head):
    w, f = head["weights"], head["f"]
    jaw = w[:, 2]
    assert np.all(jaw[head["mask_scalp"]] == 0.0) and np.all(jaw[head["mask_forehead"]] == 0.0)
    assert np.all(jaw[_mask(head, "lower_lip")] > 0.45)
    assert np.all(jaw[_mask(head, "upper_lip")] < 0.55)
    # Smooth: along skin edges away from the lip line, jaw weight changes by < 0.5.
    edges, _ = _undirected_edge_counts(f)
    lips_or_cavity = _mask(head, "lips") | _mask(head, "mouth_interior")
    skin_edges = edges[~lips_or_cavity[edges].any(1)]
    assert np.abs(jaw[skin_edges[:, 0]] - jaw[skin_edges[:, 1]]).max() < 0.5


_forward = jax.jit(flame_forward)


def test_jaw_opens_the_mouth(head):
    model = FlameModel.from_arrays(head)
    rest = FlameParams.zeros(model.n_shape, model.n_exp)
    opened = rest.replace(jaw_pose=np.array([0.25, 0.0, 0.0]))
    out0, out1 = _forward(model, rest), _forward(model, opened)
    lm0, lm1 = np.asarray(out0.landmarks), np.asarray(out1.landmarks)
    gap0 = np.linalg.norm(lm0[62] - lm0[66])
    gap1 = np.linalg.norm(lm1[62] - lm1[66])
    assert gap0 < 2e-3
    assert gap1 - gap0 > 8e-3
    # Chin down and slightly back.
    assert lm1[8, 1] < lm0[8, 1] - 0.01 and lm1[8, 2] < lm0[8, 2]
    # Only jaw-weighted vertices move.
    v0, v1 = np.asarray(out0.vertices), np.asarray(out1.vertices)
    still = head["weights"][:, 2] == 0.0
    np.testing.assert_allclose(v1[still], v0[still], atol=1e-6)
    np.testing.assert_allclose(v0, head["v_template"], atol=1e-6)


def test_pose_correctives_are_small_and_local(head):
    pd = head["posedirs"]
    assert np.abs(pd).max() < 5e-3
    jaw_cols = pd[:, :, 9:18]
    assert np.abs(jaw_cols).max() > 1e-4
    np.testing.assert_array_equal(jaw_cols[head["weights"][:, 2] == 0.0], 0.0)
    np.testing.assert_array_equal(pd[:, :, 18:], 0.0)  # eyes


# --- blendshapes ---------------------------------------------------------------------------


def _expression_dirs(head):
    return head["shapedirs"][..., int(head["n_shape"]) :].astype(np.float64)


def test_every_expression_moves_the_lips(head, other_head):
    for h in (head, other_head):
        lips, scalp = _mask(h, "lips"), _mask(h, "scalp")
        for k in range(int(h["n_exp"])):
            mag = np.linalg.norm(_expression_dirs(h)[..., k], axis=1)
            assert mag[lips].max() > 1e-3, f"expression {k} barely moves the lips"
            assert mag[lips].mean() > 10 * mag[scalp].mean(), f"expression {k} not on the lips"
            assert mag.max() < 0.01


def test_expressions_are_distinct(head):
    lips = _mask(head, "lips")
    fields = _expression_dirs(head)[lips].reshape(-1, int(head["n_exp"]))  # [3 L, E]
    unit = fields / np.linalg.norm(fields, axis=0)
    cos = unit.T @ unit
    np.fill_diagonal(cos, 0.0)
    assert np.abs(cos).max() < 0.95


def test_named_expressions_do_what_they_say(head):
    v = head["v_template"].astype(np.float64)
    exp = _expression_dirs(head)
    lm = lambda k: _landmarks(head, v + exp[..., k])
    rest = _landmarks(head, v)
    width = lambda lmk: lmk[54, 0] - lmk[48, 0]
    gap = lambda lmk: lmk[62, 1] - lmk[66, 1]
    names = list(EXPRESSION_NAMES)
    assert gap(lm(names.index("lips_part"))) > gap(rest) + 3e-3
    assert width(lm(names.index("lips_round"))) < width(rest) - 4e-3
    assert width(lm(names.index("lips_spread"))) > width(rest) + 4e-3
    assert lm(names.index("smile"))[54, 1] > rest[54, 1] + 2e-3
    assert lm(names.index("frown"))[54, 1] < rest[54, 1] - 2e-3
    smirk = lm(names.index("smile_left"))
    assert smirk[54, 1] - rest[54, 1] > 5 * abs(smirk[48, 1] - rest[48, 1])


def test_shape_components_are_smooth_identity_changes(head):
    n_shape = int(head["n_shape"])
    dirs = head["shapedirs"][..., :n_shape].astype(np.float64)
    mag = np.linalg.norm(dirs, axis=1)
    assert np.all(mag.max(0) > 2e-3) and np.all(mag.max(0) < 1.5e-2)
    # Eyeballs translate rigidly, so they stay spheres.
    for name in ("left_eyeball", "right_eyeball"):
        eye = dirs[head[f"mask_{name}"]]
        np.testing.assert_allclose(eye, np.broadcast_to(eye[:1], eye.shape), atol=1e-9)
    # The closed lips stay closed.
    lm = _landmarks(head, head["v_template"] + dirs @ np.ones(n_shape))
    assert np.linalg.norm(lm[62] - lm[66]) < 2e-3


# --- landmarks -----------------------------------------------------------------------------


def test_landmarks_follow_the_ibug_layout(head):
    lm = _landmarks(head, head["v_template"].astype(np.float64))
    assert np.linalg.norm(lm[62] - lm[66]) < 2e-3
    assert lm[62, 1] > lm[66, 1]
    assert lm[8, 1] == lm[:17, 1].min()  # chin is the lowest contour point
    assert np.all(np.diff(lm[:9, 0]) > 0) and np.all(np.diff(lm[8:17, 0]) > 0)
    assert lm[48, 0] < lm[51, 0] < lm[54, 0] and lm[51, 1] > lm[57, 1]
    assert lm[36:42, 0].max() < 0 < lm[42:48, 0].min()  # right eye first (subject's right)
    assert lm[39, 0] > lm[36, 0] and lm[42, 0] < lm[45, 0]  # inner corners face the nose
    assert lm[30, 2] == lm[27:36, 2].max()  # nose tip in front
    assert lm[17:27, 1].min() > lm[36:48, 1].max()  # brows above the eyes
    lips = head["v_template"][head["mask_lips"]]
    assert np.all(np.abs(lm[48:68, 0]) <= np.abs(lips[:, 0]).max() + 1e-6)


# --- files ---------------------------------------------------------------------------------


def test_save_refuses_to_overwrite(tmp_path, head):
    path = tmp_path / "head.npz"
    save_procedural_head(path, n_shape=2, n_exp=10)
    with pytest.raises(InputError, match=r"head\.npz.*--force"):
        save_procedural_head(path, n_shape=2, n_exp=10)
    save_procedural_head(path, force=True, n_shape=3, n_exp=10)
    with np.load(path) as z:
        assert int(z["n_shape"]) == 3
        np.testing.assert_array_equal(z["v_template"], head["v_template"])


def test_shipped_head_is_the_seed_zero_head(head):
    path = default_head_path()
    assert path.stat().st_size < 3 * 2**20
    with np.load(path) as z:
        shipped = dict(z)
    assert shipped.keys() == head.keys()
    for key in head:  # regenerate with tools/make_procedural_head.py after changing the code
        if np.issubdtype(head[key].dtype, np.floating):
            np.testing.assert_allclose(shipped[key], head[key], atol=1e-6, err_msg=key)
        else:
            np.testing.assert_array_equal(shipped[key], head[key], err_msg=key)
