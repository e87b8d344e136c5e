"""Rotation helpers shared by FLAME skinning, cameras and Gaussian rigging."""

import jax
import jax.numpy as jnp
import numpy as np


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
