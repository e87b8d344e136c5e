"""Rotations shared by FLAME skinning, cameras and Gaussian rigging: axis-angle (Rodrigues),
quaternions (wxyz, gsplat's order) and homogeneous transforms. All ``jnp``, batched over
leading dims.
"""

import jax
import jax.numpy as jnp
import numpy as np

# One quaternion convention for the whole package: the splatting kernels' (they import
# nothing from the talking-head stack, so the talking head imports theirs).
from ggtalker_jax.kernels.splat.projection import quat_to_rotmat as quaternion_to_matrix

__all__ = [
    "axis_angle_to_matrix",
    "axis_angle_to_matrix_reference",
    "matrix_to_quaternion",
    "quaternion_multiply",
    "quaternion_to_matrix",
    "rigid_transform",
]


def axis_angle_to_matrix(rotvec):
    """Rodrigues' formula: axis-angle vectors to rotation matrices.

    Differentiable everywhere, including at zero rotation: near theta = 0 the sin/cos
    coefficients switch to their Taylor series, so neither value nor gradient is NaN.

    Args:
      rotvec: ``[..., 3]`` axis * angle, radians.

    Returns:
      ``[..., 3, 3]`` rotation matrices.
    """
    rotvec = jnp.asarray(rotvec)
    theta2 = jnp.sum(rotvec * rotvec, axis=-1, keepdims=True)[..., None]  # [..., 1, 1]
    small = theta2 < 1e-8
    safe2 = jnp.where(small, 1.0, theta2)
    theta = jnp.sqrt(safe2)
    # a = sin(t)/t, b = (1 - cos(t))/t^2, each with its series near zero.
    a = jnp.where(small, 1.0 - theta2 / 6.0, jnp.sin(theta) / theta)
    b = jnp.where(small, 0.5 - theta2 / 24.0, (1.0 - jnp.cos(theta)) / safe2)
    x, y, z = rotvec[..., 0], rotvec[..., 1], rotvec[..., 2]
    zero = jnp.zeros_like(x)
    k = jnp.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1)
    k = k.reshape(*rotvec.shape[:-1], 3, 3)
    eye = jnp.broadcast_to(jnp.eye(3, dtype=rotvec.dtype), k.shape)
    kk = jnp.matmul(k, k, precision=jax.lax.Precision.HIGHEST)  # no TF32 on GPUs
    return eye + a * k + b * kk


def axis_angle_to_matrix_reference(rotvec: np.ndarray) -> np.ndarray:
    """Float64 numpy oracle for :func:`axis_angle_to_matrix` (``[..., 3] -> [..., 3, 3]``)."""
    rotvec = np.asarray(rotvec, np.float64)
    out = np.empty((*rotvec.shape[:-1], 3, 3))
    for idx in np.ndindex(*rotvec.shape[:-1]):
        r = rotvec[idx]
        t = np.linalg.norm(r)
        if t < 1e-12:
            out[idx] = np.eye(3)
            continue
        k = r / t
        kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
        out[idx] = np.eye(3) + np.sin(t) * kx + (1 - np.cos(t)) * kx @ kx
    return out


def rigid_transform(rotation, translation):
    """Pack rotations and translations into homogeneous matrices.

    Args:
      rotation: ``[..., 3, 3]``.
      translation: ``[..., 3]``.

    Returns:
      ``[..., 4, 4]`` with the last row ``[0, 0, 0, 1]``.
    """
    top = jnp.concatenate([rotation, translation[..., :, None]], axis=-1)  # [..., 3, 4]
    bottom = jnp.broadcast_to(jnp.array([0.0, 0.0, 0.0, 1.0], top.dtype), (*top.shape[:-2], 1, 4))
    return jnp.concatenate([top, bottom], axis=-2)


def matrix_to_quaternion(rotation):
    """Rotation matrices ``[..., 3, 3]`` -> unit quaternions ``[..., 4]`` (wxyz, ``w >= 0``).

    Each of the four candidate formulas divides by one of ``4w, 4x, 4y, 4z``; the one with
    the largest denominator is used (Shepperd's method), so no branch loses precision near a
    180-degree turn.
    """
    r = jnp.asarray(rotation)
    m00, m11, m22 = r[..., 0, 0], r[..., 1, 1], r[..., 2, 2]
    trace = m00 + m11 + m22
    # Four times the square of each component, one per candidate.
    squares = jnp.stack(
        [1 + trace, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1
    )
    d21, d02, d10 = (
        r[..., 2, 1] - r[..., 1, 2],
        r[..., 0, 2] - r[..., 2, 0],
        r[..., 1, 0] - r[..., 0, 1],
    )
    s01, s02, s12 = (
        r[..., 0, 1] + r[..., 1, 0],
        r[..., 0, 2] + r[..., 2, 0],
        r[..., 1, 2] + r[..., 2, 1],
    )
    candidates = jnp.stack(
        [
            jnp.stack([squares[..., 0], d21, d02, d10], -1),
            jnp.stack([d21, squares[..., 1], s01, s02], -1),
            jnp.stack([d02, s01, squares[..., 2], s12], -1),
            jnp.stack([d10, s02, s12, squares[..., 3]], -1),
        ],
        -2,
    )  # [..., 4, 4]: row k is 4·q·q_k
    best = jnp.argmax(squares, axis=-1)
    q = jnp.take_along_axis(candidates, best[..., None, None], axis=-2)[..., 0, :]
    q = q / jnp.linalg.norm(q, axis=-1, keepdims=True)
    return jnp.where(q[..., :1] < 0, -q, q)


def quaternion_multiply(a, b):
    """Hamilton product ``a ∘ b`` of wxyz quaternions ``[..., 4]`` (rotate by ``b``, then
    ``a``)."""
    aw, ax, ay, az = (a[..., i] for i in range(4))
    bw, bx, by, bz = (b[..., i] for i in range(4))
    return jnp.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        -1,
    )
