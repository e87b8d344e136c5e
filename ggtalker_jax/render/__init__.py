"""Rendering: Gaussian splatting (``rasterization``, gsplat's signature, from the Pallas kernel
package), the textured-mesh ground-truth renderer (:mod:`ggtalker_jax.render.mesh`), and the
FLAME preview. The Gaussian head's render path joins here.

``rasterization`` is imported on first use, so ``import ggtalker_jax.render`` stays light.
"""

from ggtalker_jax.render.preview import PreviewCell, draw_mesh, render_preview_grid

__all__ = ["PreviewCell", "draw_mesh", "rasterization", "render_preview_grid"]


def __getattr__(name: str):
    if name == "rasterization":
        from ggtalker_jax.kernels.splat import rasterization

        return rasterization
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
