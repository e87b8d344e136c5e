"""UV layout, iBUG-68 landmark embedding and region masks of the procedural head.

UV atlas (``v`` up, as in OBJ files): the skin grid fills ``u`` in [0, 0.75] with the seam at
the back of the head and the crown at the top; the mouth cavity (inner lip line inward) and the
two eyeballs (latitude/longitude, gaze pole at the bottom edge, ``v = 0``) each get an island in
the right-hand column. Corners on a seam get one ``vt`` per side.
"""

from __future__ import annotations

import numpy as np

from ggtalker_jax.world.head.mesh import EYE_N_LON, EYE_POLAR_DEG, HeadMesh
from ggtalker_jax.world.head.patches import STOMION_Y
from ggtalker_jax.world.head.surface import nose_distance, project_to_skin

SKIN_U = 0.75
# Islands (u0, v0, u1, v1).
CAVITY_ISLAND = (0.77, 0.02, 0.99, 0.30)
EYE_ISLANDS = ((0.77, 0.36, 0.99, 0.64), (0.77, 0.70, 0.99, 0.98))
_PAD = 0.01  # skin margin inside [0, 1]


def _to_island(island, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Map unit-square coordinates (a right, b up) into an island rectangle; → [..., 2]."""
    u0, v0, u1, v1 = island
    return np.stack([u0 + a * (u1 - u0), v0 + b * (v1 - v0)], axis=-1)


def uv_layout(mesh: HeadMesh) -> tuple[np.ndarray, np.ndarray]:
    """Texture coordinates per face corner.

    Returns:
      vt [Nvt, 2] in [0, 1] and ft [F, 3] int indices into vt (unused duplicates removed).
    """
    f = mesh.faces
    n_rows, n_cols = mesh.n_rows, mesh.n_cols
    corner_uv = np.zeros((*f.shape, 2))
    # Skin: grid column counted from the back seam, row from the crown.
    skin = np.all(mesh.eyeball[f] == 0, axis=1)
    fs = f[skin]
    is_pole = fs == 0
    row, col = (fs - 1) // n_cols, (fs - 1) % n_cols
    k = np.where(is_pole, np.nan, np.mod(col - n_cols // 2, n_cols).astype(float))
    crosses = (np.nanmax(k, axis=1) == n_cols - 1) & (np.nanmin(k, axis=1) == 0)
    k = np.where(crosses[:, None] & (k == 0), n_cols, k)  # the seam's far side
    k = np.where(is_pole, np.nanmean(k, axis=1, keepdims=True), k)  # pole: one vt per fan face
    v_skin = np.where(is_pole, 1.0, 1.0 - (row + 1.0) / n_rows)
    skin_uv = np.stack([k / n_cols * SKIN_U, v_skin], axis=-1)
    corner_uv[skin] = _PAD + (1 - 2 * _PAD) * skin_uv
    # Mouth cavity faces: patch grid coordinates of the lip line's rectangle and inward.
    ring = mesh.ring[f]
    cavity = np.all((mesh.patch[f] == 1) & (ring >= 4), axis=1) & (ring.max(axis=1) >= 5)
    m = mesh.mouth
    n_b, n_a = m.ring.shape
    col_of = {int(np.mod(c, n_cols)): a for a, c in enumerate(m.cols)}
    row_of = {int(r): b for b, r in enumerate(m.rows)}
    fc = f[cavity]
    a = np.vectorize(col_of.__getitem__)(np.mod(fc - 1, n_cols))
    b = np.vectorize(row_of.__getitem__)((fc - 1) // n_cols)
    corner_uv[cavity] = _to_island(CAVITY_ISLAND, (a - 4) / (n_a - 9), 1.0 - (b - 4) / (n_b - 9))
    # Eyeballs: longitude across, polar angle up from the gaze pole; seam and poles per face.
    for e, island in enumerate(EYE_ISLANDS):
        ids = np.nonzero(mesh.eyeball == e + 1)[0]
        local = np.full(len(mesh.vertices), -1)
        local[ids] = np.arange(len(ids))
        sel = np.all(mesh.eyeball[f] == e + 1, axis=1)
        li = local[f[sel]]
        n_r = len(EYE_POLAR_DEG)
        ring_i = (li - 1) // EYE_N_LON
        lon_i = ((li - 1) % EYE_N_LON).astype(float)
        front, back = li == 0, li == 1 + n_r * EYE_N_LON
        wraps = (lon_i.max(axis=1) == EYE_N_LON - 1) & (lon_i.min(axis=1) == 0)
        lon_i = np.where(wraps[:, None] & (lon_i == 0) & ~front & ~back, EYE_N_LON, lon_i)
        ring_lon = np.where(front | back, np.nan, lon_i)
        lon_i = np.where(front | back, np.nanmean(ring_lon, axis=1, keepdims=True), lon_i)
        polar = np.deg2rad(np.array([0.0, *EYE_POLAR_DEG, 180.0]))
        pol = polar[np.where(front, 0, np.where(back, n_r + 1, ring_i + 1))]
        corner_uv[sel] = _to_island(island, lon_i / EYE_N_LON, pol / np.pi)
    flat = np.round(corner_uv.reshape(-1, 2), 9)
    vt, inverse = np.unique(flat, axis=0, return_inverse=True)
    return vt, inverse.reshape(f.shape)


def _embed_on_faces(
    vertices: np.ndarray, faces: np.ndarray, points: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Barycentric embedding of points [L, 3] on the nearest incident face of their nearest
    vertex (falling back to that vertex itself when no incident face contains the projection).

    Returns:
      face index [L] and barycentric coordinates [L, 3].
    """
    face_idx, bary = [], []
    for q in points:
        nearest = int(np.argmin(np.linalg.norm(vertices - q, axis=-1)))
        incident = np.nonzero(np.any(faces == nearest, axis=1))[0]
        best = None
        for fi in incident:
            a, b, c = vertices[faces[fi]]
            n = np.cross(b - a, c - a)
            area2 = n @ n
            proj = q - ((q - a) @ n) / area2 * n
            w = (
                np.array(
                    [
                        np.cross(c - b, proj - b) @ n,
                        np.cross(a - c, proj - c) @ n,
                        np.cross(b - a, proj - a) @ n,
                    ]
                )
                / area2
            )
            if w.min() >= -1e-9:
                dist = np.linalg.norm(q - proj)
                if best is None or dist < best[0]:
                    best = (dist, fi, w)
        if best is None:
            fi = incident[0]
            w = (faces[fi] == nearest).astype(float)
            best = (0.0, fi, w)
        face_idx.append(best[1])
        bary.append(np.clip(best[2], 0.0, None) / np.clip(best[2], 0.0, None).sum())
    return np.array(face_idx), np.array(bary)


def _vertex_landmark(faces: np.ndarray, vid: int, prefer: np.ndarray) -> tuple[int, np.ndarray]:
    """Landmark exactly on vertex ``vid``: an incident face (one whose corners are all in
    ``prefer`` if any) and the one-hot barycentric weights."""
    incident = np.nonzero(np.any(faces == vid, axis=1))[0]
    good = [fi for fi in incident if prefer[faces[fi]].all()]
    fi = good[0] if good else incident[0]
    return fi, (faces[fi] == vid).astype(float)


def landmark_embedding(mesh: HeadMesh) -> tuple[np.ndarray, np.ndarray]:
    """iBUG-68 landmarks: lmk_faces_idx [68] and lmk_bary_coords [68, 3].

    Order: 0-16 jaw contour (subject's right to left, 8 = chin), 17-21 right brow and 22-26
    left brow (outer to inner to outer), 27-30 nose bridge to tip, 31-35 nostril base, 36-41
    right eye and 42-47 left eye (from the image-left corner, upper lid first), 48-59 outer lips
    (48 right corner, 51 upper middle, 54 left corner, 57 lower middle), 60-67 inner lips (62
    upper middle, 66 lower middle). Contour, brow and nose points are projected onto the skin;
    eye points are lid-margin vertices and lip points are vertices of the vermilion border
    (outer) and of the inner lip line (inner).
    """
    v, f = mesh.vertices, mesh.faces
    # Jaw contour on the +x side, from the chin (k = 8) back up to the front of the ear.
    half = np.array(
        [
            [0.0, -0.098, 0.068],
            [0.02, -0.094, 0.06],
            [0.036, -0.085, 0.046],
            [0.047, -0.073, 0.03],
            [0.055, -0.06, 0.015],
            [0.061, -0.044, 0.005],
            [0.065, -0.027, 0.005],
            [0.067, -0.012, 0.006],
            [0.068, 0.003, 0.005],
        ]
    )
    contour = np.concatenate([half[:0:-1] * np.array([-1, 1, 1]), half])
    brow_x = np.array([0.05, 0.042, 0.033, 0.023, 0.013])
    brow_y = np.array([0.049, 0.055, 0.058, 0.057, 0.054])
    brows = np.concatenate(
        [
            np.stack([-brow_x, brow_y, np.full(5, 0.09)], -1),
            np.stack([brow_x[::-1], brow_y[::-1], np.full(5, 0.09)], -1),
        ]
    )
    bridge = np.stack([np.zeros(4), [0.036, 0.024, 0.012, 0.001], np.full(4, 0.12)], -1)
    nostril_x = np.array([-0.0135, -0.007, 0.0, 0.007, 0.0135])
    nostrils = np.stack([nostril_x, [-0.011, -0.013, -0.014, -0.013, -0.011], np.full(5, 0.1)], -1)
    skin_points = project_to_skin(np.concatenate([contour, brows, bridge, nostrils]))
    skin_faces = np.all(mesh.eyeball[f] == 0, axis=1)
    face_ids = np.nonzero(skin_faces)[0]
    fi, bc = _embed_on_faces(v, f[face_ids], skin_points)
    lmk_f, lmk_b = list(face_ids[fi]), list(bc)

    def ring_vertex(patch_id: int, ring: int, x: float, upper: bool | None) -> int:
        sel = (mesh.patch == patch_id) & (mesh.ring == ring)
        if upper is not None:
            sel &= mesh.upper == upper
        ids = np.nonzero(sel)[0]
        return int(ids[np.argmin(np.abs(v[ids, 0] - x))])

    everything = np.ones(len(v), bool)
    picks = []
    for side, centre in ((-1, mesh.eye_centres[1]), (1, mesh.eye_centres[0])):
        pid = 2 if side > 0 else 3
        cx = centre[0]
        w = 0.0118
        # From the image-left corner (−x), along the upper lid, then back along the lower.
        spec = [
            (cx - w, None),
            (cx - w / 3, True),
            (cx + w / 3, True),
            (cx + w, None),
            (cx + w / 3, False),
            (cx - w / 3, False),
        ]
        picks += [ring_vertex(pid, 3, x, up) for x, up in spec]
    outer_x = [-0.03, -0.017, -0.0075, 0.0, 0.0075, 0.017, 0.03]
    picks += [ring_vertex(1, 2, x, True) for x in outer_x]
    picks += [ring_vertex(1, 2, x, False) for x in outer_x[-2:0:-1]]
    inner = [(-0.03, True), (-0.01, True), (0.0, True), (0.01, True)]
    inner += [(0.03, True), (0.01, False), (0.0, False), (-0.01, False)]
    picks += [ring_vertex(1, 4, x, up) for x, up in inner]
    lower = ~mesh.upper
    for k, vid in enumerate(picks):
        is_lower_lip = 48 + 7 <= 36 + k <= 48 + 11 or 36 + k >= 65
        fi, w = _vertex_landmark(f, vid, lower if is_lower_lip else everything)
        lmk_f.append(fi)
        lmk_b.append(w)
    assert v[picks[26], 1] > STOMION_Y > v[picks[30], 1]  # 62 above the line, 66 below
    return np.array(lmk_f, np.int32), np.array(lmk_b)


def region_masks(mesh: HeadMesh) -> dict[str, np.ndarray]:
    """Vertex-index masks ``mask_<region>`` (int32, sorted)."""
    v = mesh.vertices
    x, y, z = v[:, 0], v[:, 1], v[:, 2]
    skin = mesh.eyeball == 0
    mouth, eyes = mesh.patch == 1, mesh.patch >= 2
    lips = mouth & (mesh.ring >= 2) & (mesh.ring <= 4)
    interior = mouth & (mesh.ring >= 5)
    ears = skin & (np.abs(x) > 0.066) & (np.abs(y - 0.012) < 0.035) & (np.abs(z + 0.014) < 0.03)
    # Face: the front, plus the cheeks and jaw back to the ears (below the temples).
    front = (z > 0.02) | ((z > -0.04) & (y < 0.03))
    face = skin & ~ears & front & (y > -0.105) & (y < 0.09) & (np.abs(x) < 0.075)
    face |= mouth | eyes
    nose = skin & ~mouth & ~eyes & (nose_distance(v) < 0.004)
    bottom_row = np.zeros(len(v), bool)
    bottom_row[1 + (mesh.n_rows - 1) * mesh.n_cols : 1 + mesh.n_rows * mesh.n_cols] = True
    neck = skin & ~face & ((y < -0.1) | ((y < -0.035) & (z < -0.03)))
    forehead = face & ~eyes & (y > 0.062)
    scalp = skin & ~face & ~neck & ~ears & (y > -0.035)
    masks = {
        "lips": lips,
        "upper_lip": lips & mesh.upper,
        "lower_lip": lips & ~mesh.upper,
        "mouth_interior": interior,
        "left_eyeball": mesh.eyeball == 1,
        "right_eyeball": mesh.eyeball == 2,
        "left_eye_region": mesh.patch == 2,
        "right_eye_region": mesh.patch == 3,
        "eye_region": eyes,
        "nose": nose,
        "face": face,
        "forehead": forehead,
        "scalp": scalp,
        "ears": ears,
        "neck": neck,
        "boundary": bottom_row,
    }
    return {f"mask_{k}": np.nonzero(m)[0].astype(np.int32) for k, m in masks.items()}
