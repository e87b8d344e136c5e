"""Texels of a UV layout bound to mesh triangles: which face each texel centre falls in and
its barycentric coordinates there. Computed once per layout on the host (a binding is static
data); :func:`interpolate_bound` then reads per-vertex data at the texels, on the host or in
``jnp``.

A Gaussian UV map (``[..., Hu, Wu, 14]``, channels in :data:`MAP_SLICES`) has one Gaussian
per covered texel: :func:`texel_layout` lists those texels (:class:`TexelLayout`, with
``gather``/``scatter`` between maps and per-texel arrays) and :func:`surface_points` puts them
on a posed mesh.

Conventions (FLAME/OBJ): ``vt`` in [0, 1]², ``v`` growing upwards, so texture row 0 is
``v = 1``; texel ``(i, j)`` has its centre at ``u = (j + 0.5) / W``, ``v = 1 - (i + 0.5) / H``.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
from PIL import Image, ImageDraw


@dataclasses.dataclass(frozen=True)
class UVBinding:
    """Per-texel triangle binding of a ``[H, W]`` grid over a UV layout.

    Attributes:
      face: ``[H, W]`` int64 face index, ``-1`` where no triangle covers the texel centre.
      bary: ``[H, W, 3]`` float64 barycentrics of the texel centre in its face (clipped to the
        triangle and renormalised; ``face 0``'s where uncovered).
    """

    face: np.ndarray
    bary: np.ndarray

    @property
    def covered(self) -> np.ndarray:
        """``[H, W]`` bool: texels inside a triangle."""
        return self.face >= 0


def bind_texels(vt: np.ndarray, ft: np.ndarray, size: int) -> UVBinding:
    """Rasterize the UV triangles into a ``size x size`` grid (no anti-aliasing: each texel
    gets the one face drawn over its centre) and compute barycentrics there.

    Args:
      vt: ``[Nvt, 2]`` texture coordinates.  ft: ``[F, 3]`` corner indices into ``vt``.
      size: grid side in texels.
    """
    vt = np.asarray(vt, np.float64)
    ft = np.asarray(ft)
    # Face ids drawn as 24-bit colours: id + 1, 0 = empty (up to 16.7M faces).
    canvas = Image.new("RGB", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    px = np.stack([vt[:, 0] * size, (1.0 - vt[:, 1]) * size], -1)
    for f, corners in enumerate(ft):
        code = f + 1
        draw.polygon(
            [tuple(p) for p in px[corners]], fill=(code & 255, (code >> 8) & 255, code >> 16)
        )
    rgb = np.asarray(canvas).astype(np.int64)
    face = rgb[..., 0] + (rgb[..., 1] << 8) + (rgb[..., 2] << 16) - 1  # [H, W]
    fid = np.where(face >= 0, face, 0)
    # Barycentrics of each texel centre in its face's UV triangle.
    ii, jj = np.mgrid[0:size, 0:size]
    p = np.stack([jj + 0.5, ii + 0.5], -1)
    a, b, c = (px[ft[fid, k]] for k in range(3))
    v0, v1, v2 = b - a, c - a, p - a
    den = v0[..., 0] * v1[..., 1] - v1[..., 0] * v0[..., 1]
    den = np.where(np.abs(den) < 1e-12, 1e-12, den)
    w1 = (v2[..., 0] * v1[..., 1] - v1[..., 0] * v2[..., 1]) / den
    w2 = (v0[..., 0] * v2[..., 1] - v2[..., 0] * v0[..., 1]) / den
    bary = np.clip(np.stack([1 - w1 - w2, w1, w2], -1), 0.0, 1.0)
    bary /= bary.sum(-1, keepdims=True)
    return UVBinding(face=face, bary=bary)


def interpolate_bound(values, faces, binding: UVBinding):
    """Per-vertex ``values [..., V, D]`` read at the bound texels: ``[..., H, W, D]``, zero
    where no triangle covers a texel. Host arrays stay numpy (float64 sums); JAX arrays give a
    ``jnp`` result, differentiable in ``values`` (e.g. posed vertices -> texel positions).
    """
    fid = np.where(binding.covered, binding.face, 0)
    corners = np.asarray(faces)[fid]  # [H, W, 3]
    if isinstance(values, np.ndarray):
        return (
            np.einsum("hwk,...hwkd->...hwd", binding.bary, values[..., corners, :])
            * (binding.covered[..., None])
        )
    gathered = jnp.asarray(values)[..., corners, :]  # [..., H, W, 3, D]
    bary = jnp.asarray(binding.bary, gathered.dtype)
    out = jnp.einsum("hwk,...hwkd->...hwd", bary, gathered, precision="highest")
    return out * jnp.asarray(binding.covered[..., None], out.dtype)


# ---------------------------------------------------------------------------------------------
# The Gaussian map's texels
# ---------------------------------------------------------------------------------------------

MAP_CHANNELS = 14
"""Channels of a raw Gaussian UV map ``[..., Hu, Wu, 14]`` (decoded by
:func:`ggtalker_jax.geometry.rigging.decode_texels`)."""

MAP_SLICES = {
    "offset": slice(0, 3),
    "log_scale": slice(3, 6),
    "rotation": slice(6, 10),
    "color": slice(10, 13),
    "opacity": slice(13, 14),
}
"""Where each attribute sits in the last axis of a raw map (offset 3, log-scale 3,
rotation 4, colour 3, opacity 1)."""


@dataclasses.dataclass(frozen=True, eq=False)
class TexelLayout:
    """The covered texels of a ``[Hu, Wu]`` UV grid, in row-major order, each bound to a
    face and a barycentric point on it: one Gaussian per texel.

    Compared and hashed by identity (``eq=False``), so a layout can be a static ``jit``
    argument; build one per (model, size) and reuse it.

    Attributes:
      face: ``[N]`` int32 face of each bound texel.
      bary: ``[N, 3]`` float32 barycentrics of the texel centre in that face.
      rows, cols: ``[N]`` int32 texel row and column.
      size: ``(Hu, Wu)``.
      uv_area: ``[N]`` float32 area of the texel's UV triangle, in texels² (how many texels
        share that triangle's world area; sets the initial Gaussian size).
    """

    face: np.ndarray
    bary: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    size: tuple[int, int]
    uv_area: np.ndarray | None = None

    @property
    def n(self) -> int:
        """``N``, the number of bound texels (Gaussians)."""
        return int(self.face.shape[0])

    @property
    def mask(self) -> np.ndarray:
        """``[Hu, Wu]`` bool: the covered texels."""
        out = np.zeros(self.size, bool)
        out[self.rows, self.cols] = True
        return out

    @property
    def flat(self) -> np.ndarray:
        """``[N]`` int32 row-major index ``row * Wu + col`` of each bound texel."""
        return (self.rows * self.size[1] + self.cols).astype(np.int32)

    def gather(self, uv_map):
        """Read the bound texels: ``[..., Hu, Wu, D] -> [..., N, D]`` (``jnp``)."""
        uv_map = jnp.asarray(uv_map)
        hu, wu = self.size
        flat = uv_map.reshape(*uv_map.shape[:-3], hu * wu, uv_map.shape[-1])
        return flat[..., self.flat, :]

    def scatter(self, values, fill: float = 0.0):
        """Write per-texel values into a map: ``[..., N, D] -> [..., Hu, Wu, D]`` (``jnp``;
        uncovered texels hold ``fill``)."""
        values = jnp.asarray(values)
        hu, wu = self.size
        batch, d = values.shape[:-2], values.shape[-1]
        out = jnp.full((*batch, hu * wu, d), fill, values.dtype)
        return out.at[..., self.flat, :].set(values).reshape(*batch, hu, wu, d)


def texel_layout(vt: np.ndarray, ft: np.ndarray, size: int) -> TexelLayout:
    """The covered texels of a ``size x size`` grid over a UV layout (:func:`bind_texels`).

    Args:
      vt: ``[Nvt, 2]`` texture coordinates.  ft: ``[F, 3]`` corner indices into ``vt``.
      size: grid side in texels.

    Returns:
      A :class:`TexelLayout` with the covered texels in row-major order.
    """
    binding = bind_texels(vt, ft, size)
    rows, cols = np.nonzero(binding.covered)
    face = binding.face[rows, cols]
    px = np.asarray(vt, np.float64) * size  # the area is the same with v flipped
    tri = px[np.asarray(ft)[face]]  # [N, 3, 2]
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    uv_area = 0.5 * np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
    return TexelLayout(
        face=face.astype(np.int32),
        bary=binding.bary[rows, cols].astype(np.float32),
        rows=rows.astype(np.int32),
        cols=cols.astype(np.int32),
        size=(int(size), int(size)),
        uv_area=uv_area.astype(np.float32),
    )


def surface_points(vertices, faces, layout: TexelLayout):
    """The texels' points on the mesh: barycentric combinations of their faces' corners.

    Args:
      vertices: ``[..., V, 3]`` (posed) vertices.  faces: ``[F, 3]`` int.
      layout: the texels.

    Returns:
      ``[..., N, 3]`` (``jnp``, differentiable in ``vertices``).
    """
    corners = np.asarray(faces)[layout.face]  # [N, 3]
    gathered = jnp.asarray(vertices)[..., corners, :]  # [..., N, 3, 3]
    bary = jnp.asarray(layout.bary, gathered.dtype)
    return jnp.einsum("nk,...nkd->...nd", bary, gathered, precision="highest")
