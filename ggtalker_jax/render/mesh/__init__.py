"""The textured-mesh z-buffer renderer: the synthetic world's ground truth (so the Gaussian
model is judged against something it did not draw).

:func:`rasterize_mesh` gives per-pixel fragments (face id, perspective-correct barycentrics,
depth); :func:`render_textured_meshes` shades textured meshes into an image with masks
(:func:`render_textured_meshes_bounded` in a fixed amount of work, for GPU training loops);
:mod:`~ggtalker_jax.render.mesh.checks` validates their inputs.
"""

from ggtalker_jax.render.mesh.raster import (
    Fragments,
    interpolate,
    rasterize_mesh,
    window_capacity,
)
from ggtalker_jax.render.mesh.shading import (
    render_textured_meshes,
    render_textured_meshes_bounded,
    sample_texture,
    shade,
)

__all__ = [
    "Fragments",
    "interpolate",
    "rasterize_mesh",
    "render_textured_meshes",
    "render_textured_meshes_bounded",
    "sample_texture",
    "shade",
    "window_capacity",
]
