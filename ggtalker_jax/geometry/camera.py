"""Cameras in the OpenCV/gsplat convention: world->camera ``viewmat``, +z forward, +y down,
pixel centres at +0.5.

Every function takes host arrays or JAX arrays. Host inputs (numpy arrays, Python numbers)
are computed in float64 and returned as float32, so cameras made once per clip on the host
keep full precision (the synthetic world's files depend on these exact bits). JAX inputs stay
in ``jnp``: traceable, differentiable, batched over leading dims.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ggtalker_jax.errors import InputError


def _on_host(*arrays) -> bool:
    return not any(isinstance(a, jax.Array) for a in arrays)


def look_at(eye, target, up=(0.0, 1.0, 0.0)):
    """World->camera matrix of a camera at ``eye`` looking at ``target``.

    Args:
      eye, target: ``[3]`` world positions (``[..., 3]`` for JAX inputs).
      up: ``[3]`` world direction that appears upward in the image.

    Returns:
      ``[..., 4, 4]`` float32 ``viewmat`` (rows of the rotation: camera x right, y down, z
      forward).

    Raises:
      InputError: (host inputs) ``up`` parallel to the viewing direction.
    """
    if not _on_host(eye, target, up):
        return _look_at_jnp(eye, target, up)
    eye, target, up = (np.asarray(a, np.float64) for a in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-9:
        raise InputError(
            f"look_at: up {up} is parallel to the viewing direction {z}; pass another up vector"
        )
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    view = np.eye(4)
    view[:3, :3] = np.stack([x, y, z])
    view[:3, 3] = -view[:3, :3] @ eye
    return view.astype(np.float32)


def _look_at_jnp(eye, target, up):
    eye, target = jnp.asarray(eye), jnp.asarray(target)
    up = jnp.broadcast_to(jnp.asarray(up, eye.dtype), eye.shape)
    unit = lambda v: v / jnp.linalg.norm(v, axis=-1, keepdims=True)
    z = unit(target - eye)
    x = unit(jnp.cross(z, up))
    y = jnp.cross(z, x)
    rotation = jnp.stack([x, y, z], axis=-2)  # rows
    translation = -jnp.einsum("...ij,...j->...i", rotation, eye, precision="highest")
    top = jnp.concatenate([rotation, translation[..., None]], axis=-1)  # [..., 3, 4]
    bottom = jnp.broadcast_to(jnp.array([0.0, 0.0, 0.0, 1.0], top.dtype), (*top.shape[:-2], 1, 4))
    return jnp.concatenate([top, bottom], axis=-2)


def intrinsics(focal, width: int, height: int):
    """Pinhole ``K [..., 3, 3]`` with square pixels and the principal point at the image
    centre (``focal`` in pixels; any leading shape for JAX inputs)."""
    if _on_host(focal):
        return np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]], np.float32)
    focal = jnp.asarray(focal)
    zero, one = jnp.zeros_like(focal), jnp.ones_like(focal)
    rows = [focal, zero, zero + width / 2, zero, focal, zero + height / 2, zero, zero, one]
    return jnp.stack(rows, axis=-1).reshape(*focal.shape, 3, 3)


def portrait_camera(
    target,
    size: int,
    yaw: float = 0.0,
    pitch: float = 0.0,
    distance: float = 0.9,
    field: float = 0.42,
):
    """A square camera looking at ``target`` from ``distance`` metres in front of it (+z),
    turned by ``yaw`` (about +y) and ``pitch`` (towards +y) around it, framing ``field``
    metres across the image at the target's depth.

    Returns:
      ``(viewmat [4, 4], K [3, 3])``.
    """
    xp = np if _on_host(target, yaw, pitch) else jnp
    direction = xp.stack(
        [
            xp.sin(yaw) * xp.cos(pitch),
            xp.sin(pitch) * xp.ones_like(yaw),
            xp.cos(yaw) * xp.cos(pitch),
        ]
    )
    eye = xp.asarray(target) + distance * direction
    focal = size * distance / field
    return look_at(eye, target), intrinsics(focal, size, size)


def project_points(points, viewmat, K):
    """Project world points to pixels.

    Args:
      points: ``[..., P, 3]`` world positions.
      viewmat: ``[4, 4]`` world->camera.  K: ``[3, 3]``.

    Returns:
      ``(uv [..., P, 2], depth [..., P])``: pixel coordinates (pixel centres at +0.5) and
      camera-space z.
    """
    if _on_host(points, viewmat, K):
        points = np.asarray(points, np.float64)
    cam = points @ viewmat[:3, :3].T + viewmat[:3, 3]
    z = cam[..., 2]
    uv = (cam[..., :2] / z[..., None]) @ K[:2, :2].T + K[:2, 2]
    return uv, z


def orbit_viewmat(viewmat, pivot, yaw: float, pitch: float = 0.0):
    """The camera ``viewmat`` moved on a sphere around ``pivot``: turned by ``yaw`` about the
    world's +y axis, then by ``pitch`` about the camera's own x axis (radians), still looking
    the same way at the pivot (a novel view of a head at ``pivot``).

    With ``M`` the rigid motion of the camera (rotation about ``pivot``), the moved camera's
    world->camera matrix is ``V · M⁻¹``. Signs follow :func:`portrait_camera`: positive yaw
    moves the camera towards +x, positive pitch moves it up (towards +y).

    Args:
      viewmat: ``[..., 4, 4]`` world->camera.  pivot: ``[3]`` world point.
      yaw, pitch: radians (host numbers).

    Returns:
      ``[..., 4, 4]`` float32 (host inputs: numpy).
    """
    xp = np if _on_host(viewmat, pivot) else jnp
    viewmat = xp.asarray(viewmat, xp.float64 if xp is np else jnp.float32)
    cy, sy = np.cos(yaw), np.sin(yaw)
    turn = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])  # about world +y
    # Pitch about the camera's x axis expressed in world coordinates (first camera's).
    axis = np.asarray(viewmat)[(0,) * (viewmat.ndim - 2)][0, :3].astype(np.float64)
    axis = axis / max(np.linalg.norm(axis), 1e-12)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    # Rodrigues; about +x_cam (which points right), a negative angle lifts the camera.
    tilt = np.eye(3) + np.sin(-pitch) * k + (1 - np.cos(pitch)) * (k @ k)
    rotation = tilt @ turn
    pivot = np.asarray(pivot, np.float64)
    inverse = np.eye(4)
    inverse[:3, :3] = rotation.T
    inverse[:3, 3] = -rotation.T @ pivot + pivot  # M⁻¹ = T(p) Rᵀ T(-p)
    out = viewmat @ xp.asarray(inverse, viewmat.dtype)
    return out.astype(np.float32) if xp is np else out
