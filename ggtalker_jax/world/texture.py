"""Procedural UV textures for synthetic identities, with fine detail so texture quality shows
in PSNR: pores, freckles, stubble, eyebrows, lip lines, hair strands, irises.

Everything is made in the model's UV space from two maps computed once per model: which
region each texel belongs to and where on the rest head it lies (3D position), so the same
code textures the procedural head and a real FLAME with UVs and masks.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from ggtalker_jax.flame.model import FlameModel
from ggtalker_jax.geometry.uv import bind_texels, interpolate_bound

REGIONS = ("skin", "scalp", "lips", "mouth_interior", "eyeball")


@dataclasses.dataclass(frozen=True)
class UVMaps:
    """Per-texel facts of a model's UV layout.

    Attributes:
      region: ``[Ht, Wt]`` int8 index into :data:`REGIONS`; ``-1`` outside every triangle.
      position: ``[Ht, Wt, 3]`` rest position (metres) of each texel, 0 outside.
      eye_center: ``[2, 3]`` centres of the left and right eyeball (rest).
      ear: ``[Ht, Wt]`` bool, texels of the ears (kept free of hair).
    """

    region: np.ndarray
    position: np.ndarray
    eye_center: np.ndarray
    ear: np.ndarray


def _vertex_regions(model: FlameModel) -> np.ndarray:
    """Region index per vertex ``[V]`` from the masks (later entries win)."""
    region = np.zeros(model.n_vertices, np.int8)
    order = [
        ("scalp", "scalp"),
        ("lips", "lips"),
        ("mouth_interior", "mouth_interior"),
        ("left_eyeball", "eyeball"),
        ("right_eyeball", "eyeball"),
    ]
    for mask, name in order:
        if mask in model.masks:
            region[np.asarray(model.masks[mask])] = REGIONS.index(name)
    return region


def make_uv_maps(model: FlameModel, size: int = 512) -> UVMaps:
    """Rasterize the UV layout: a face id per texel, then region and rest position.

    Args:
      model: a model with UVs (``vt``/``ft``) and masks.
      size: texture side in texels.
    """
    model.require("uv")
    faces = np.asarray(model.faces)
    binding = bind_texels(model.vt, model.ft, size)
    covered, fid = binding.covered, np.where(binding.covered, binding.face, 0)
    rest = np.asarray(model.v_template, np.float64)
    position = interpolate_bound(rest, faces, binding)
    vregion = _vertex_regions(model)
    # A face takes the region most of its corners have (ties: the first corner).
    corner = vregion[faces[fid]]
    majority = np.where(corner[..., 1] == corner[..., 2], corner[..., 1], corner[..., 0])
    region = np.where(covered, majority, -1).astype(np.int8)
    ear = np.zeros(model.n_vertices, bool)
    if "ears" in model.masks:
        ear[np.asarray(model.masks["ears"])] = True
    ear_texel = covered & (ear[faces[fid]].sum(-1) >= 2)
    centers = []
    for side in ("left_eyeball", "right_eyeball"):
        idx = np.asarray(model.masks.get(side, []))
        centers.append(rest[idx].mean(0) if idx.size else np.zeros(3))
    return UVMaps(
        region=region,
        position=position.astype(np.float32),
        eye_center=np.stack(centers).astype(np.float32),
        ear=ear_texel,
    )


def _noise(rng: np.random.Generator, shape, sigma: float) -> np.ndarray:
    """Zero-mean, unit-std band-limited noise with a Gaussian correlation of ``sigma`` px."""
    n = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return (n - n.mean()) / (n.std() + 1e-12)


def _hair_mask(maps: UVMaps, rng: np.random.Generator) -> np.ndarray:
    """Hair on skin and scalp texels above a smooth, slightly ragged hairline ``[Ht, Wt]``.

    The hairline is a function of the angle around the vertical axis (front, temples, above
    the ears, nape), so its edge follows the head rather than the mesh's triangles.
    """
    size = maps.region.shape[0]
    pos = maps.position
    theta = np.abs(np.arctan2(pos[..., 0], pos[..., 2]))  # 0 at the face, pi at the back
    front = rng.uniform(0.082, 0.098)
    temple = front - rng.uniform(0.0, 0.012)
    ears = rng.uniform(0.045, 0.055)
    nape = rng.uniform(-0.05, -0.025)
    line = np.interp(
        theta, [0.0, 0.6, 1.0, 1.45, 1.9, np.pi], [front, temple, ears, ears, nape, nape]
    )
    ragged = 0.002 * _noise(rng, (size, size), 5.0 * size / 512)
    scalp_like = (maps.region == REGIONS.index("skin")) | (maps.region == REGIONS.index("scalp"))
    return scalp_like & ~maps.ear & (pos[..., 1] > line + ragged)


def make_texture(maps: UVMaps, rng: np.random.Generator) -> np.ndarray:
    """A random identity's UV texture ``[Ht, Wt, 3]`` uint8 (row 0 is v = 1).

    Detail at every scale a camera sees (so texture quality shows in PSNR): blotches, pores,
    freckles and moles, stubble, eyebrow strands, hair strands, lip lines, iris fibres.
    Empty texels take the colour of the nearest used one, so bilinear lookups at island edges
    never blend in a foreign colour.
    """
    size = maps.region.shape[0]
    region = maps.region
    pos = maps.position
    scale = size / 512.0
    x, y, z = pos[..., 0], pos[..., 1], pos[..., 2]
    is_skin = region == REGIONS.index("skin")
    tone = rng.uniform(0.0, 1.0)
    skin = np.array([0.93, 0.76, 0.64]) * (1 - tone) + np.array([0.45, 0.30, 0.22]) * tone
    skin = skin * rng.uniform(0.94, 1.04, 3)
    tex = np.tile(skin, (size, size, 1))
    # Large-scale blotchiness and a warmer flush on cheeks and nose.
    tex *= 1.0 + 0.05 * _noise(rng, (size, size), 12 * scale)[..., None]
    eye_y = float(maps.eye_center[:, 1].mean())
    eye_x = float(np.abs(maps.eye_center[:, 0]).mean())
    cheeks = np.exp(-(((np.abs(x) - 0.04) / 0.02) ** 2) - ((y - eye_y + 0.035) / 0.02) ** 2)
    flush = cheeks * (z > 0.02) * rng.uniform(0.0, 0.12)
    tex *= 1.0 - flush[..., None] * np.array([0.0, 0.5, 0.45])
    # Pores: fine dark grain.
    tex *= 1.0 + 0.05 * np.clip(_noise(rng, (size, size), 0.7 * scale), -3, 3)[..., None]
    # Freckles (sparse small dots, mostly across nose and cheeks) and a few moles.
    density = rng.uniform(0.0, 0.004) * (0.3 + cheeks)
    freckles = ndimage.gaussian_filter(
        (rng.random((size, size)) < density).astype(float), 0.7 * scale
    )
    tex *= 1.0 - np.clip(freckles * 3.0, 0, 0.45)[..., None]
    moles = np.zeros((size, size))
    for _ in range(int(rng.integers(0, 5))):
        r, c = rng.integers(0, size, 2)
        moles[r, c] = 1.0
    moles = ndimage.gaussian_filter(moles, 1.5 * scale) * (2 * np.pi * (1.5 * scale) ** 2)
    tex *= 1.0 - 0.6 * np.clip(moles, 0, 1)[..., None] * is_skin[..., None]
    # Stubble on the beard area (upper lip, chin, jaw), for some identities.
    if rng.random() < 0.4:
        beard = (
            (y < eye_y - 0.055)
            & (y > eye_y - 0.145 + 0.04 * np.clip(np.abs(x) / 0.06, 0, 1))
            & (z > -0.02)
            & is_skin
        )
        soft = ndimage.gaussian_filter(beard.astype(float), 3 * scale)
        dots = (rng.random((size, size)) < 0.2) * soft * rng.uniform(0.15, 0.35)
        tex *= 1.0 - dots[..., None]
    # Eyebrows: a band above each eye, strands along x.
    brow_color = np.array([0.18, 0.12, 0.08]) * rng.uniform(0.6, 1.6)
    strands = np.clip(ndimage.gaussian_filter(rng.standard_normal((size, size)), (0.5, 3)), 0, 1)
    brow_width, brow_lift = rng.uniform(0.021, 0.027), rng.uniform(0.018, 0.026)
    for ex in (eye_x, -eye_x):
        d = ((x - ex) / brow_width) ** 2 + ((y - eye_y - brow_lift) / 0.0055) ** 2
        brow = (d < 1.0) & (z > 0.0) & is_skin
        tex[brow] = tex[brow] * 0.3 + brow_color * (0.5 + strands[brow, None])
    # Hair: dark, with strands running down from the crown.
    hair = np.array([0.12, 0.08, 0.05]) * rng.uniform(0.5, 3.5) * rng.uniform(0.8, 1.2, 3)
    strand = ndimage.gaussian_filter(rng.standard_normal((size, size)), (6 * scale, 0.6))
    hair_tex = (
        hair * (0.9 + 0.6 * np.clip(strand / (strand.std() + 1e-9) * 0.3, -0.5, 0.5))[..., None]
    )
    tex = np.where(_hair_mask(maps, rng)[..., None], hair_tex, tex)
    # Lips: redder skin with fine vertical lip lines.
    lip = skin * np.array([0.95, 0.62, 0.62]) * rng.uniform(0.9, 1.05)
    lines = 1.0 + 0.12 * np.sin(x * 2 * np.pi / 0.0025 + _noise(rng, (size, size), 3))
    tex = np.where((region == REGIONS.index("lips"))[..., None], lip * lines[..., None], tex)
    # Mouth interior: dark red.
    mouth = np.array([0.35, 0.09, 0.10]) * (1 + 0.1 * _noise(rng, (size, size), 2)[..., None])
    tex = np.where((region == REGIONS.index("mouth_interior"))[..., None], mouth, tex)
    # Eyeballs: sclera, iris (radial fibres) and pupil around the forward (+z) pole.
    iris_color = rng.uniform([0.1, 0.1, 0.05], [0.45, 0.5, 0.6])
    for center in maps.eye_center:
        d = pos - center
        r = np.linalg.norm(d, axis=-1)
        on_eye = (region == REGIONS.index("eyeball")) & (r < 0.03)
        angle = np.arccos(np.clip(d[..., 2] / (r + 1e-9), -1, 1))
        fibres = 1 + 0.3 * np.sin(np.arctan2(d[..., 1], d[..., 0]) * 24)
        eye = np.where(
            (angle < 0.22)[..., None],
            np.array([0.02, 0.02, 0.02]),
            np.where(
                (angle < 0.55)[..., None],
                iris_color * fibres[..., None],
                np.array([0.93, 0.92, 0.88]),
            ),
        )
        tex = np.where(on_eye[..., None], eye, tex)
    # Bleed used texels into empty ones (nearest used texel).
    empty = region < 0
    if empty.any() and not empty.all():
        nearest = ndimage.distance_transform_edt(empty, return_distances=False, return_indices=True)
        tex = tex[nearest[0], nearest[1]]
    return (np.clip(tex, 0, 1) * 255).astype(np.uint8)
