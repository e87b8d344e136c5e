"""The rest of a synthetic shot: torso mesh, background, head motion and cameras.

All functions are deterministic numpy given a ``np.random.Generator``; units are metres,
radians and frames at 25 fps. Axes follow FLAME: +y up, +z out of the face, +x the subject's
left.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ggtalker_jax.types import Mesh


def make_torso(
    neck_bottom: np.ndarray,
    neck_radius: float,
    rng: np.random.Generator,
    rings: int = 20,
    segments: int = 64,
) -> Mesh:
    """Shoulders and upper chest as a lofted surface under the neck.

    A collar opening slightly wider than the neck whose floor lies inside the neck just above
    its cut (``neck_bottom``, the centre of the neck loop), where the neck is skinned to the
    root alone: the open neck disappears into the shirt with no see-through gap, whatever the
    head does. The torso is rigid and follows FLAME's root joint (:func:`pose_torso`).

    Args:
      neck_bottom: ``[3]`` centre of the head mesh's neck loop at rest.
      neck_radius: radius of that loop, metres.
      rng: identity randomness (build, shirt colour and pattern).
    """
    width = rng.uniform(0.19, 0.23)  # half shoulder width
    depth = rng.uniform(0.10, 0.125)  # half chest depth
    slope = rng.uniform(0.25, 0.4)  # trapezius: drop per metre out from the neck
    collar = rng.uniform(1.1, 1.2)  # collar opening, in neck radii
    # Ring 0 is the collar's floor: inside the neck, just above the cut, where the neck is
    # skinned to the root alone. Rings 1.. run from the collar's rim (2.5 cm above the cut,
    # a little wider than the neck) out to the shoulders over the first third, then straight
    # down as chest, back and upper arms.
    t = np.linspace(0.0, 1.0, rings - 1)[:, None]  # 0 at the rim, 1 at the bottom
    phi = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)[None, :]  # 0 = front
    sin, cos = np.sin(phi), np.cos(phi)
    grow = np.clip(t / 0.35, 0, 1) ** 0.7
    rim = neck_radius * collar
    rx = rim + (width - rim) * grow
    rz = rim + (depth - rim) * grow
    # Circles at the collar, squaring off towards the shoulders.
    x = rx * np.sign(sin) * np.abs(sin) ** (1.0 - 0.4 * grow)
    z = -0.012 * grow + rz * np.sign(cos) * np.abs(cos) ** (1.0 - 0.2 * grow)
    # Height: the shoulders slope gently out to the sides, chest and back fall away faster,
    # the shoulder tips round off downwards.
    out = np.hypot(x, z * 1.6)
    y = (
        0.025
        - slope * np.maximum(out - rim, 0.0)
        - 0.06 * np.clip((np.abs(sin) * grow - 0.8) / 0.2, 0, 1) ** 2
        - 0.22 * np.clip((t - 0.35) / 0.65, 0, 1)
    )
    floor = 0.9 * neck_radius
    x = np.concatenate([floor * sin, x])
    y = np.concatenate([np.full_like(sin, 0.004), y])
    z = np.concatenate([floor * cos, z])
    x, y, z = x + neck_bottom[0], y + neck_bottom[1], z + neck_bottom[2]
    vertices = np.stack([x, y, z], -1).reshape(-1, 3)
    faces, ft, vt = [], [], []
    for r in range(rings):
        for s in range(segments + 1):
            vt.append([s / segments, 1.0 - r / (rings - 1)])
    for r in range(rings - 1):
        for s in range(segments):
            a, b = r * segments + s, r * segments + (s + 1) % segments
            c, d = a + segments, b + segments
            ta, tb = r * (segments + 1) + s, r * (segments + 1) + s + 1
            tc, td = ta + segments + 1, tb + segments + 1
            # Outward (away from the axis) counter-clockwise winding.
            faces += [[a, c, b], [b, c, d]]
            ft += [[ta, tc, tb], [tb, tc, td]]
    return Mesh(
        vertices.astype(np.float32),
        np.asarray(faces, np.int32),
        np.asarray(vt, np.float32),
        np.asarray(ft, np.int32),
        _shirt_texture(rng),
    )


def _shirt_texture(rng: np.random.Generator, size: int = 256) -> np.ndarray:
    base = rng.uniform(0.1, 0.9, 3)
    tex = np.tile(base, (size, size, 1))
    kind = rng.integers(3)
    ii, jj = np.mgrid[0:size, 0:size]
    if kind == 0:  # stripes
        period = rng.integers(8, 24)
        tex = np.where(((jj // period) % 2 == 0)[..., None], tex * 0.7, tex)
    elif kind == 1:  # checks
        period = rng.integers(10, 30)
        tex = np.where((((ii // period) + (jj // period)) % 2 == 0)[..., None], tex * 0.75, tex)
    # Weave: fine noise so the torso also has detail to reproduce.
    tex = tex * (
        1 + 0.08 * ndimage.gaussian_filter(rng.standard_normal((size, size)), 0.6)[..., None]
    )
    return (np.clip(tex, 0, 1) * 255).astype(np.uint8)


def make_background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A static room-like backdrop ``[H, W, 3]`` uint8: a vertical gradient plus soft blobs."""
    top, bottom = rng.uniform(0.2, 0.9, 3), rng.uniform(0.1, 0.7, 3)
    t = np.linspace(0, 1, height)[:, None, None]
    bg = np.broadcast_to(top * (1 - t) + bottom * t, (height, width, 3)).copy()
    blobs = ndimage.gaussian_filter(
        rng.standard_normal((height, width, 3)), (height / 10, width / 10, 0)
    )
    bg += 0.6 * blobs / (np.abs(blobs).max() + 1e-9) * 0.25
    bg *= 1 + 0.03 * rng.standard_normal((height, width, 1))
    return (np.clip(bg, 0, 1) * 255).astype(np.uint8)


