"""FLAME skinning against a slow float64 numpy reference, and its transforms."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ggtalker_jax.errors import InputError
from ggtalker_jax.flame.lbs import flame_forward
from ggtalker_jax.flame.model import FlameModel
from ggtalker_jax.geometry.rotations import axis_angle_to_matrix, axis_angle_to_matrix_reference
from ggtalker_jax.types import FlameParams


def flame_reference(arrays, shape, expression, poses, translation):
    """One frame of FLAME, written out vertex by vertex in float64.

    poses: [5, 3] axis-angle for root, neck, jaw, left eye, right eye.
    """
    n_shape = int(arrays["n_shape"])
    dirs = np.asarray(arrays["shapedirs"], np.float64)
    v = arrays["v_template"] + dirs[..., :n_shape] @ shape + dirs[..., n_shape:] @ expression
    joints = np.asarray(arrays["J_regressor"], np.float64) @ v
    rots = axis_angle_to_matrix_reference(poses)
    feature = np.concatenate([(rots[j] - np.eye(3)).reshape(-1) for j in range(1, 5)])
    v = v + arrays["posedirs"] @ feature
    parents = [-1, 0, 1, 1, 1]
    world = []
    for j in range(5):
        local = np.eye(4)
        local[:3, :3] = rots[j]
        local[:3, 3] = joints[j] - (joints[parents[j]] if j else 0.0)
        world.append(local if j == 0 else world[parents[j]] @ local)
    out = np.zeros_like(v)
    for i in range(v.shape[0]):
        blended = np.zeros((4, 4))
        for j in range(5):
            g = world[j].copy()
            g[:3, 3] -= g[:3, :3] @ joints[j]
            blended += arrays["weights"][i, j] * g
        out[i] = blended[:3, :3] @ v[i] + blended[:3, 3]
    out += translation
    tri = out[arrays["f"][arrays["lmk_faces_idx"]]]
    lmk = np.einsum("lkc,lk->lc", tri, arrays["lmk_bary_coords"])
    return out, np.stack([w[:3, 3] for w in world]) + translation, lmk


def random_params(rng, model, batch):
    g = lambda *s: rng.normal(size=(*batch, *s)).astype(np.float32)
    return FlameParams(
        shape=rng.normal(size=(model.n_shape,)).astype(np.float32),
        expression=g(model.n_exp),
        global_pose=0.4 * g(3),
        neck_pose=0.3 * g(3),
        jaw_pose=0.3 * g(3),
        eye_pose=0.2 * g(6),
        translation=0.05 * g(3),
    )


def test_rotation_matches_reference_and_is_smooth_at_zero(rng):
    r = rng.normal(size=(7, 3)) * np.array([[1.0], [1e-3], [1e-5], [0], [2], [3], [0.5]])
    np.testing.assert_allclose(
        axis_angle_to_matrix(jnp.asarray(r, jnp.float32)),
        axis_angle_to_matrix_reference(r),
        atol=2e-6,
    )
    grad = jax.jacfwd(axis_angle_to_matrix)(jnp.zeros(3))
    assert np.all(np.isfinite(grad))
    # d/dr_x of R at zero is the generator [[0,0,0],[0,0,-1],[0,1,0]].
    np.testing.assert_allclose(grad[..., 0], [[0, 0, 0], [0, 0, -1], [0, 1, 0]], atol=1e-6)


def test_forward_matches_numpy_reference(toy_flame, rng):
    model = FlameModel.from_arrays(toy_flame)
    params = random_params(rng, model, (2, 3))
    out = flame_forward(model, params)
    chex.assert_shape(out.vertices, (2, 3, model.n_vertices, 3))
    chex.assert_shape(out.landmarks, (2, 3, 10, 3))
    for idx in np.ndindex(2, 3):
        poses = np.stack(
            [
                params.global_pose[idx],
                params.neck_pose[idx],
                params.jaw_pose[idx],
                params.eye_pose[idx][:3],
                params.eye_pose[idx][3:],
            ]
        )
        v, j, lmk = flame_reference(
            toy_flame, params.shape, params.expression[idx], poses, params.translation[idx]
        )
        np.testing.assert_allclose(out.vertices[idx], v, atol=2e-5)
        np.testing.assert_allclose(out.joints[idx], j, atol=2e-5)
        np.testing.assert_allclose(out.landmarks[idx], lmk, atol=2e-5)


def test_jit_vmap_grad(toy_flame, rng):
    model = FlameModel.from_arrays(toy_flame)
    params = random_params(rng, model, (4,))
    eager = flame_forward(model, params).vertices
    jitted = jax.jit(flame_forward)(model, params).vertices
    np.testing.assert_allclose(jitted, eager, atol=1e-5)
    per_frame = jax.vmap(
        lambda p: flame_forward(model, p).vertices, in_axes=(FlameParams(None, 0, 0, 0, 0, 0, 0),)
    )(params)
    np.testing.assert_allclose(per_frame, eager, atol=1e-5)

    def loss(expression):
        return jnp.sum(flame_forward(model, params.replace(expression=expression)).vertices ** 2)

    grad = jax.grad(loss)(jnp.asarray(params.expression))
    assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 0
    zero_pose_grad = jax.grad(
        lambda jaw: jnp.sum(flame_forward(model, params.replace(jaw_pose=jaw)).vertices)
    )(jnp.zeros((4, 3)))
    assert np.all(np.isfinite(zero_pose_grad))


def test_jaw_moves_only_jaw_weighted_vertices(toy_flame, rng):
    model = FlameModel.from_arrays(toy_flame)
    params = random_params(rng, model, ())
    base = flame_forward(model, params).vertices
    opened = flame_forward(model, params.replace(jaw_pose=params.jaw_pose + 0.3)).vertices
    moved = np.linalg.norm(opened - base, axis=-1)
    jaw = toy_flame["weights"][:, 2] > 0
    assert moved[~jaw].max() < 1e-6
    assert moved[jaw].min() > 1e-6


@pytest.mark.parametrize(
    "field,size", [("expression", 3), ("shape", 9), ("jaw_pose", 2), ("eye_pose", 3)]
)
def test_wrong_sizes_are_refused_even_under_jit(toy_flame, field, size):
    model = FlameModel.from_arrays(toy_flame)
    params = FlameParams.zeros(model.n_shape, model.n_exp, (2,))
    bad = params.replace(**{field: np.zeros((2, size) if field != "shape" else (size,))})
    with pytest.raises(InputError, match=f"'{field}'.*expects last dimension"):
        flame_forward(model, bad)
    with pytest.raises(InputError, match=f"'{field}'"):
        jax.jit(flame_forward)(model, bad)


def test_nan_parameters_are_refused(toy_flame):
    model = FlameModel.from_arrays(toy_flame)
    params = FlameParams.zeros(model.n_shape, model.n_exp, (3,))
    expression = np.zeros((3, model.n_exp), np.float32)
    expression[1, 2] = np.nan
    with pytest.raises(InputError, match="'expression' holds 1 NaN"):
        flame_forward(model, params.replace(expression=expression))


def test_truncated_bases(toy_flame, rng):
    full = FlameModel.from_arrays(toy_flame)
    small = FlameModel.from_arrays(toy_flame, n_shape=2, n_exp=3)
    assert (small.n_shape, small.n_exp) == (2, 3)
    params = random_params(rng, full, ())
    shape = np.concatenate([params.shape[:2], np.zeros(full.n_shape - 2, np.float32)])
    expression = np.concatenate([params.expression[:3], np.zeros(full.n_exp - 3, np.float32)])
    a = flame_forward(full, params.replace(shape=shape, expression=expression)).vertices
    b = flame_forward(
        small, params.replace(shape=params.shape[:2], expression=params.expression[:3])
    ).vertices
    np.testing.assert_allclose(a, b, atol=1e-6)
