"""The procedural head's outer skin: a signed-distance sculpt and its latitude/longitude grid.

Units are metres in FLAME's axes: +y up, +z out of the face, +x the subject's left.

The sculpt is a smooth union of ellipsoids (cranium, face, jaw, chin, cheekbones, brow ridge,
nose, alae, ears) and an elliptic neck cylinder. It is star-shaped seen from
:data:`CAST_CENTRE`, so one ray per grid vertex finds the skin: rows above the neck are
latitudes of rays from that centre, rows of the neck are horizontal rays from the neck axis at
fixed heights, and the last row is the open neck cut. The centre lies on the neck axis, so both
kinds of ray of one column stay in the same vertical plane and the two parts meet seamlessly.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# Neck axis (x, z): the neck cylinder is centred here, and so are the skin rays.
NECK_AXIS_XZ = (0.0, -0.02)
# Origin of the head's skin rays (on the neck axis, at about eye level).
CAST_CENTRE = np.array([0.0, 0.02, -0.02])
# Height of the open neck cut, and where the neck rows begin (below the chin).
NECK_CUT_Y = -0.17
NECK_TOP_Y = -0.118


def _ellipsoid(p: np.ndarray, centre, radii) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipsoid; p [..., 3] → [...] metres."""
    q = (p - np.asarray(centre)) / np.asarray(radii)
    k0 = np.linalg.norm(q, axis=-1)
    k1 = np.linalg.norm(q / np.asarray(radii), axis=-1)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-12)


def _round_cone(p: np.ndarray, a, b, ra: float, rb: float, squash_x: float) -> np.ndarray:
    """Distance to a tapered capsule from ``a`` (radius ra) to ``b`` (radius rb).

    ``squash_x`` > 1 narrows it side to side (a nose is taller than it is wide).
    """
    p = p * np.array([squash_x, 1.0, 1.0])
    a = np.asarray(a) * np.array([squash_x, 1.0, 1.0])
    b = np.asarray(b) * np.array([squash_x, 1.0, 1.0])
    ab = b - a
    t = np.clip(((p - a) @ ab) / (ab @ ab), 0.0, 1.0)
    closest = a + t[..., None] * ab
    return np.linalg.norm(p - closest, axis=-1) - (ra + t * (rb - ra))


def _smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum (a rounded union) with blend width ``k`` metres."""
    h = np.maximum(k - np.abs(a - b), 0.0) / k
    return np.minimum(a, b) - h * h * k * 0.25


def _smax(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Smooth maximum (a rounded intersection or subtraction)."""
    return -_smin(-a, -b, k)


def _nose_bridge(p: np.ndarray) -> np.ndarray:
    return _round_cone(p, (0.0, 0.042, 0.08), (0.0, 0.001, 0.109), 0.0065, 0.0105, 1.0)


def _ala(mirrored: np.ndarray) -> np.ndarray:
    return _ellipsoid(mirrored, (0.0135, -0.005, 0.094), (0.0085, 0.0075, 0.009))


def nose_distance(p: np.ndarray) -> np.ndarray:
    """Signed distance [...] from points [..., 3] to the nose's own primitives (bridge, alae)."""
    mirrored = p.copy()
    mirrored[..., 0] = np.abs(p[..., 0])
    return np.minimum(_nose_bridge(p), _ala(mirrored))


