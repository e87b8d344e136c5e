"""Rendering: a headless mesh preview now; the splatting ``rasterization`` and the head
render path join here as they land."""

from ggtalker_jax.render.preview import PreviewCell, draw_mesh, render_preview_grid

__all__ = ["PreviewCell", "draw_mesh", "render_preview_grid"]
