"""FLAME forward pass: blendshapes, pose correctives and linear blend skinning, in ``jnp``.

The math (Li et al., "Learning a model of facial shape and expression from 4D scans", 2017):

1. ``v_shaped = v_template + shapedirs @ shape + exprdirs @ expression``
2. ``joints = J_regressor @ v_shaped``
3. ``R_j = rodrigues(pose_j)`` for (global, neck, jaw, left eye, right eye)
4. ``v_posed = v_shaped + posedirs @ concat_j>0 (R_j - I)``
5. world transforms ``G_j = G_parent(j) [R_j | joint_j - joint_parent(j)]``; skinning
   ``v = sum_j w_vj (G_j with its rest joint removed) v_posed``; then ``+ translation``.
6. landmarks are barycentric combinations of the posed face corners.

Everything is pure and batched over any leading shape, so ``jit``, ``vmap`` and ``grad``
apply directly.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from ggtalker_jax.errors import InputError
from ggtalker_jax.flame.model import FlameModel
from ggtalker_jax.geometry.rotations import axis_angle_to_matrix, rigid_transform
from ggtalker_jax.types import (
    FLAME_PARAM_FIELDS,
    FlameOutput,
    FlameParams,
    check_flame_params,
)

# Full float32 products: GPUs default to TF32 for float32 matmuls (~1e-3 relative error,
# millimetres on a head).
_einsum = functools.partial(jnp.einsum, precision=jax.lax.Precision.HIGHEST)


def _broadcast_params(params: FlameParams) -> tuple[tuple[int, ...], dict]:
    """Broadcast every field to one common leading shape ``B``; returns (B, fields)."""
    fields = {n: jnp.asarray(getattr(params, n), jnp.float32) for n in FLAME_PARAM_FIELDS}
    batch = jnp.broadcast_shapes(*(f.shape[:-1] for f in fields.values()))
    return batch, {n: jnp.broadcast_to(f, (*batch, f.shape[-1])) for n, f in fields.items()}


def flame_forward(model: FlameModel, params: FlameParams) -> FlameOutput:
    """Pose the FLAME mesh.

    Args:
      model: the FLAME model (5 joints: root, neck, jaw, left eye, right eye).
      params: :class:`FlameParams`; all fields broadcast to a common leading shape ``B``
        (e.g. ``shape [S]`` with ``expression [T, E]``).

    Returns:
      :class:`FlameOutput` with ``vertices [*B, V, 3]``, ``joints [*B, 5, 3]`` and
      ``landmarks [*B, L, 3]``.

    Raises:
      InputError: parameter sizes that do not match the model (also at trace time), or
        NaN/Inf values when called on concrete arrays (host entry).
    """
    if model.n_joints != 5:
        raise InputError(f"{model.source}: FLAME has 5 joints, this model has " f"{model.n_joints}")
    check_flame_params(params, model.n_shape, model.n_exp, where=model.source)
    batch, p = _broadcast_params(params)

    # 1. Identity and expression blendshapes.
    v_shaped = (
        jnp.broadcast_to(model.v_template, (*batch, *model.v_template.shape))
        + _einsum("...s,vcs->...vc", p["shape"], model.shapedirs)
        + _einsum("...e,vce->...vc", p["expression"], model.exprdirs)
    )  # [*B, V, 3]
    # 2. Rest joints.
    joints = _einsum("jv,...vc->...jc", model.j_regressor, v_shaped)  # [*B, J, 3]

    # 3-4. Rotations and pose correctives.
    full_pose = jnp.stack(
        [
            p["global_pose"],
            p["neck_pose"],
            p["jaw_pose"],
            p["eye_pose"][..., :3],
            p["eye_pose"][..., 3:],
        ],
        axis=-2,
    )  # [*B, J, 3]
    rot = axis_angle_to_matrix(full_pose)  # [*B, J, 3, 3]
    rel_rot = rot[..., 1:, :, :]
    pose_feature = rel_rot - jnp.broadcast_to(jnp.eye(3, dtype=rot.dtype), rel_rot.shape)
    pose_feature = pose_feature.reshape(*batch, -1)
    v_posed = v_shaped + _einsum("...p,vcp->...vc", pose_feature, model.posedirs)

    # 5. Kinematic chain (parents precede children, checked at load).
    parents = model.parents
    rel_joints = jnp.concatenate(
        [joints[..., :1, :], joints[..., 1:, :] - joints[..., list(parents[1:]), :]], axis=-2
    )
    local = rigid_transform(rot, rel_joints)  # [*B, J, 4, 4]
    world = [local[..., 0, :, :]]
    for j in range(1, len(parents)):
        world.append(
            jnp.matmul(world[parents[j]], local[..., j, :, :], precision=jax.lax.Precision.HIGHEST)
        )
    world = jnp.stack(world, axis=-3)  # [*B, J, 4, 4]
    posed_joints = world[..., :3, 3]
    # Remove each joint's rest position so the transform acts on rest-space vertices.
    offset = _einsum("...jab,...jb->...ja", world[..., :3, :3], joints)
    skin_r = world[..., :3, :3]  # [*B, J, 3, 3]
    skin_t = posed_joints - offset  # [*B, J, 3]
    blend_r = _einsum("vj,...jab->...vab", model.weights, skin_r)  # [*B, V, 3, 3]
    blend_t = _einsum("vj,...ja->...va", model.weights, skin_t)  # [*B, V, 3]
    vertices = _einsum("...vab,...vb->...va", blend_r, v_posed) + blend_t
    vertices = vertices + p["translation"][..., None, :]

    # 6. Landmarks on the posed surface.
    corners = vertices[..., model.faces[model.lmk_faces_idx], :]  # [*B, L, 3, 3]
    landmarks = _einsum("...lkc,lk->...lc", corners, model.lmk_bary_coords)
    return FlameOutput(
        vertices=vertices, joints=posed_joints + p["translation"][..., None, :], landmarks=landmarks
    )
