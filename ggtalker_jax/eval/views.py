"""Do two cameras of the same instant show the same head? Landmarks projected into each."""

from __future__ import annotations

import numpy as np

from ggtalker_jax.geometry.camera import project_points


def project_landmarks(
    landmarks: np.ndarray, viewmat: np.ndarray, K: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of 3D points under per-frame cameras.

    Args:
      landmarks: ``[T, L, 3]`` world points.  viewmat: ``[T, 4, 4]``.  K: ``[T, 3, 3]``.

    Returns:
      ``(uv [T, L, 2], depth [T, L])`` (pixel centres at +0.5).
    """
    uv, depth = zip(
        *(project_points(p, v, k) for p, v, k in zip(landmarks, viewmat, K, strict=True)),
        strict=True,
    )
    return np.stack(uv), np.stack(depth)


def landmarks_on_mask(
    landmarks: np.ndarray,
    viewmat: np.ndarray,
    K: np.ndarray,
    mask: np.ndarray,
    radius: int = 0,
) -> np.ndarray:
    """Which landmarks project onto a mask (e.g. the head mask of the same camera).

    Args:
      landmarks: ``[T, L, 3]``.  viewmat: ``[T, 4, 4]``.  K: ``[T, 3, 3]``.
      mask: ``[T, H, W]`` (nonzero = on).
      radius: pixels of tolerance (the mask is dilated by a square of this radius): a
        landmark on the silhouette (the nose bridge in profile) may round to the pixel beside.

    Returns:
      ``[T, L]`` bool; points in front of the camera whose pixel is on the mask.
    """
    uv, depth = project_landmarks(landmarks, viewmat, K)
    mask = np.asarray(mask) > 0
    if radius > 0:
        from scipy import ndimage

        mask = ndimage.maximum_filter(mask, size=(1, 2 * radius + 1, 2 * radius + 1))
    t, h, w = mask.shape
    col = np.floor(uv[..., 0]).astype(int)
    row = np.floor(uv[..., 1]).astype(int)
    inside = (depth > 0) & (col >= 0) & (col < w) & (row >= 0) & (row < h)
    frame = np.broadcast_to(np.arange(t)[:, None], col.shape)
    hit = np.zeros(col.shape, bool)
    hit[inside] = mask[frame[inside], row[inside], col[inside]]
    return hit
