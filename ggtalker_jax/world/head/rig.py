"""Skeleton, skinning weights, joint regressor and pose correctives of the procedural head.

FLAME's five joints: 0 root (top of the neck column, near the origin), 1 neck (the skull's
pivot on the spine), 2 jaw (between the mandible's condyles, just in front of the ears),
3 left eye, 4 right eye (eyeball centres). Parents: ``[-1, 0, 1, 1, 1]``.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls

from ggtalker_jax.geometry.triangles import vertex_normals
from ggtalker_jax.world.head.mesh import EYE_N_LON, EYE_POLAR_DEG, HeadMesh
from ggtalker_jax.world.head.patches import MOUTH_HALF_WIDTH, STOMION_Y

PARENTS = np.array([-1, 0, 1, 1, 1], np.int64)
ROOT_JOINT = np.array([0.0, -0.012, -0.02])
NECK_JOINT = np.array([0.0, 0.002, -0.022])
JAW_JOINT = np.array([0.0, 0.008, 0.002])
# Where the jaw's skin ends at the cheek: the temporomandibular joint seen from the side.
_TMJ_X, _TMJ_Y = 0.062, 0.004


def smoothstep(lo: float, hi: float, x: np.ndarray) -> np.ndarray:
    """0 below ``lo``, 1 above ``hi`` (``lo > hi`` flips it), C1 in between; exact 0 and 1."""
    u = np.clip((np.asarray(x) - lo) / (hi - lo), 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


def root_weight(vertices: np.ndarray) -> np.ndarray:
    """[V] weight of the root joint: 0 on the head, rising to 1 at the neck cut."""
    return smoothstep(-0.118, -0.165, vertices[:, 1])


def jaw_weight(mesh: HeadMesh) -> np.ndarray:
    """[V] jaw weight: chin, jaw line, lower lip and the cavity floor; 0 on the rest.

    Skin uses a smooth field below a line from the mouth corners up to the jaw joints; the
    lips and cavity (mouth rings >= 2) follow their half (upper 0, lower 1), easing to 1/2 at
    the mouth corners, which is where the field's line starts.
    """
    v = mesh.vertices
    ax = np.abs(v[:, 0])
    # The line leaves the corners almost level (the cheek stays with the head) and climbs the
    # back of the ramus to the joint.
    rise = smoothstep(MOUTH_HALF_WIDTH, _TMJ_X, ax) ** 2
    y_sep = STOMION_Y + (_TMJ_Y - STOMION_Y) * rise
    width = 0.008 + 0.008 * rise  # sharper near the lips, softer over the cheek
    field = smoothstep(-1.0, 1.0, (y_sep - v[:, 1]) / width)
    field *= smoothstep(-0.04, -0.008, v[:, 2])  # nothing behind the mandible's ramus
    # Below the jaw: the weight runs down the throat in front and fades sooner at the sides.
    front = smoothstep(-0.02, 0.025, v[:, 2])
    sides = (1.0 - front) * smoothstep(-0.12, -0.07, v[:, 1])
    field *= smoothstep(-0.155, -0.1, v[:, 1]) * (front + sides)
    ears = smoothstep(0.054, 0.065, ax) * smoothstep(0.045, 0.03, np.abs(v[:, 1] - 0.012))
    field *= 1.0 - ears  # nor on the ears, which stand out past the jaw
    corner = smoothstep(0.6, 1.0, np.abs(np.cos(mesh.psi)))
    inner = np.where(mesh.upper, 0.5 * corner, 1.0 - 0.5 * corner)
    w = np.where((mesh.patch == 1) & (mesh.ring >= 2), inner, field)
    w = np.where((mesh.patch >= 2) | (mesh.eyeball > 0), 0.0, w)
    return w * (1.0 - root_weight(v))


def skinning_weights(mesh: HeadMesh) -> np.ndarray:
    """[V, 5] linear blend skinning weights; rows sum to 1."""
    v = mesh.vertices
    w = np.zeros((len(v), 5))
    w[:, 0] = root_weight(v)
    w[:, 2] = jaw_weight(mesh)
    w[:, 1] = 1.0 - w[:, 0] - w[:, 2]
    for k in (1, 2):
        w[mesh.eyeball == k] = 0.0
        w[mesh.eyeball == k, 2 + k] = 1.0
    return w


def _solve_convex(vertices: np.ndarray, candidates: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Non-negative weights over ``candidates`` (vertex ids) that sum to 1 and regress
    ``target`` [3]; a dense [V] row."""
    lam = 10.0  # metres per unit of the sum-to-one residual: enforce it hard
    a = np.concatenate([vertices[candidates].T, lam * np.ones((1, len(candidates)))])
    b = np.concatenate([target, [lam]])
    sol, resid = nnls(a, b, maxiter=50 * len(candidates))
    if resid > 1e-7:
        raise RuntimeError(f"joint {target} is outside the hull of its regressor vertices")
    row = np.zeros(len(vertices))
    row[candidates] = sol / sol.sum()
    return row


