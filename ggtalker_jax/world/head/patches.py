"""Invaginations of the skin grid: the mouth cavity and the eye pockets.

A rectangular patch of grid vertices is moved, its connectivity unchanged, so the surface stays
closed. The patch's vertices are grouped in concentric rectangular rings by their grid distance
``d`` to the patch border (``d = 0`` is the border and keeps its skin position; the innermost
ring is two rows tall). Each ring becomes one loop in 3D, placed by a per-ring profile: the
outer rings stay on the skin, the middle ones form the lips or eyelids, and the inner ones fold
back behind them into a pocket (the mouth cavity, or the socket lining around an eyeball).
Within a ring, a vertex's place along its loop is the angle ``psi`` of its patch-local
coordinates (``s`` right, ``t`` up, both scaled so the ring is the unit square), so every loop
runs right corner → top → left corner → bottom, and ``t > 0`` marks the upper half (upper lip,
cavity roof) that stays with the head while the lower half follows the jaw.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ggtalker_jax.world.head.surface import project_to_skin, skin_front_z

MM = 1e-3

# Mouth layout: stomion (lip line centre) height, mouth half-width, eyeball radius and centres.
STOMION_Y = -0.0475
MOUTH_HALF_WIDTH = 25 * MM
LIP_GAP = 0.15 * MM  # half the gap between the closed inner lips
EYE_RADIUS = 12 * MM
EYE_CENTRE_XY = (0.032, 0.034)
EYE_DEPTH_BEHIND_SKIN = 11.2 * MM  # eyeball centre behind the skin at the eye centre


@dataclasses.dataclass(frozen=True)
class PatchRings:
    """A rectangular patch of the skin grid and its ring coordinates.

    Attributes:
      rows: [B] grid rows of the patch, top to bottom (``B`` even).
      cols: [A] grid columns (mod the column count), left (−x) to right (+x).
      ring: [B, A] ring index ``d`` (0 = border).
      s, t: [B, A] position in the ring's unit square (``t > 0`` upper half).
      psi: [B, A] angle along the loop, radians in (−π, π].
    """

    rows: np.ndarray
    cols: np.ndarray
    ring: np.ndarray
    s: np.ndarray
    t: np.ndarray
    psi: np.ndarray

    @property
    def n_rings(self) -> int:
        return int(self.ring.max()) + 1

    @property
    def upper(self) -> np.ndarray:
        """[B, A] bool, the upper half."""
        return self.t > 0


def patch_rings(rows: np.ndarray, cols: np.ndarray) -> PatchRings:
    """Ring coordinates of a patch with ``B`` (even) rows and ``A`` (> B) columns."""
    n_b, n_a = len(rows), len(cols)
    if n_b % 2 or n_a <= n_b:
        raise ValueError(f"patch needs an even row count below its column count, got {n_b}x{n_a}")
    b, a = np.meshgrid(np.arange(n_b), np.arange(n_a), indexing="ij")
    ring = np.minimum(np.minimum(a, n_a - 1 - a), np.minimum(b, n_b - 1 - b))
    half_w = (n_a - 1) / 2 - ring
    half_h = (n_b - 1) / 2 - ring
    s = (a - (n_a - 1) / 2) / half_w
    t = ((n_b - 1) / 2 - b) / half_h
    return PatchRings(np.asarray(rows), np.asarray(cols), ring, s, t, np.arctan2(t, s))


def _soft_sign_power(x: np.ndarray, p: float) -> np.ndarray:
    """sign(x) |x|^p: fuller (p < 1) or flatter (p > 1) loops than an ellipse."""
    return np.sign(x) * np.abs(x) ** p


def _blend_to_skin(original: np.ndarray, target: np.ndarray, w: float) -> np.ndarray:
    """Blend two skin points [..., 3] and put the result back on the skin."""
    return project_to_skin((1.0 - w) * original + w * target)


def _relax_ring(points: np.ndarray, mask: np.ndarray, iters: int, keep_clear=None) -> np.ndarray:
    """Laplacian relaxation of the masked patch vertices over the skin.

    Each step moves a masked vertex to the mean of its four grid neighbours and back onto the
    skin, which evens out the cells between a patch's square border and its inner loops.

    Args:
      points: [B, A, 3]; masked vertices must not lie on the patch border.
      mask: [B, A] bool.
      keep_clear: optional ``f(points) -> points`` applied after every step.
    """
    out = points.copy()
    for _ in range(iters):
        mean = 0.25 * (
            np.roll(out, 1, 0) + np.roll(out, -1, 0) + np.roll(out, 1, 1) + np.roll(out, -1, 1)
        )
        moved = project_to_skin(mean[mask])
        out[mask] = moved if keep_clear is None else keep_clear(moved)
    return out


def mouth_positions(original: np.ndarray, rings: PatchRings) -> np.ndarray:
    """Positions [B, A, 3] of the mouth patch (needs 8 rings: a 16-row patch).

    Ring roles (outside → in): 0 skin border, 1 perioral skin, 2 vermilion border, 3 lip
    fronts, 4 inner lip line (upper and lower halves ``2 * LIP_GAP`` apart), 5 inner face of
    the lips, 6 cavity, 7 back wall.

    Args:
      original: [B, A, 3] the patch's skin positions before the move.
    """
    if rings.n_rings != 8:
        raise ValueError(f"the mouth profile needs 8 rings, the patch has {rings.n_rings}")
    d, up = rings.ring, rings.upper
    # Per ring: loop half-width, upper and lower half-heights (mm), and the superellipse
    # exponent (rounded rectangles outside, to meet the square border; ellipses inside).
    half_w = np.array([0, 33, 27, 26, 25, 24, 21, 11])[d] * MM
    h_up = np.array([0, 16, 9, 5, 0, 5, 11, 6])[d] * MM
    h_lo = np.array([0, 18, 10, 6, 0, 5, 10, 6])[d] * MM
    power = 2.0 / np.array([1, 4.0, 2.4, 2.4, 2, 2.2, 2.6, 3.0])[d]
    x = half_w * _soft_sign_power(np.cos(rings.psi), power)
    big_x = np.clip(x / MOUTH_HALF_WIDTH, -1.0, 1.0)
    line_y = STOMION_Y - 1.0 * MM * big_x**2  # the lip line dips slightly at the corners
    # Cupid's bow on the upper vermilion border: peaks either side of a central dip.
    peaks = 0.14 * np.exp(-(((np.abs(big_x) - 0.22) / 0.13) ** 2))
    bow = 1.0 + np.where((d == 2) & up, peaks - 0.1 * np.exp(-((big_x / 0.1) ** 2)), 0.0)
    y = line_y + np.where(up, h_up, h_lo) * bow * _soft_sign_power(np.sin(rings.psi), power)
    y = np.where(d == 4, line_y + np.where(up, LIP_GAP, -LIP_GAP), y)
    # Depth: lip rings stand ahead of the skin (less toward the corners); the inner rings are
    # measured back from the lip line.
    taper = np.clip(1.0 - big_x**2, 0.0, 1.0) ** 0.6
    line_z = skin_front_z(x, line_y) + 2.2 * MM * taper
    ahead = np.select([d == 2, d == 3], [0.8 * MM, np.where(up, 4.0, 4.6) * MM], 0.0)
    depth = np.array([0, 0, 0, 0, 0, 7, 19, 32])[d] * MM
    z = np.where(d >= 4, line_z - depth, skin_front_z(x, y) + ahead * taper)
    out = np.stack([x, y, z], axis=-1)
    # Ring 1 is skin most of the way from the grid to its loop; ring 0 is the grid itself.
    out = np.where((d == 1)[..., None], _blend_to_skin(original, out, 0.8), out)
    out = np.where((d == 0)[..., None], original, out)
    return _relax_ring(out, d == 1, 8)


def eye_centre(side: int) -> np.ndarray:
    """[3] centre of the left (side=+1, +x) or right (side=−1) eyeball."""
    x, y = EYE_CENTRE_XY
    return np.array([side * x, y, float(skin_front_z(x, y)) - EYE_DEPTH_BEHIND_SKIN])


def eye_pocket_positions(original: np.ndarray, rings: PatchRings, centre: np.ndarray) -> np.ndarray:
    """Positions [B, A, 3] of an eye patch (needs 6 rings: a 12-row patch).

    Ring roles: 0 skin border, 1 skin around the orbit, 2 eyelid surfaces, 3 lid margin (the
    edge of the visible eye opening, just off the eyeball), 4 socket lining behind the
    eyeball's equator, 5 back of the socket. Rings 3-5 lie on spheres around ``centre``, so the
    eyeball sits in a closed pocket that only opens between the lid margins.
    """
    if rings.n_rings != 6:
        raise ValueError(f"the eye profile needs 6 rings, the patch has {rings.n_rings}")
    d, up = rings.ring, rings.upper
    c, sn = np.cos(rings.psi), np.sin(rings.psi)
    # Per ring: almond half-width, upper/lower half-heights (mm), superellipse exponent, and
    # the radius of the sphere around the eyeball centre the ring lies on.
    half_w = np.array([0, 18, 13.8, 12.0, 0, 0])[d] * MM
    h_up = np.array([0, 13, 8.8, 5.2, 0, 0])[d] * MM
    h_lo = np.array([0, 11, 7.4, 4.2, 0, 0])[d] * MM
    power = 2.0 / np.array([1, 3.5, 2.2, 2.0, 2, 2])[d]
    r = EYE_RADIUS + np.array([0, 0, 3.4, 0.7, 1.6, 1.6])[d] * MM
    x = half_w * _soft_sign_power(c, power)
    y = np.where(up, h_up, h_lo) * _soft_sign_power(sn, power)
    # Lids (rings 2-3): on their sphere, in front of the eyeball centre.
    z = np.sqrt(np.maximum(r * r - x * x - y * y, (1.5 * MM) ** 2))
    lid = centre + np.stack([x, y, z], axis=-1)
    # Socket (rings 4-5): polar angle from the forward axis, behind the equator.
    polar = np.deg2rad(np.array([0, 0, 0, 0, 105, 160]))[d]
    sock = centre + r[..., None] * np.stack(
        [np.sin(polar) * c, np.sin(polar) * sn, np.cos(polar)], axis=-1
    )

    def sink(p: np.ndarray) -> np.ndarray:
        """Pull skin a third of the way down toward the lids, staying clear of the eyeball;
        so the orbit's hollow spreads over two rings instead of one step."""
        off = p - centre
        dist = np.linalg.norm(off, axis=-1, keepdims=True)
        floor = EYE_RADIUS + 4.5 * MM
        return centre + off * np.maximum(dist - 0.35 * (dist - floor), floor) / dist

    # Ring 1: skin most of the way from the grid toward a wider almond, then sunk.
    target = project_to_skin(centre + np.stack([x, y, np.full_like(x, 0.03)], axis=-1))
    out = np.where((d >= 4)[..., None], sock, lid)
    out = np.where((d == 1)[..., None], sink(_blend_to_skin(original, target, 0.75)), out)
    out = np.where((d == 0)[..., None], original, out)
    return _relax_ring(out, d == 1, 8, sink)
