"""Texels of a UV layout bound to mesh triangles: which face each texel centre falls in and
its barycentric coordinates there. Computed once per layout on the host (a binding is static
data); :func:`interpolate_bound` then reads per-vertex data at the texels, on the host or in
``jnp``.

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
