"""Identity-shape and expression blendshapes of the procedural head.

Every component is a smooth displacement field in metres per unit coefficient. Fields are
written in a mouth frame read off the rest mesh (see :class:`MouthFrame`): ``X`` is the
horizontal position in mouth half-widths, ``u`` the side of the lip line (+1 upper lip / cavity
roof, −1 lower lip / floor, easing to 0 at the corners, so fields that part the lips never tear
the corners), and ``L`` a lip weight (1 on the lips, fading over the skin and into the cavity).
Eyeballs and the eye pockets move rigidly with the field's value at the eyeball centre, so the
spheres stay spheres inside their sockets.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ggtalker_jax.geometry.triangles import vertex_normals
from ggtalker_jax.world.head.mesh import HeadMesh
from ggtalker_jax.world.head.patches import MM, MOUTH_HALF_WIDTH, STOMION_Y
from ggtalker_jax.world.head.rig import smoothstep

DESIGNED_SHAPE_NAMES = (
    "head_width",
    "head_height",
    "head_depth",
    "jaw_width",
    "chin_length",
    "nose_length",
    "nose_width",
    "lip_thickness",
    "mouth_width",
    "eye_spacing",
    "cheek_fullness",
    "forehead_slope",
    "brow_ridge",
    "chin_projection",
)


@dataclasses.dataclass(frozen=True)
class MouthFrame:
    """Per-vertex quantities [V] (or [V, 3]) the fields are written in.

    Attributes:
      p: [V, 3] rest positions (eyeballs and eye pockets replaced by their eyeball centre).
      n: [V, 3] outward normals (eye parts: +z).
      X: horizontal position in mouth half-widths.
      u: side of the lip line in [−1, 1].
      lips: lip weight L in [0, 1].
      inner_lips: like ``lips`` but 0 on the inner lip line and inward, for fields that would
        push the closed lips through each other.
      corners: [V] weight of each mouth corner region (either side).
      cheeks: [V] weight of the cheek pads.
      rigid: [V] bool, vertices that move with an eyeball centre.
    """

    p: np.ndarray
    n: np.ndarray
    X: np.ndarray
    u: np.ndarray
    lips: np.ndarray
    inner_lips: np.ndarray
    corners: np.ndarray
    cheeks: np.ndarray
    rigid: np.ndarray


def _gauss(p: np.ndarray, centre, sigma) -> np.ndarray:
    """Anisotropic Gaussian bump [V] around ``centre`` with per-axis ``sigma`` (metres)."""
    q = (p - np.asarray(centre)) / np.asarray(sigma)
    return np.exp(-0.5 * np.sum(q * q, axis=-1))


def _mirror_gauss(p: np.ndarray, centre, sigma) -> np.ndarray:
    """Gaussian bump placed symmetrically on both sides of the face."""
    q = p.copy()
    q[:, 0] = np.abs(q[:, 0])
    return _gauss(q, centre, sigma)


def mouth_frame(mesh: HeadMesh) -> MouthFrame:
    """Read the mouth frame off the rest mesh."""
    v = mesh.vertices
    n = vertex_normals(v, mesh.faces)
    eye_part = (mesh.eyeball > 0) | ((mesh.patch >= 2) & (mesh.ring >= 2))
    side = np.where(mesh.eyeball > 0, mesh.eyeball - 1, mesh.patch - 2)
    p = np.where(eye_part[:, None], mesh.eye_centres[np.clip(side, 0, 1)], v)
    n = np.where(eye_part[:, None], np.array([0.0, 0.0, 1.0]), n)
    in_mouth = (mesh.patch == 1) & (mesh.ring >= 2)
    big_x = p[:, 0] / MOUTH_HALF_WIDTH
    # Skin: lip weight from the elliptic distance to the lip outline (about 27 x 10 mm).
    ell = np.hypot(p[:, 0] / 0.027, (p[:, 1] - STOMION_Y) / 0.011)
    skin_lips = np.exp(-(np.maximum(ell - 1.0, 0.0) ** 2) / 0.8**2)
    ring_lips = np.array([1, 1, 1, 1, 1, 0.6, 0.3, 0.1])[np.clip(mesh.ring, 0, 7)]
    lips = np.where(in_mouth, ring_lips, skin_lips)
    lips = np.where(eye_part, 0.0, lips)
    corner_soft = smoothstep(0.6, 1.0, np.abs(np.cos(mesh.psi)))
    u_inner = np.where(mesh.upper, 1.0, -1.0) * (1.0 - corner_soft)
    u_skin = np.clip((p[:, 1] - STOMION_Y) / (8 * MM), -1.0, 1.0)
    u = np.where(in_mouth, u_inner, u_skin)
    inner_lips = np.where(in_mouth & (mesh.ring >= 4), 0.0, lips)
    depth = np.where(in_mouth, ring_lips, 1.0)  # corner and cheek motion fades into the cavity
    corners = _mirror_gauss(p, (MOUTH_HALF_WIDTH, STOMION_Y, 0.0), (9 * MM, 9 * MM, 1.0)) * depth
    cheeks = _mirror_gauss(p, (0.038, -0.022, 0.07), (14 * MM, 14 * MM, 20 * MM))
    return MouthFrame(p, n, big_x, u, lips, inner_lips, corners, cheeks * (1 - eye_part), eye_part)


def _vec(dx=0.0, dy=0.0, dz=0.0) -> np.ndarray:
    """Stack per-vertex components (scalars broadcast) into [V, 3]."""
    dx, dy, dz = np.broadcast_arrays(dx, dy, dz)
    return np.stack([dx, dy, dz], axis=-1)


def expression_fields(frame: MouthFrame) -> list[np.ndarray]:
    """The ten designed expression components, in :data:`EXPRESSION_NAMES` order; [V, 3] each."""
    X, u, L, Lc, C = frame.X, frame.u, frame.lips, frame.inner_lips, frame.corners
    Xc = np.clip(X, -1.2, 1.2)
    mid = np.clip(1.0 - 0.9 * Xc**2, 0.0, 1.0)  # most in the middle of the lips
    up, lo = np.maximum(u, 0.0), np.maximum(-u, 0.0)
    left = smoothstep(-0.3, 0.6, X)
    fields = [
        # 0 lips part: upper lip up, lower lip down, without the jaw.
        _vec(dy=(2.6 * up - 3.0 * lo) * MM * L * mid, dz=0.4 * MM * L),
        # 1 round / pucker: corners in, lips forward, a slight opening.
        _vec(dx=-3.8 * MM * Xc * L, dy=0.5 * MM * u * L * mid, dz=3.2 * MM * L * mid),
        # 2 spread: corners out and back, lips stretched thinner.
        _vec(dx=4.0 * MM * Xc * L, dy=-0.8 * MM * u * Lc, dz=-1.6 * MM * Xc**2 * L),
        # 3 press: lips rolled in, toward each other and back.
        _vec(dy=-1.6 * MM * u * Lc, dz=-2.4 * MM * L * (0.4 + 0.6 * mid)),
        # 4 smile: corners up, out and back; cheeks lifted.
        _vec(
            dx=2.0 * MM * np.sign(X) * C,
            dy=4.0 * MM * C + 2.0 * MM * frame.cheeks + 0.4 * MM * u * L,
            dz=-2.5 * MM * C + 1.0 * MM * frame.cheeks,
        ),
        # 5 frown: corners down, lower lip pushed forward.
        _vec(dy=-4.0 * MM * C, dz=-0.8 * MM * C + 1.6 * MM * lo * L * mid),
        # 6 upper lip raise (the lip and the skin up to the nose).
        _vec(dy=3.5 * MM * up * L * (0.5 + 0.5 * mid), dz=0.8 * MM * up * L),
        # 7 lower lip depress: down and everted.
        _vec(dy=-3.5 * MM * lo * L * (0.5 + 0.5 * mid), dz=1.6 * MM * lo * L * mid),
        # 8 funnel: lips protrude and open into a rounded hole.
        _vec(dx=-1.8 * MM * Xc * L, dy=2.2 * MM * u * L * mid**2, dz=4.2 * MM * L),
        # 9 smile on the left only (a smirk).
        _vec(
            dx=1.6 * MM * C * left,
            dy=(4.0 * MM * C + 1.5 * MM * frame.cheeks + 1.2 * MM * up * L) * left,
            dz=-2.0 * MM * C * left,
        ),
    ]
    return fields


def shape_fields(frame: MouthFrame) -> list[np.ndarray]:
    """The designed identity components, in :data:`DESIGNED_SHAPE_NAMES` order; [V, 3] each."""
    p, n = frame.p, frame.n
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    face_front = smoothstep(-0.03, 0.01, z)
    above_neck = smoothstep(-0.15, -0.11, y)
    jaw_band = smoothstep(-0.005, -0.045, y) * smoothstep(-0.125, -0.095, y)
    jaw_band = jaw_band * smoothstep(-0.045, -0.015, z)
    nose_tip = _gauss(p, (0.0, 0.0, 0.11), (12 * MM, 12 * MM, 14 * MM))
    alae = _gauss(p, (0.0, -0.006, 0.095), (16 * MM, 9 * MM, 14 * MM))
    eyes = _mirror_gauss(p, (0.032, 0.034, 0.06), (16 * MM, 14 * MM, 25 * MM))
    brows = _mirror_gauss(p, (0.029, 0.056, 0.08), (16 * MM, 8 * MM, 14 * MM))
    chin = _gauss(p, (0.0, -0.082, 0.08), (18 * MM, 12 * MM, 16 * MM))
    u_lip = frame.u * frame.inner_lips
    return [
        _vec(dx=0.06 * x),
        _vec(dy=0.06 * y * smoothstep(-0.02, 0.04, y)),
        _vec(dz=0.07 * z * smoothstep(0.02, -0.04, z)),
        _vec(dx=0.1 * x * jaw_band),
        _vec(dy=-6.0 * MM * smoothstep(STOMION_Y, -0.09, y) * face_front * above_neck),
        _vec(dy=-1.5 * MM * nose_tip, dz=5.0 * MM * nose_tip),
        _vec(dx=0.25 * x * alae),
        _vec(dy=1.5 * MM * u_lip, dz=2.0 * MM * frame.inner_lips),
        _vec(dx=3.0 * MM * np.clip(frame.X, -1.2, 1.2) * frame.lips),
        _vec(dx=3.0 * MM * np.sign(x) * eyes),
        4.0 * MM * frame.cheeks[:, None] * n,
        _vec(dz=-8.0 * MM * smoothstep(0.05, 0.13, y) * smoothstep(0.0, 0.06, z)),
        3.0 * MM * brows[:, None] * n,
        _vec(dz=5.0 * MM * chin, dy=-1.0 * MM * chin),
    ]


def random_smooth_field(
    rng: np.random.Generator, frame: MouthFrame, anchors: np.ndarray, peak: float = 4 * MM
) -> np.ndarray:
    """A sum of six Gaussian bumps with random 3D amplitudes at random skin anchors.

    Args:
      anchors: [K, 3] candidate bump centres (skin points).
      peak: the largest displacement of the field, metres.
    Returns:
      [V, 3] displacement.
    """
    field = np.zeros_like(frame.p)
    for _ in range(6):
        centre = anchors[rng.integers(len(anchors))]
        sigma = rng.uniform(0.015, 0.035)
        field += _gauss(frame.p, centre, (sigma,) * 3)[:, None] * rng.normal(size=3)
    return field * peak / np.linalg.norm(field, axis=-1).max()


def random_lip_field(rng: np.random.Generator, base: list[np.ndarray], frame: MouthFrame):
    """An extra expression: a random mix of the designed ones plus a random smooth lip field."""
    mix = sum(c * f for c, f in zip(rng.normal(size=len(base)), base, strict=True))
    lip_pts = frame.p[frame.lips > 0.9]
    extra = random_smooth_field(rng, frame, lip_pts, 2 * MM) * frame.lips[:, None]
    field = mix / np.sqrt(len(base)) + extra
    return field * 3 * MM / np.linalg.norm(field, axis=-1).max()
