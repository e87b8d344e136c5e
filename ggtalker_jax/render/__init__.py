"""Rendering: Gaussian splatting (``rasterization``, gsplat's signature, from the Pallas kernel
package), the textured-mesh ground-truth renderer of the synthetic world, and previews.

``rasterization`` is imported on first use, so ``import ggtalker_jax.render`` stays light.
"""

from ggtalker_jax.render.mesh_raster import Fragments, interpolate, rasterize
from ggtalker_jax.render.mesh_render import render_textured_meshes, sample_texture, shade
from ggtalker_jax.render.preview import PreviewCell, draw_mesh, render_preview_grid
from ggtalker_jax.render.sheets import contact_sheet

__all__ = [
    "Fragments",
    "PreviewCell",
    "contact_sheet",
    "draw_mesh",
    "interpolate",
    "rasterization",
    "rasterize",
    "render_preview_grid",
    "render_textured_meshes",
    "sample_texture",
    "shade",
]


def __getattr__(name: str):
    if name == "rasterization":
        from ggtalker_jax.kernels.splat import rasterization

        return rasterization
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
