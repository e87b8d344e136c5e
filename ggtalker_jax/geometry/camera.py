"""Cameras in the OpenCV/gsplat convention: world->camera ``viewmat``, +z forward, +y down."""

import numpy as np

from ggtalker_jax.errors import InputError


def look_at(eye, target, up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """World->camera matrix of a camera at ``eye`` looking at ``target``.

    Args:
      eye, target: ``[3]`` world positions.
      up: ``[3]`` world direction that appears upward in the image.

    Returns:
      ``[4, 4]`` float32 ``viewmat`` (rows of the rotation: camera x right, y down, z forward).
    """
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


def intrinsics(focal: float, width: int, height: int) -> np.ndarray:
    """Pinhole ``K [3, 3]`` with square pixels and the principal point at the image centre."""
    return np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]], np.float32)


def project_points(points, viewmat, K):
    """Project world points to pixels.

    Args:
      points: ``[..., P, 3]`` world positions.
      viewmat: ``[4, 4]`` world->camera.  K: ``[3, 3]``.

    Returns:
      ``(uv [..., P, 2], depth [..., P])``: pixel coordinates (pixel centres at +0.5) and
      camera-space z.
    """
    points = np.asarray(points, np.float64)
    cam = points @ viewmat[:3, :3].T + viewmat[:3, 3]
    z = cam[..., 2]
    uv = (cam[..., :2] / z[..., None]) @ K[:2, :2].T + K[:2, 2]
    return uv, z