def smooth_track(
    rng: np.random.Generator, n_frames: int, amplitude: float, period_frames: float
) -> np.ndarray:
    """A smooth random 1-D track ``[T]`` (filtered noise, max |value| = ``amplitude``)."""
    pad = int(3 * period_frames)
    noise = ndimage.gaussian_filter1d(rng.standard_normal(n_frames + 2 * pad), period_frames / 2.5)[
        pad : pad + n_frames
    ]
    peak = np.abs(noise).max() + 1e-9
    return (amplitude * noise / peak).astype(np.float32)


def head_motion(
    rng: np.random.Generator,
    n_frames: int,
    max_yaw: float = 0.75,
    max_pitch: float = 0.3,
    max_roll: float = 0.15,
) -> dict[str, np.ndarray]:
    """Smooth head motion with large rotations, FLAME-style.

    The head turns at the neck (``neck_pose``: large yaw, pitch and roll), so the base of the
    neck stays in the collar; the body sways a little (``global_pose`` and ``translation``,
    which the torso follows: :func:`pose_torso`).

    Returns:
      ``global_pose``, ``neck_pose``, ``translation`` ``[T, 3]`` and ``eye_pose [T, 6]``
      (small gaze shifts), float32.
    """
    yaw = smooth_track(rng, n_frames, rng.uniform(0.6, 1.0) * max_yaw, 35)
    pitch = smooth_track(rng, n_frames, rng.uniform(0.4, 1.0) * max_pitch, 30)
    roll = smooth_track(rng, n_frames, rng.uniform(0.3, 1.0) * max_roll, 45)
    neck_pose = np.stack([pitch, yaw, roll], -1)
    sway = [0.04, 0.08, 0.03]  # pitch, yaw, roll of the whole body
    global_pose = np.stack([smooth_track(rng, n_frames, a, 50) for a in sway], -1)
    gaze = np.stack(
        [smooth_track(rng, n_frames, 0.12, 20), smooth_track(rng, n_frames, 0.2, 20)], -1
    )
    eye_pose = np.concatenate([gaze, np.zeros((n_frames, 1)), gaze, np.zeros((n_frames, 1))], -1)
    translation = np.stack([smooth_track(rng, n_frames, 0.008, 40) for _ in range(3)], -1)
    return {
        "global_pose": global_pose.astype(np.float32),
        "neck_pose": neck_pose.astype(np.float32),
        "eye_pose": eye_pose.astype(np.float32),
        "translation": translation.astype(np.float32),
    }


def pose_torso(
    vertices: np.ndarray, root: np.ndarray, global_pose: np.ndarray, root_posed: np.ndarray
) -> np.ndarray:
    """Move a rest torso rigidly with FLAME's root joint (as a fully root-weighted vertex).

    Args:
      vertices: ``[Vt, 3]`` rest torso.
      root: ``[3]`` rest root joint of the identity's head.
      global_pose: ``[T, 3]`` axis-angle of the root.
      root_posed: ``[T, 3]`` posed root joint (rest root + translation).

    Returns:
      ``[T, Vt, 3]`` float32.
    """
    from ggtalker_jax.geometry.rotations import axis_angle_to_matrix_reference

    rot = axis_angle_to_matrix_reference(np.asarray(global_pose, np.float64))  # [T, 3, 3]
    local = np.asarray(vertices, np.float64) - np.asarray(root, np.float64)
    posed = np.einsum("tij,vj->tvi", rot, local) + np.asarray(root_posed)[:, None, :]
    return posed.astype(np.float32)