def head_sdf(p: np.ndarray) -> np.ndarray:
    """Signed distance (approximate, negative inside) of the head sculpt; p [..., 3] → [...]."""
    x = p[..., 0]
    mirrored = p.copy()
    mirrored[..., 0] = np.abs(x)  # left/right symmetric parts are sculpted on the +x side
    # Cranium: an ellipsoid cut by two soft planes so the parietal sides are flatter.
    d = _ellipsoid(p, (0.0, 0.042, -0.014), (0.082, 0.093, 0.099))
    d = _smax(d, np.abs(x) - 0.071, 0.035)
    # Face and jaw masses, then the chin.
    d = _smin(d, _ellipsoid(p, (0.0, -0.012, 0.02), (0.058, 0.064, 0.072)), 0.02)
    d = _smin(d, _ellipsoid(p, (0.0, -0.052, 0.02), (0.05, 0.044, 0.063)), 0.02)
    d = _smin(d, _ellipsoid(p, (0.0, -0.079, 0.06), (0.023, 0.018, 0.022)), 0.02)
    # Angle of the mandible below each ear.
    d = _smin(d, _ellipsoid(mirrored, (0.042, -0.052, -0.008), (0.012, 0.026, 0.026)), 0.016)
    # Cheekbones and brow ridge.
    d = _smin(d, _ellipsoid(mirrored, (0.044, 0.013, 0.046), (0.022, 0.014, 0.025)), 0.014)
    d = _smin(d, _ellipsoid(mirrored, (0.029, 0.056, 0.064), (0.03, 0.011, 0.02)), 0.02)
    # Nose: bridge to tip, then the alae (nostril wings).
    d = _smin(d, _nose_bridge(p), 0.014)
    d = _smin(d, _ala(mirrored), 0.012)
    # Ears: flat bumps on the sides.
    d = _smin(d, _ellipsoid(mirrored, (0.074, 0.012, -0.014), (0.01, 0.029, 0.019)), 0.012)
    # Neck: elliptic cylinder that ends inside the skull.
    qx = (x - NECK_AXIS_XZ[0]) / 0.056
    qz = (p[..., 2] - NECK_AXIS_XZ[1]) / 0.058
    neck = (np.sqrt(qx * qx + qz * qz) - 1.0) * 0.057
    neck = np.maximum(neck, p[..., 1] - 0.0)
    return _smin(d, neck, 0.016)


def cast_to_surface(
    origins: np.ndarray, dirs: np.ndarray, sdf=head_sdf, t_max: float = 0.3, step: float = 2e-3
) -> np.ndarray:
    """Outermost crossing of rays with the zero set of ``sdf``.

    Marches from ``t_max`` inward and bisects the first bracketed sign change, so a ray that
    crosses the skin more than once lands on its outer layer.

    Args:
      origins: [..., 3] ray origins inside the head, metres.
      dirs: [..., 3] unit directions.
    Returns:
      [..., 3] points on the skin.
    """
    ts = np.arange(t_max, 0.0, -step)  # [S], outside → inside
    pts = origins[..., None, :] + ts[:, None] * dirs[..., None, :]  # [..., S, 3]
    inside = sdf(pts) < 0.0
    first = np.argmax(inside, axis=-1)  # first inside sample along the inward march
    if not np.all(np.take_along_axis(inside, first[..., None], -1)):
        raise RuntimeError("a skin ray never entered the head sculpt")
    lo = ts[first]  # inside
    hi = lo + step  # outside
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        out = sdf(origins + mid[..., None] * dirs) >= 0.0
        hi = np.where(out, mid, hi)
        lo = np.where(out, lo, mid)
    return origins + (0.5 * (lo + hi))[..., None] * dirs


def project_to_skin(points: np.ndarray) -> np.ndarray:
    """Move points [..., 3] radially (seen from :data:`CAST_CENTRE`) onto the skin."""
    d = points - CAST_CENTRE
    d = d / np.linalg.norm(d, axis=-1, keepdims=True)
    return cast_to_surface(np.broadcast_to(CAST_CENTRE, d.shape), d)


