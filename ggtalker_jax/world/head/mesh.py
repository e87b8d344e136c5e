"""Topology of the procedural head: skin grid + crown pole + two eyeball spheres.

Vertex order: the crown pole (0), the skin grid row by row (``1 + row * n_cols + col``), the
left eyeball (+x), the right eyeball. The skin is one closed surface except for its last row,
the open neck cut; the mouth cavity and the eye pockets are parts of it (see
:mod:`ggtalker_jax.world.head.patches`). Faces are counter-clockwise seen from outside.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ggtalker_jax.world.head.patches import (
    EYE_RADIUS,
    STOMION_Y,
    PatchRings,
    eye_centre,
    eye_pocket_positions,
    mouth_positions,
    patch_rings,
)
from ggtalker_jax.world.head.surface import NECK_AXIS_XZ, SkinGrid, make_skin_grid

EYE_POLAR_DEG = (9, 19, 30, 42, 56, 72, 90, 110, 132, 156)  # ring latitudes, dense in front
EYE_N_LON = 16
MOUTH_COLS = 23  # odd, centred on the front column
MOUTH_ROWS = 16
EYE_COLS = 13
EYE_ROWS = 12


@dataclasses.dataclass(frozen=True)
class HeadMesh:
    """The procedural head's rest mesh and the bookkeeping the rig and annotations need.

    Attributes:
      vertices: [V, 3] metres.  faces: [F, 3] int, counter-clockwise from outside.
      n_rows, n_cols: skin grid size.  azimuth: [n_cols] column angles, radians.
      mouth: rings of the mouth patch.  eyes: rings of the (left, right) eye patches.
      eye_centres: [2, 3] eyeball centres (left, right).
      eyeball: [V] 0 for skin, 1 left eyeball, 2 right eyeball.
      patch: [V] 0 plain skin, 1 mouth patch, 2 left eye patch, 3 right eye patch.
      ring: [V] ring index inside a patch, −1 elsewhere.
      upper: [V] bool, upper half of a patch.  psi: [V] loop angle in a patch (0 elsewhere).
    """

    vertices: np.ndarray
    faces: np.ndarray
    n_rows: int
    n_cols: int
    azimuth: np.ndarray
    mouth: PatchRings
    eyes: tuple[PatchRings, PatchRings]
    eye_centres: np.ndarray
    eyeball: np.ndarray
    patch: np.ndarray
    ring: np.ndarray
    upper: np.ndarray
    psi: np.ndarray

    @property
    def n_skin(self) -> int:
        return 1 + self.n_rows * self.n_cols

    def grid_index(self, rows, cols) -> np.ndarray:
        """Vertex indices of grid vertices (rows, cols broadcast; cols taken mod n_cols)."""
        return 1 + np.asarray(rows) * self.n_cols + np.mod(cols, self.n_cols)


def _grid_faces(n_rows: int, n_cols: int) -> np.ndarray:
    """[F, 3] faces of the crown fan and the grid quads.

    Quads on the +x half split along one diagonal and those on the −x half along the other,
    so the mesh is mirror-symmetric.
    """
    idx = 1 + np.arange(n_rows * n_cols).reshape(n_rows, n_cols)
    j = np.arange(n_cols)
    fan = np.stack([np.zeros(n_cols, int), idx[0, j], idx[0, (j + 1) % n_cols]], axis=-1)
    a = idx[:-1, j]
    b = idx[1:, j]
    c = idx[:-1, (j + 1) % n_cols]
    d = idx[1:, (j + 1) % n_cols]
    left = (j < n_cols // 2)[None, :]
    t1 = np.where(left[..., None], np.stack([a, b, c], -1), np.stack([a, b, d], -1))
    t2 = np.where(left[..., None], np.stack([b, d, c], -1), np.stack([a, d, c], -1))
    quads = np.stack([t1, t2], axis=2).reshape(-1, 3)
    return np.concatenate([fan, quads]).astype(np.int64)


def eyeball_mesh(centre: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A closed UV sphere whose poles lie on the gaze axis (+z).

    Returns:
      vertices [n, 3], faces [m, 3] (local indices, outward), and [n, 2] (polar, longitude)
      angles of each vertex (radians; the poles get longitude 0).
    """
    polar = np.deg2rad(np.array(EYE_POLAR_DEG, float))
    lon = 2 * np.pi * np.arange(EYE_N_LON) / EYE_N_LON
    pp, ll = np.meshgrid(polar, lon, indexing="ij")
    ring_dirs = np.stack([np.sin(pp) * np.cos(ll), np.sin(pp) * np.sin(ll), np.cos(pp)], -1)
    dirs = np.concatenate([[[0.0, 0.0, 1.0]], ring_dirs.reshape(-1, 3), [[0.0, 0.0, -1.0]]])
    angles = np.concatenate([[[0.0, 0.0]], np.stack([pp, ll], -1).reshape(-1, 2), [[np.pi, 0]]])
    n_r, n_l = len(polar), EYE_N_LON
    idx = 1 + np.arange(n_r * n_l).reshape(n_r, n_l)
    back = 1 + n_r * n_l
    k = np.arange(n_l)
    faces = [np.stack([np.zeros(n_l, int), idx[0, k], idx[0, (k + 1) % n_l]], -1)]
    a, b = idx[:-1, k], idx[1:, k]
    c, d = idx[:-1, (k + 1) % n_l], idx[1:, (k + 1) % n_l]
    faces.append(np.stack([np.stack([a, b, c], -1), np.stack([b, d, c], -1)], 2).reshape(-1, 3))
    faces.append(np.stack([np.full(n_l, back), idx[-1, (k + 1) % n_l], idx[-1, k]], -1))
    return centre + radius * dirs, np.concatenate(faces), angles


