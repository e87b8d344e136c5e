"""Triangle frames (the rigging convention), normals, quaternions: against per-element numpy
references in float64, on fresh random meshes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ggtalker_jax.geometry.rotations import (
    axis_angle_to_matrix_reference,
    matrix_to_quaternion,
    quaternion_multiply,
    quaternion_to_matrix,
)
from ggtalker_jax.geometry.triangles import (
    face_normals,
    frames_to_world,
    triangle_frames,
    vertex_normals,
)


def frame_reference(v0, v1, v2):
    """One triangle's frame written out from the definition, in float64."""
    a0 = (v1 - v0) / np.linalg.norm(v1 - v0)
    n = np.cross(a0, v2 - v0)
    a1 = n / np.linalg.norm(n)
    c = np.cross(a1, a0)
    a2 = -c / np.linalg.norm(c)
    rotation = np.stack([a0, a1, a2], axis=1)
    k = (np.linalg.norm(v1 - v0) + abs(a2 @ (v2 - v0))) / 2
    return rotation, (v0 + v1 + v2) / 3, k


def random_mesh(rng, n_vertices=40, n_faces=60):
    """Random vertices and faces, none of them sliver triangles (whose frames float32 cannot
    pin down to the tolerances here)."""
    vertices = rng.normal(size=(n_vertices, 3))
    faces = []
    while len(faces) < n_faces:
        f = rng.choice(n_vertices, 3, replace=False)
        e1, e2 = vertices[f[1]] - vertices[f[0]], vertices[f[2]] - vertices[f[0]]
        area = np.linalg.norm(np.cross(e1, e2))
        if np.linalg.norm(e1) > 0.2 and area > 0.1 * max(np.linalg.norm(e1), np.linalg.norm(e2)):
            faces.append(f)
    return vertices, np.stack(faces).astype(np.int32)


def test_triangle_frames_match_the_per_triangle_reference(rng):
    vertices, faces = random_mesh(rng)
    rotation, centroid, k = triangle_frames(jnp.asarray(vertices, jnp.float32), faces)
    for f, corners in enumerate(faces):
        want_r, want_t, want_k = frame_reference(*vertices[corners])
        np.testing.assert_allclose(rotation[f], want_r, atol=2e-5)
        np.testing.assert_allclose(centroid[f], want_t, atol=1e-5)
        np.testing.assert_allclose(k[f], want_k, rtol=1e-5)
    # Proper rotations with the normal in column 1.
    r = np.asarray(rotation, np.float64)
    np.testing.assert_allclose(
        r.transpose(0, 2, 1) @ r, np.broadcast_to(np.eye(3), r.shape), atol=1e-5
    )
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-5)
    normals = np.asarray(face_normals(jnp.asarray(vertices, jnp.float32), faces))
    unit = normals / np.linalg.norm(normals, axis=-1, keepdims=True)
    np.testing.assert_allclose(r[:, :, 1], unit, atol=2e-5)


def test_frames_follow_a_rigid_motion_and_batch(rng):
    """Moving a mesh rigidly rotates every frame and centroid with it and keeps k; a batch
    of meshes gives each its own frames."""
    vertices, faces = random_mesh(rng)
    rot = axis_angle_to_matrix_reference(rng.normal(size=3))
    shift = rng.normal(size=3)
    moved = vertices @ rot.T + shift
    batch = jnp.asarray(np.stack([vertices, moved]), jnp.float32)
    rotation, centroid, k = triangle_frames(batch, faces)  # [2, F, ...]
    np.testing.assert_allclose(rotation[1], rot @ np.asarray(rotation[0]), atol=5e-5)
    np.testing.assert_allclose(centroid[1], np.asarray(centroid[0]) @ rot.T + shift, atol=5e-5)
    np.testing.assert_allclose(k[1], k[0], rtol=1e-5)
    local = jnp.asarray(rng.normal(size=(len(faces), 3)), jnp.float32)
    world = frames_to_world(rotation, centroid, k, local)
    np.testing.assert_allclose(world[1], np.asarray(world[0]) @ rot.T + shift, atol=1e-4)


def test_vertex_normals_host_and_jnp_paths_agree(rng):
    vertices, faces = random_mesh(rng)
    host = vertex_normals(vertices, faces)  # float64 numpy path
    dev = vertex_normals(jnp.asarray(vertices, jnp.float32), jnp.asarray(faces))
    used = np.isin(np.arange(len(vertices)), faces)
    np.testing.assert_allclose(np.asarray(dev)[used], host[used], atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(host[used], axis=-1), 1.0, atol=1e-12)


def test_quaternions_round_trip_and_compose(rng):
    rotvecs = rng.normal(size=(64, 3)) * 2.0
    rotvecs[:4] = [[np.pi, 0, 0], [0, np.pi, 0], [0, 0, np.pi], [0, 0, 0]]  # hard cases
    mats = axis_angle_to_matrix_reference(rotvecs)
    q = matrix_to_quaternion(jnp.asarray(mats, jnp.float32))
    assert np.all(np.asarray(q[:, 0]) >= 0)
    np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(quaternion_to_matrix(q), mats, atol=2e-5)
    a, b = q[:32], q[32:]
    composed = quaternion_to_matrix(quaternion_multiply(a, b))
    np.testing.assert_allclose(composed, mats[:32] @ mats[32:], atol=5e-5)


@pytest.mark.parametrize("fn", [triangle_frames, face_normals])
def test_frames_are_differentiable(rng, fn):
    vertices, faces = random_mesh(rng, 12, 10)
    loss = lambda v: sum(jnp.sum(jnp.sin(x)) for x in jax.tree_util.tree_leaves(fn(v, faces)))
    grad = jax.grad(loss)(jnp.asarray(vertices, jnp.float32))
    assert grad.shape == vertices.shape and bool(jnp.all(jnp.isfinite(grad)))