def skin_front_z(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Depth of the skin seen from the front: the outermost z of the sculpt at (x, y) [...]."""
    x, y = np.broadcast_arrays(np.asarray(x, float), np.asarray(y, float))
    origins = np.stack([x, y, np.zeros_like(x)], axis=-1)  # inside the head
    dirs = np.broadcast_to(np.array([0.0, 0.0, 1.0]), origins.shape)
    return cast_to_surface(origins, dirs)[..., 2]


def _density_samples(n: int, knots: np.ndarray, density: np.ndarray) -> np.ndarray:
    """n+1 samples of [knots[0], knots[-1]] spaced inversely to a piecewise-linear density."""
    fine = np.linspace(knots[0], knots[-1], 4001)
    dens = np.interp(fine, knots, density)
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(fine))])
    return np.interp(np.linspace(0.0, cum[-1], n + 1), cum, fine)


@dataclasses.dataclass(frozen=True)
class SkinGrid:
    """The skin as a grid: a crown pole plus ``n_rows`` rings of ``n_cols`` vertices.

    Attributes:
      pole: [3] crown vertex.
      points: [n_rows, n_cols, 3] ring vertices, rows from the crown down to the neck cut.
      azimuth: [n_cols] column angles (0 = front, +π/2 = subject's left), radians.
    """

    pole: np.ndarray
    points: np.ndarray
    azimuth: np.ndarray

    @property
    def n_rows(self) -> int:
        return self.points.shape[0]

    @property
    def n_cols(self) -> int:
        return self.points.shape[1]


def column_azimuths(n_cols: int) -> np.ndarray:
    """[n_cols] azimuths, symmetric about the front and three times denser over the face."""
    # Density in degrees: dense over the face (|az| < 45), sparse behind the ears.
    knots = np.array([-180, -120, -95, -70, -45, -12, 12, 45, 70, 95, 120, 180], float)
    dens = np.array([0.8, 0.8, 1.4, 1.0, 3.0, 3.6, 3.6, 3.0, 1.0, 1.4, 0.8, 0.8])
    half = _density_samples(n_cols, knots, dens)[:-1]  # [-180, 180)
    az = np.deg2rad(half)
    # Rotate so column 0 sits exactly at the front and the set is mirror-symmetric.
    az = np.roll(az, -n_cols // 2)
    az[0] = 0.0
    return np.mod(az + np.pi, 2.0 * np.pi) - np.pi


def make_skin_grid(n_cols: int = 80, n_head_rows: int = 62, n_neck_rows: int = 7) -> SkinGrid:
    """Cast the skin grid.

    Head rows are latitudes (polar angle from +y about :data:`CAST_CENTRE`), denser across the
    face band (brow to chin); neck rows are horizontal rays at evenly spaced heights down to
    :data:`NECK_CUT_Y`.

    Returns:
      A :class:`SkinGrid` with ``n_head_rows + n_neck_rows`` rows.
    """
    az = column_azimuths(n_cols)
    horiz = np.stack([np.sin(az), np.zeros_like(az), np.cos(az)], axis=-1)  # [C, 3]
    # Polar angle at which a centre ray meets the neck at NECK_TOP_Y (neck radius ≈ 0.057).
    theta_end = np.pi - np.arctan2(0.057, CAST_CENTRE[1] - NECK_TOP_Y)
    knots = np.deg2rad([0, 30, 50, 60, 102, 108, 138, 146, 180])
    dens = np.array([0.6, 0.7, 1.4, 1.9, 2.0, 2.6, 2.6, 1.5, 1.2])
    keep = knots < theta_end
    knots = np.concatenate([knots[keep], [theta_end]])
    dens = np.concatenate([dens[keep], [np.interp(theta_end, knots[:-1], dens[keep])]])
    theta = _density_samples(n_head_rows, knots, dens)[1:]  # [R_h]; 0 would be the pole
    dirs = (
        np.cos(theta)[:, None, None] * np.array([0.0, 1.0, 0.0])
        + np.sin(theta)[:, None, None] * horiz[None]
    )  # [R_h, C, 3]
    head = cast_to_surface(np.broadcast_to(CAST_CENTRE, dirs.shape), dirs)
    pole = cast_to_surface(CAST_CENTRE[None], np.array([[0.0, 1.0, 0.0]]))[0]
    # Neck rows: horizontal rays from the neck axis, below the last head row.
    top = head[-1, :, 1].min()
    ys = np.linspace(top, NECK_CUT_Y, n_neck_rows + 1)[1:]
    axis = np.array([NECK_AXIS_XZ[0], 0.0, NECK_AXIS_XZ[1]])
    origins = axis + ys[:, None, None] * np.array([0.0, 1.0, 0.0])
    origins = np.broadcast_to(origins, (n_neck_rows, n_cols, 3))
    neck = cast_to_surface(origins, np.broadcast_to(horiz, origins.shape))
    return SkinGrid(pole=pole, points=np.concatenate([head, neck], axis=0), azimuth=az)