def _mouth_patch(grid: SkinGrid) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the mouth patch: centred on the front column at the stomion."""
    front_y = grid.points[:, 0, 1]
    upper_centre = int(np.nonzero(front_y > STOMION_Y)[0].max())
    rows = np.arange(upper_centre - MOUTH_ROWS // 2 + 1, upper_centre + MOUTH_ROWS // 2 + 1)
    half = MOUTH_COLS // 2
    return rows, np.arange(-half, half + 1)


def _eye_patch(grid: SkinGrid, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of an eye patch around an eyeball centre."""
    az = np.arctan2(centre[0] - NECK_AXIS_XZ[0], centre[2] - NECK_AXIS_XZ[1])
    col = int(np.argmin(np.abs(np.angle(np.exp(1j * (grid.azimuth - az))))))
    col = col - grid.n_cols if col > grid.n_cols // 2 else col
    upper_centre = int(np.nonzero(grid.points[:, col, 1] > centre[1])[0].max())
    rows = np.arange(upper_centre - EYE_ROWS // 2 + 1, upper_centre + EYE_ROWS // 2 + 1)
    half = EYE_COLS // 2
    return rows, np.arange(col - half, col + half + 1)


def build_head_mesh() -> HeadMesh:
    """Sculpt the skin, fold in the mouth and eye pockets, and add the eyeballs."""
    grid = make_skin_grid()
    n_rows, n_cols = grid.n_rows, grid.n_cols
    pts = grid.points.copy()
    n_skin = 1 + n_rows * n_cols
    patch = np.zeros(n_skin, np.int64)
    ring = np.full(n_skin, -1, np.int64)
    upper = np.zeros(n_skin, bool)
    psi = np.zeros(n_skin)

    def record(rings: PatchRings, patch_id: int) -> None:
        vid = 1 + rings.rows[:, None] * n_cols + np.mod(rings.cols, n_cols)[None, :]
        if np.any(patch[vid]):
            raise RuntimeError("procedural head patches overlap")
        patch[vid], ring[vid], upper[vid], psi[vid] = patch_id, rings.ring, rings.upper, rings.psi

    rows, cols = _mouth_patch(grid)
    mouth = patch_rings(rows, cols)
    sel = (rows[:, None], np.mod(cols, n_cols)[None, :])
    pts[sel] = mouth_positions(pts[sel], mouth)
    record(mouth, 1)

    centres = np.stack([eye_centre(+1), eye_centre(-1)])
    eyes = []
    for k, centre in enumerate(centres):
        rows, cols = _eye_patch(grid, centre)
        rings = patch_rings(rows, cols)
        sel = (rows[:, None], np.mod(cols, n_cols)[None, :])
        pts[sel] = eye_pocket_positions(pts[sel], rings, centre)
        record(rings, 2 + k)
        eyes.append(rings)

    verts = [grid.pole[None], pts.reshape(-1, 3)]
    faces = [_grid_faces(n_rows, n_cols)]
    eyeball = [np.zeros(n_skin, np.int64)]
    offset = n_skin
    for k, centre in enumerate(centres):
        ev, ef, _ = eyeball_mesh(centre, EYE_RADIUS)
        verts.append(ev)
        faces.append(ef + offset)
        eyeball.append(np.full(len(ev), k + 1))
        offset += len(ev)
    n_eye = offset - n_skin
    return HeadMesh(
        vertices=np.concatenate(verts),
        faces=np.concatenate(faces),
        n_rows=n_rows,
        n_cols=n_cols,
        azimuth=grid.azimuth,
        mouth=mouth,
        eyes=(eyes[0], eyes[1]),
        eye_centres=centres,
        eyeball=np.concatenate(eyeball),
        patch=np.concatenate([patch, np.zeros(n_eye, np.int64)]),
        ring=np.concatenate([ring, np.full(n_eye, -1)]),
        upper=np.concatenate([upper, np.zeros(n_eye, bool)]),
        psi=np.concatenate([psi, np.zeros(n_eye)]),
    )
