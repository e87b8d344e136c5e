"""Rendering: Gaussian splatting (``rasterization``, gsplat's signature, from the Pallas kernel
package), the Gaussian head's render path (:mod:`ggtalker_jax.render.head`: ``render_head``,
FLAME -> a UV Gaussian map rigged to the mesh -> splatting), the textured-mesh ground-truth
renderer (:mod:`ggtalker_jax.render.mesh`), and the FLAME preview.

``rasterization`` and the head's names are imported on first use, so
``import ggtalker_jax.render`` stays light.
"""

from ggtalker_jax.render.preview import PreviewCell, draw_mesh, render_preview_grid

_HEAD_NAMES = (
    "HeadRender",
    "HeadTemplate",
    "make_head_template",
    "map_to_gaussians",
    "pose_mesh",
    "render_gaussians",
    "render_head",
)

__all__ = [
    *_HEAD_NAMES,
    "PreviewCell",
    "draw_mesh",
    "rasterization",
    "render_preview_grid",
]


def __getattr__(name: str):
    if name == "rasterization":
        from ggtalker_jax.kernels.splat import rasterization

        return rasterization
    if name in _HEAD_NAMES:
        from ggtalker_jax.render import head

        return getattr(head, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
