"""Headless mesh preview: flat-shaded triangles, painter's algorithm, drawn with Pillow.

Meant for looking at a FLAME model (``ggtalker flame preview``), not for ground truth: the
textured z-buffer renderer in the world generator is the one metrics are measured against.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from PIL import Image, ImageDraw

from ggtalker_jax.errors import InputError
from ggtalker_jax.flame.lbs import flame_forward
from ggtalker_jax.flame.model import FlameModel
from ggtalker_jax.geometry.camera import portrait_camera, project_points
from ggtalker_jax.types import EXPRESSION_NAMES, FlameParams

_SKIN = np.array([0.86, 0.68, 0.58])
_REGION_COLORS = {  # later regions win where masks overlap
    "lips": (0.78, 0.36, 0.38),
    "mouth_interior": (0.35, 0.08, 0.10),
    "left_eyeball": (0.95, 0.95, 0.93),
    "right_eyeball": (0.95, 0.95, 0.93),
    "eyeballs": (0.95, 0.95, 0.93),
}
# Direction towards the light in camera space: above, left of and behind the camera.
_LIGHT = -np.array([0.35, 0.45, 0.82]) / np.linalg.norm([0.35, 0.45, 0.82])


@dataclasses.dataclass(frozen=True)
class PreviewCell:
    """One grid cell: a label, an expression vector and a pose (global, jaw axis-angle)."""

    label: str
    expression: np.ndarray  # [E]
    global_pose: tuple[float, float, float] = (0.0, 0.0, 0.0)
    jaw_pose: tuple[float, float, float] = (0.0, 0.0, 0.0)


def vertex_colors(model: FlameModel) -> np.ndarray:
    """Per-vertex albedo ``[V, 3]`` from the model's region masks (skin elsewhere)."""
    colors = np.tile(_SKIN, (model.n_vertices, 1))
    for region, color in _REGION_COLORS.items():
        if region in model.masks:
            colors[np.asarray(model.masks[region])] = color
    return colors


def draw_mesh(
    vertices: np.ndarray,
    faces: np.ndarray,
    colors: np.ndarray,
    viewmat,
    K,
    size: int,
    background=(24, 26, 32),
) -> Image.Image:
    """Draw a mesh with flat Lambert shading, back faces culled, far faces first.

    Args:
      vertices: ``[V, 3]`` world positions.  faces: ``[F, 3]``.  colors: ``[V, 3]`` in 0..1.
      viewmat: ``[4, 4]`` world->camera.  K: ``[3, 3]``.  size: image side in pixels.

    Returns:
      A ``size x size`` RGB image.
    """
    uv, depth = project_points(vertices, viewmat, K)
    tri = vertices[faces]  # [F, 3, 3]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True) + 1e-12
    cam_pos = -viewmat[:3, :3].T @ viewmat[:3, 3]
    to_cam = cam_pos - tri.mean(axis=1)
    visible = (np.einsum("fc,fc->f", normal, to_cam) > 0) & (depth[faces] > 1e-3).all(-1)
    light_world = viewmat[:3, :3].T @ _LIGHT
    shade = 0.25 + 0.75 * np.clip(normal @ light_world, 0.0, 1.0)
    rgb = np.clip(colors[faces].mean(axis=1) * shade[:, None], 0, 1)
    order = np.argsort(-depth[faces].mean(axis=1))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    for f in order:
        if visible[f]:
            fill = tuple(int(255 * c) for c in rgb[f])
            draw.polygon([tuple(p) for p in uv[faces[f]]], fill=fill, outline=fill)
    return image


def default_cells(model: FlameModel, strength: float = 2.0) -> list[list[PreviewCell]]:
    """Rows of expressions (neutral, jaw open, the first expression components) by columns
    of head poses (front, turned left and right, tilted down)."""
    zero = np.zeros(model.n_exp, np.float32)
    rows = [("neutral", zero, (0.0, 0.0, 0.0)), ("jaw open", zero, (0.3, 0.0, 0.0))]
    names = _expression_names(model)
    for i in range(min(model.n_exp, 4)):
        e = zero.copy()
        e[i] = strength
        rows.append((names[i], e, (0.0, 0.0, 0.0)))
    poses = [
        ("front", (0.0, 0.0, 0.0)),
        ("left", (0.0, 0.6, 0.0)),
        ("right", (0.0, -0.6, 0.0)),
        ("down", (0.3, 0.0, 0.0)),
    ]
    return [
        [PreviewCell(f"{rname} / {pname}", e, g, j) for pname, g in poses] for rname, e, j in rows
    ]


def _expression_names(model: FlameModel) -> list[str]:
    # The procedural head's names fit a model built like it (a mouth cavity, the same count).
    if "mouth_interior" in model.masks and len(EXPRESSION_NAMES) >= min(model.n_exp, 4):
        return list(EXPRESSION_NAMES)
    return [f"exp {i}" for i in range(model.n_exp)]


_forward = jax.jit(flame_forward)


def render_preview_grid(
    model: FlameModel, cells: list[list[PreviewCell]] | None = None, cell_size: int = 256
) -> Image.Image:
    """Render a grid of expressions and poses of ``model`` (default :func:`default_cells`).

    Returns:
      An RGB image of ``rows * cell_size`` by ``cols * cell_size`` pixels, labelled per cell.
    """
    if cell_size < 32:
        raise InputError(f"cell_size {cell_size} is too small; use at least 32 pixels")
    cells = default_cells(model) if cells is None else cells
    flat = [c for row in cells for c in row]
    params = FlameParams.zeros(model.n_shape, model.n_exp, (len(flat),)).replace(
        expression=np.stack([c.expression for c in flat]),
        global_pose=np.array([c.global_pose for c in flat]),
        jaw_pose=np.array([c.jaw_pose for c in flat]),
    )
    verts = np.asarray(_forward(model, params).vertices, np.float64)  # [n, V, 3]
    rest = np.asarray(model.v_template, np.float64)
    center = 0.5 * (rest.min(0) + rest.max(0))
    extent = float(np.max(rest.max(0) - rest.min(0)))
    # Far (4.6 head sizes) and narrow: little perspective, the head fills the cell.
    viewmat, K = portrait_camera(center, cell_size, distance=4.6 * extent, field=1.15 * extent)
    colors = vertex_colors(model)
    faces = np.asarray(model.faces)
    n_rows, n_cols = len(cells), max(len(r) for r in cells)
    grid = Image.new("RGB", (n_cols * cell_size, n_rows * cell_size), (24, 26, 32))
    for i, cell in enumerate(flat):
        r, c = divmod(i, len(cells[0]))
        tile = draw_mesh(verts[i], faces, colors, viewmat, K, cell_size)
        ImageDraw.Draw(tile).text((4, 4), cell.label, fill=(230, 230, 230))
        grid.paste(tile, (c * cell_size, r * cell_size))
    return grid