def joint_regressor(mesh: HeadMesh) -> np.ndarray:
    """[5, V] dense regressor; rows non-negative, summing to 1, exact on the template.

    Root, neck and jaw: non-negative least squares over skin vertices around the joint's
    height (both sides of the head, so the midline joint lies inside their hull). Eyes: the
    equator ring of each eyeball, whose mean is its centre.
    """
    v = mesh.vertices
    plain_skin = (mesh.eyeball == 0) & (mesh.patch == 0)
    reg = np.zeros((5, len(v)))
    for j, joint in enumerate([ROOT_JOINT, NECK_JOINT]):
        cand = np.nonzero(plain_skin & (np.abs(v[:, 1] - joint[1]) < 0.012))[0]
        reg[j] = _solve_convex(v, cand, joint)
    near_tmj = (np.abs(v[:, 1] - JAW_JOINT[1]) < 0.015) & (np.abs(v[:, 2] - JAW_JOINT[2]) < 0.02)
    reg[2] = _solve_convex(v, np.nonzero(plain_skin & near_tmj)[0], JAW_JOINT)
    equator = EYE_POLAR_DEG.index(90)
    for k in (1, 2):
        ids = np.nonzero(mesh.eyeball == k)[0]
        ring = ids[1 + equator * EYE_N_LON : 1 + (equator + 1) * EYE_N_LON]
        reg[2 + k, ring] = 1.0 / EYE_N_LON
    return reg


def pose_correctives(mesh: HeadMesh, weights: np.ndarray) -> np.ndarray:
    """[V, 3, 36] FLAME pose correctives on (R_j − I) of joints 1..4 (row-major 3x3 each).

    Small fields (about a millimetre at 0.25 rad): opening the jaw (rotation about +x, so
    R[2,1] − 0 = sin and R[1,2] = −sin) draws the skin of the jaw's blend zone in and the chin
    skin down; nodding the neck bulges the throat and turning it shears the neck skin. The
    eye joints have none. Each field vanishes where its joint has no weight.
    """
    v = mesh.vertices
    n = vertex_normals(v, mesh.faces)
    skin = (mesh.eyeball == 0)[:, None]
    w_jaw, w_root = weights[:, 2], weights[:, 0]
    # Fields per unit sin(angle).
    blend = 4.0 * w_jaw * (1.0 - w_jaw)
    jaw_open = (-2.5e-3 * blend)[:, None] * n + (-0.8e-3 * w_jaw)[:, None] * np.array(
        [0.0, 1.0, 0.0]
    )
    neck_blend = 4.0 * w_root * (1.0 - w_root)
    front = smoothstep(-0.01, 0.03, v[:, 2])
    nod = (2.0e-3 * neck_blend * front)[:, None] * n
    turn = (
        (1.5e-3 * neck_blend)[:, None]
        * np.stack([v[:, 2] - ROOT_JOINT[2], np.zeros(len(v)), -v[:, 0]], axis=-1)
        / 0.057
    )
    posedirs = np.zeros((len(v), 3, 36))
    # Neck (joint 1) features 0..8: about x → entries 7 (+sin) and 5 (−sin); about y → 2, 6.
    posedirs[:, :, 7] += 0.5 * nod
    posedirs[:, :, 5] -= 0.5 * nod
    posedirs[:, :, 2] += 0.5 * turn
    posedirs[:, :, 6] -= 0.5 * turn
    # Jaw (joint 2) features 9..17.
    posedirs[:, :, 9 + 7] += 0.5 * jaw_open
    posedirs[:, :, 9 + 5] -= 0.5 * jaw_open
    return posedirs * skin[..., None]
