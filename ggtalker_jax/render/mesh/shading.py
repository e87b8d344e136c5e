"""Textured, shaded, composited meshes on top of :mod:`ggtalker_jax.render.mesh.raster`.

The synthetic world's ground truth: head (eyeballs and mouth cavity are part of the head mesh),
torso and background, one z-buffer over all meshes, per-mesh masks.

Texture convention: ``uv`` in ``[0, 1]²``, ``u = 0`` at the texture's left edge and ``u = 1`` at
its right edge; ``v = 0`` at its **top** edge (row 0) and ``v = 1`` at its bottom edge, i.e. image
convention; texel ``(r, c)`` has its centre at ``((c + 0.5) / Wt, (r + 0.5) / Ht)``. Wavefront
``.obj`` files (FLAME's ``vt`` included) put ``v = 0`` at the bottom: pass ``flip_v=True``
(the default of :func:`render_textured_meshes`, whose meshes are FLAME-format). Lookups outside
``[0, 1]`` clamp to the edge texels.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ggtalker_jax.errors import InputError
from ggtalker_jax.geometry.triangles import vertex_normals
from ggtalker_jax.render.mesh.checks import check_camera, check_image_size, check_mesh
from ggtalker_jax.render.mesh.raster import (
    apply_matrix,
    interpolate,
    pixel_rays,
    rasterize_mesh,
)
from ggtalker_jax.types import Mesh

# Direction *towards* the light in camera space (OpenCV: -y is up, -z towards the viewer):
# above, slightly left of and in front of the face.
DEFAULT_LIGHT = (-0.3, -0.5, -0.8)


def _dot(a, b):
    """Dot product over a last axis of 3, unrolled (XLA:CPU is slow at tiny reductions)."""
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


def _norm(a):
    return jnp.sqrt(_dot(a, a))


def sample_texture(texture: jax.Array, uv: jax.Array, flip_v: bool = False) -> jax.Array:
    """Bilinear texture lookup with clamp-to-edge.

    Args:
      texture: ``[Ht, Wt, D]`` texel values.
      uv: ``[..., 2]`` coordinates in ``[0, 1]`` (module docstring: ``v = 0`` is the top row).
      flip_v: ``v = 0`` is the bottom row instead (``.obj``/FLAME ``vt``).

    Returns:
      ``[..., D]`` float32 samples.
    """
    texture = jnp.asarray(texture, jnp.float32)
    if texture.ndim != 3 or jnp.shape(uv)[-1] != 2:
        raise InputError(
            f"sample_texture: texture must be [Ht, Wt, D] and uv [..., 2], got "
            f"{texture.shape} and {jnp.shape(uv)}"
        )
    h, w, _ = texture.shape
    u, v = uv[..., 0], uv[..., 1]
    if flip_v:
        v = 1.0 - v
    # Continuous texel coordinates whose integer points are texel centres.
    x = jnp.clip(u * w - 0.5, 0.0, w - 1.0)
    y = jnp.clip(v * h - 0.5, 0.0, h - 1.0)
    # Lower corner at most the second-last texel, so the upper one stays in range.
    x0 = jnp.clip(jnp.floor(x).astype(jnp.int32), 0, max(w - 2, 0))
    y0 = jnp.clip(jnp.floor(y).astype(jnp.int32), 0, max(h - 2, 0))
    x1, y1 = jnp.minimum(x0 + 1, w - 1), jnp.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0.astype(x.dtype))[..., None], (y - y0.astype(y.dtype))[..., None]
    top = texture[y0, x0] * (1.0 - fx) + texture[y0, x1] * fx
    bottom = texture[y1, x0] * (1.0 - fx) + texture[y1, x1] * fx
    return top * (1.0 - fy) + bottom * fy


def shade(
    albedo: jax.Array,
    normals: jax.Array,
    light_dir=DEFAULT_LIGHT,
    ambient: float = 0.35,
    diffuse: float = 0.75,
    view_dirs: jax.Array | None = None,
) -> jax.Array:
    """Lambert plus ambient: ``albedo · (ambient + diffuse · max(0, n · l))``.

    Args:
      albedo: ``[..., 3]`` surface colour, 0..1.
      normals: ``[..., 3]`` camera-space normals (need not be unit length, e.g. interpolated).
      light_dir: ``[3]`` camera-space direction towards the light (normalised here).
      ambient, diffuse: light weights.
      view_dirs: ``[..., 3]`` camera→surface rays; when given, lighting is two-sided: a
        normal pointing away from the camera is flipped (the inside of the mouth is lit like
        the outside).

    Returns:
      ``[..., 3]`` shaded colour, clipped to 0..1.
    """
    n = normals / jnp.maximum(_norm(normals), 1e-12)[..., None]
    if view_dirs is not None:
        n = jnp.where((_dot(n, view_dirs) > 0)[..., None], -n, n)
    light = jnp.asarray(light_dir, jnp.float32)
    light = light / jnp.linalg.norm(light)
    lambert = jnp.maximum(_dot(n, light), 0.0)
    return jnp.clip(albedo * (ambient + diffuse * lambert)[..., None], 0.0, 1.0)


def _concat_meshes(meshes):
    """One mesh out of many: global vertex indices, per-corner UVs, smooth normals."""
    verts, faces, uvs, normals = [], [], [], []
    offset = 0
    for mesh in meshes:
        vertices = jnp.asarray(mesh.vertices, jnp.float32)
        f = jnp.asarray(mesh.faces, jnp.int32)
        verts.append(vertices)
        faces.append(f + offset)
        uvs.append(jnp.asarray(mesh.vt, jnp.float32)[jnp.asarray(mesh.ft, jnp.int32)])  # [Fm, 3, 2]
        normals.append(vertex_normals(vertices, jnp.clip(f, 0, vertices.shape[0] - 1)))
        offset += vertices.shape[0]
    return (
        jnp.concatenate(verts),
        jnp.concatenate(faces),
        jnp.concatenate(uvs),
        jnp.concatenate(normals),
    )


def render_textured_meshes(
    meshes: Sequence[Mesh],
    viewmat: jax.Array,
    K: jax.Array,
    width: int,
    height: int,
    background: jax.Array | None = None,
    *,
    flip_v: bool = True,
    light_dir=DEFAULT_LIGHT,
    ambient: float = 0.35,
    diffuse: float = 0.75,
    two_sided: bool = True,
    near: float = 0.01,
    window: int = 4,
) -> tuple[jax.Array, jax.Array]:
    """Render textured, shaded meshes into one image with one shared z-buffer.

    Pure and jit-able with static ``width``/``height`` (and the keyword options); ``vmap``
    over frames (e.g. per-frame head vertices and cameras).

    Args:
      meshes: :class:`~ggtalker_jax.types.Mesh` es in world space (``vertices [Vm, 3]``);
        textures are float 0..1 (uint8 is scaled by 1/255) and may differ in size.
      viewmat: ``[4, 4]`` world→camera (OpenCV).  K: ``[3, 3]`` pixels.
      width, height: image size (static).
      background: ``[H, W, 3]`` float 0..1 (uint8 is scaled by 1/255) shown where no mesh is;
        black if ``None``.
      flip_v: ``vt`` has ``v = 0`` at the texture's bottom (``.obj``/FLAME convention).
      light_dir, ambient, diffuse: see :func:`shade` (camera space).
      two_sided: light faces seen from behind as if seen from the front.
      near, window: see :func:`~ggtalker_jax.render.mesh.raster.rasterize_mesh`.

    Returns:
      ``rgb [H, W, 3]`` float32 0..1 and ``masks [n_meshes, H, W]`` bool: each covered pixel
      is labelled with the mesh whose surface is nearest there; masks are disjoint and their
      union is the covered area.
    """
    rgb, masks, _ = _render(
        meshes,
        viewmat,
        K,
        width,
        height,
        background,
        flip_v=flip_v,
        light_dir=light_dir,
        ambient=ambient,
        diffuse=diffuse,
        two_sided=two_sided,
        near=near,
        window=window,
        max_windows=None,
    )
    return rgb, masks


def render_textured_meshes_bounded(
    meshes: Sequence[Mesh],
    viewmat: jax.Array,
    K: jax.Array,
    width: int,
    height: int,
    background: jax.Array | None = None,
    *,
    max_windows: int,
    flip_v: bool = True,
    light_dir=DEFAULT_LIGHT,
    ambient: float = 0.35,
    diffuse: float = 0.75,
    two_sided: bool = True,
    near: float = 0.01,
    window: int = 4,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """:func:`render_textured_meshes` with a fixed amount of rasterizer work: ``(rgb, masks,
    dropped)``, ``dropped`` (int32) the work windows left untested once the chunks covering
    ``max_windows`` ran (see :func:`~ggtalker_jax.render.mesh.raster.rasterize_mesh`; 0 when
    they sufficed).
    For renders inside a training step or a data source feeding one on a GPU, where a
    data-dependent loop would make the host wait for the device."""
    return _render(
        meshes,
        viewmat,
        K,
        width,
        height,
        background,
        flip_v=flip_v,
        light_dir=light_dir,
        ambient=ambient,
        diffuse=diffuse,
        two_sided=two_sided,
        near=near,
        window=window,
        max_windows=int(max_windows),
    )


def _render(
    meshes,
    viewmat,
    K,
    width,
    height,
    background,
    *,
    flip_v,
    light_dir,
    ambient,
    diffuse,
    two_sided,
    near,
    window,
    max_windows,
):
    width, height = check_image_size(width, height)
    check_camera(viewmat, K)
    if len(meshes) == 0:
        raise InputError("render_textured_meshes: no meshes given")
    for m, mesh in enumerate(meshes):
        if not isinstance(mesh, Mesh):
            raise InputError(
                f"mesh {m}: expected a ggtalker_jax.types.Mesh, got a {type(mesh).__name__}"
            )
        vertices, f, vt, ft, texture = mesh.vertices, mesh.faces, mesh.vt, mesh.ft, mesh.texture
        check_mesh(vertices, f, name=f"mesh {m}")
        if jnp.shape(ft) != jnp.shape(f) or jnp.ndim(vt) != 2 or jnp.shape(vt)[-1] != 2:
            raise InputError(
                f"mesh {m}: ft must match faces {jnp.shape(f)} and vt be [T, 2], got "
                f"{jnp.shape(ft)} and {jnp.shape(vt)}"
            )
        if jnp.ndim(texture) != 3 or jnp.shape(texture)[-1] != 3:
            raise InputError(f"mesh {m}: texture must be [Ht, Wt, 3], got {jnp.shape(texture)}")
    if background is not None and jnp.shape(background) != (height, width, 3):
        raise InputError(f"background must be [{height}, {width}, 3], got {jnp.shape(background)}")

    if background is None:
        background = jnp.zeros((height, width, 3), jnp.float32)
    elif jnp.issubdtype(jnp.result_type(background), jnp.integer):
        background = jnp.asarray(background, jnp.float32) / 255.0
    meshes = tuple(
        dataclasses.replace(mesh, texture=jnp.asarray(mesh.texture, jnp.float32) / 255.0)
        if jnp.issubdtype(jnp.result_type(mesh.texture), jnp.integer)
        else mesh
        for mesh in meshes
    )
    return _render_jit(
        meshes,
        jnp.asarray(viewmat, jnp.float32),
        jnp.asarray(K, jnp.float32),
        jnp.asarray(background, jnp.float32),
        jnp.asarray(light_dir, jnp.float32),
        jnp.asarray(ambient, jnp.float32),
        jnp.asarray(diffuse, jnp.float32),
        jnp.asarray(near, jnp.float32),
        width=width,
        height=height,
        flip_v=bool(flip_v),
        two_sided=bool(two_sided),
        window=int(window),
        max_windows=max_windows,
    )


@functools.partial(
    jax.jit,
    static_argnames=("width", "height", "flip_v", "two_sided", "window", "max_windows"),
)
def _render_jit(
    meshes,
    viewmat,
    K,
    background,
    light_dir,
    ambient,
    diffuse,
    near,
    *,
    width,
    height,
    flip_v,
    two_sided,
    window,
    max_windows,
):
    vertices, faces, uvs, normals = _concat_meshes(meshes)
    frag = rasterize_mesh(
        vertices, faces, viewmat, K, width, height, near, window=window, max_windows=max_windows
    )

    # Which mesh each face belongs to: static face-count boundaries.
    face_ends = np.cumsum([np.shape(mesh.faces)[0] for mesh in meshes])
    mesh_of_pixel = jnp.searchsorted(jnp.asarray(face_ends), frag.face_id, side="right")
    mesh_of_pixel = jnp.where(frag.mask, mesh_of_pixel, -1)  # [H, W]
    masks = mesh_of_pixel[None] == jnp.arange(len(meshes))[:, None, None]

    # One UV lookup per mesh texture (textures differ in size), kept where that mesh won.
    uv = interpolate(frag, uvs)  # [H, W, 2]
    albedo = jnp.zeros((height, width, 3), jnp.float32)
    for m, mesh in enumerate(meshes):
        albedo = jnp.where(masks[m][..., None], sample_texture(mesh.texture, uv, flip_v), albedo)

    normals_cam = apply_matrix(normals, viewmat[:3, :3])  # directions: rotation only
    n_pix = interpolate(frag, normals_cam[faces])  # [H, W, 3]
    rays = pixel_rays(K, width, height) if two_sided else None
    rgb = shade(albedo, n_pix, light_dir, ambient, diffuse, rays)
    rgb = jnp.where(frag.mask[..., None], rgb, background)
    return rgb, masks, frag.dropped
