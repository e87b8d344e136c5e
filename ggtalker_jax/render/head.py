"""The Gaussian head's render path: FLAME parameters + a UV Gaussian map + a camera -> image.

1. :func:`pose_mesh`: FLAME skinning (:func:`ggtalker_jax.flame.flame_forward`).
2. :func:`map_to_gaussians`: the map's covered texels decoded and rigged to the posed
   triangles (:mod:`ggtalker_jax.geometry.rigging`).
3. optional per-Gaussian colour delta (the color MLP's output), clipped to 0..1.
4. :func:`render_gaussians`: tile splatting (:func:`ggtalker_jax.kernels.splat.rasterization`,
   ``"RGB+ED"``): colour, alpha and expected depth, one camera per batch element.

:func:`render_head` is all four as one jitted function, batched over frames; its
:class:`HeadTemplate` (the static data of one model at one UV size) is a static argument,
built once by :func:`make_head_template`.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from ggtalker_jax.errors import InputError
from ggtalker_jax.flame.lbs import flame_forward
from ggtalker_jax.flame.model import FlameModel
from ggtalker_jax.geometry.rigging import (
    LocalGaussians,
    check_texel_channels,
    decode_texels,
    initial_raw_map,
    rig_gaussians,
)
from ggtalker_jax.geometry.uv import TexelLayout, texel_layout
from ggtalker_jax.kernels.splat import rasterization, resolve_backend
from ggtalker_jax.types import Camera, FlameParams, Gaussians, check_flame_params


@dataclasses.dataclass(frozen=True, eq=False)
class HeadTemplate:
    """Static data of one FLAME model's Gaussian head at one UV size (hashed by identity:
    a static ``jit`` argument).

    Attributes:
      model: the FLAME model (with UVs).
      layout: the covered texels of the ``[Hu, Wu]`` grid: ``N = layout.n`` Gaussians.
      base_map: ``[Hu, Wu, 14]`` float32 raw map of Gaussians on the rest surface
        (:func:`ggtalker_jax.geometry.rigging.initial_raw_map`); generators predict
        ``base_map + delta``.
      faces: ``[F, 3]`` int32 triangles (host copy).
    """

    model: FlameModel
    layout: TexelLayout
    base_map: np.ndarray
    faces: np.ndarray

    @property
    def uv_size(self) -> tuple[int, int]:
        """``(Hu, Wu)``."""
        return self.layout.size

    @property
    def n(self) -> int:
        """``N``, Gaussians per head."""
        return self.layout.n


# (id(model), uv_size) -> template. The template holds its model, so an id stays unique for
# as long as its entry lives.
_TEMPLATES: dict[tuple[int, int], HeadTemplate] = {}


def make_head_template(model: FlameModel, uv_size: int) -> HeadTemplate:
    """The :class:`HeadTemplate` of ``model`` at ``uv_size x uv_size`` texels, built once per
    (model object, size) and cached, so every caller shares one static ``jit`` argument.

    Raises:
      InputError: the model has no UVs, or ``uv_size`` is not a positive integer.
    """
    if not isinstance(uv_size, int | np.integer) or isinstance(uv_size, bool) or uv_size < 1:
        raise InputError(f"make_head_template: uv_size {uv_size!r} must be a positive integer")
    key = (id(model), int(uv_size))
    cached = _TEMPLATES.get(key)
    if cached is not None and cached.model is model:
        return cached
    model.require("uv")
    faces = np.asarray(model.faces, np.int32)
    layout = texel_layout(np.asarray(model.vt), np.asarray(model.ft), int(uv_size))
    if layout.n == 0:
        raise InputError(
            f"{model.source}: no texel of a {uv_size}x{uv_size} UV grid falls inside a UV "
            "triangle; use a larger uv_size"
        )
    template = HeadTemplate(
        model=model,
        layout=layout,
        base_map=initial_raw_map(layout, np.asarray(model.v_template), faces),
        faces=faces,
    )
    _TEMPLATES[key] = template
    return template


def pose_mesh(model: FlameModel, params: FlameParams) -> jax.Array:
    """Posed FLAME vertices ``[..., V, 3]`` for ``params`` (leading shape ``...``)."""
    return flame_forward(model, params).vertices


def check_uv_map(template: HeadTemplate, uv_map, where: str = "uv map") -> None:
    """Refuse (trace time) a map whose channel count or UV size does not fit ``template``."""
    shape = tuple(jnp.shape(uv_map))
    if len(shape) < 3:
        raise InputError(f"{where} has shape {shape}; expected [..., Hu, Wu, 14]")
    check_texel_channels(shape, where)
    if shape[-3:-1] != template.uv_size:
        (h, w), (hu, wu) = shape[-3:-1], template.uv_size
        raise InputError(
            f"{where} is {h}x{w} texels; the head template's UV size is {hu}x{wu} "
            f"(build the template with make_head_template(model, {h}) for this map)"
        )


def map_to_gaussians(
    template: HeadTemplate,
    uv_map,
    vertices,
    offset_radius: float = 1.0,
    max_log_scale: float = 0.5,
) -> tuple[Gaussians, LocalGaussians]:
    """Decode a raw UV map and rig it to posed vertices.

    Args:
      template: the head.
      uv_map: ``[..., Hu, Wu, 14]`` raw map (``template.base_map + delta``).
      vertices: ``[..., V, 3]`` posed vertices; leading dims broadcast against the map's.
      offset_radius, max_log_scale: the activations' bounds
        (:func:`ggtalker_jax.geometry.rigging.decode_texels`).

    Returns:
      ``(world Gaussians [*B, N], local Gaussians [..., N])`` (the local ones carry what the
      offset and scale regularisers read).

    Raises:
      InputError: (trace time) a map that does not fit the template, or vertices that are not
        the model's.
    """
    check_uv_map(template, uv_map)
    v = template.model.n_vertices
    if jnp.ndim(vertices) < 2 or tuple(jnp.shape(vertices)[-2:]) != (v, 3):
        raise InputError(
            f"map_to_gaussians: vertices have shape {tuple(jnp.shape(vertices))}; the head "
            f"model has [..., {v}, 3]"
        )
    local = decode_texels(template.layout.gather(uv_map), offset_radius, max_log_scale)
    return rig_gaussians(local, vertices, template.faces, template.layout), local


@dataclasses.dataclass(frozen=True)
class HeadRender:
    """A rendered head.

    Attributes:
      rgb: ``[..., H, W, D]`` colour over the background (``D = 3`` for a head).
      alpha: ``[..., H, W]`` accumulated opacity (1 - final transmittance).
      depth: ``[..., H, W]`` expected camera-space depth (0 where nothing is drawn).
    """

    rgb: jax.Array
    alpha: jax.Array
    depth: jax.Array


jax.tree_util.register_dataclass(HeadRender, data_fields=["rgb", "alpha", "depth"], meta_fields=[])

CPU_TILE_SIZE = 8
"""Tile side of the ``xla`` (CPU) splatting backend. 8-px tiles hold ~2.5x fewer pixel-
Gaussian pairs than 16-px ones on the head (2.8M vs 7.0M for 15k Gaussians at 128²) for
1.8x more tile slots (4.1 vs 2.2 per Gaussian). Measured on 2 shared cores (load ~3.5,
``tools/bench_splat_cpu.py --tile-size 8,16``), forward / forward+backward of that frame:
94 / 151 ms at 8 px, 138 / 196 ms at 16 px; at 256², 58k: 572 vs 939 ms. The Pallas GPU
kernels keep rasterization's default (16)."""

# Per-Gaussian meta entries of rasterization: their camera axis (one camera) is dropped.
_PER_CAMERA_META = ("radii", "means2d", "depths", "conics")


def render_gaussians(
    gaussians: Gaussians,
    camera: Camera,
    background=None,
    backend: str = "auto",
    capacity: int | None = None,
) -> tuple[HeadRender, dict]:
    """Splat Gaussians into one camera per batch element.

    Args:
      gaussians: ``[..., N]`` (colours ``[..., N, D]``).
      camera: ``viewmat [..., 4, 4]``, ``K [..., 3, 3]``: the same leading shape.
      background: ``[..., D]`` (broadcast to the batch) colour behind the Gaussians, or
        ``None`` (black).
      backend: the splatting backend (``"auto"``: Pallas on GPU, the best CPU one elsewhere).
      capacity: static tile-intersection slots (``None``: rasterization's heuristic). Under
        ``jit`` an overflow cannot be retried: read ``meta["overflow"]``.

    Returns:
      ``(HeadRender, meta)``; meta as :func:`~ggtalker_jax.kernels.splat.rasterization`'s,
      with the camera axis dropped from ``radii``/``means2d``/``depths``/``conics``
      (``[..., N, ...]``).

    Raises:
      InputError: (trace time) leading shapes that differ, or a background that does not
        broadcast to ``[..., D]``.
    """
    gaussians.check("render_gaussians: gaussians")
    camera.check("render_gaussians: camera")
    batch = tuple(camera.viewmat.shape[:-2])
    if tuple(gaussians.means.shape[:-2]) != batch:
        raise InputError(
            f"render_gaussians: gaussians have leading shape {tuple(gaussians.means.shape[:-2])} "
            f"but the camera {batch}; give one camera per batch element"
        )
    d = gaussians.colors.shape[-1]
    backgrounds = None
    if background is not None:
        background = jnp.asarray(background, jnp.float32)
        try:
            background = jnp.broadcast_to(background, (*batch, d))
        except ValueError:
            raise InputError(
                f"render_gaussians: background has shape {tuple(background.shape)}; expected "
                f"[..., {d}] broadcasting to {(*batch, d)}"
            ) from None
        backgrounds = background[..., None, :]  # one camera
    backend = resolve_backend(backend)
    tile_size = {"tile_size": CPU_TILE_SIZE} if backend == "xla" else {}
    out, alphas, meta = rasterization(
        gaussians.means,
        gaussians.quats,
        gaussians.scales,
        gaussians.opacities,
        gaussians.colors,
        camera.viewmat[..., None, :, :],
        camera.K[..., None, :, :],
        camera.width,
        camera.height,
        backgrounds=backgrounds,
        render_mode="RGB+ED",
        backend=backend,
        capacity=capacity,
        **tile_size,
    )
    out = out[..., 0, :, :, :]  # [..., H, W, D + 1]
    meta = dict(meta)
    for name in _PER_CAMERA_META:
        meta[name] = jnp.squeeze(meta[name], axis=len(batch))
    render = HeadRender(rgb=out[..., :d], alpha=alphas[..., 0, :, :, 0], depth=out[..., d])
    return render, meta


@functools.partial(
    jax.jit,
    static_argnames=("template", "backend", "offset_radius", "max_log_scale", "capacity"),
)
def render_head(
    template: HeadTemplate,
    params: FlameParams,
    camera: Camera,
    uv_map,
    color_delta=None,
    background=None,
    backend: str = "auto",
    offset_radius: float = 1.0,
    max_log_scale: float = 0.5,
    capacity: int | None = None,
) -> tuple[HeadRender, Gaussians, dict]:
    """Render the Gaussian head: pose -> rig -> (+ colour delta) -> splat, in one ``jit``.

    Every input's leading shape broadcasts to one batch ``B`` (frames): e.g. one map
    ``[Hu, Wu, 14]`` with ``T`` frames of parameters and cameras, or one map per frame.

    Args:
      template: the head (static).
      params: :class:`FlameParams` ``[...]``.
      camera: :class:`Camera` ``[...]``.
      uv_map: ``[..., Hu, Wu, 14]`` raw map.
      color_delta: ``[..., N, 3]`` added to the decoded colours (then clipped to 0..1), or
        ``None``.
      background: ``[..., 3]`` or ``None`` (black).
      backend, capacity: splatting (:func:`render_gaussians`).
      offset_radius, max_log_scale: decoding bounds (static).

    Returns:
      ``(HeadRender [*B, H, W], world Gaussians [*B, N], meta)``; differentiable in
      ``uv_map``, ``params``, ``color_delta`` and ``background``.

    Raises:
      InputError: (trace time) a map whose channel count or UV size does not fit the
        template, FLAME parameter sizes that do not match the model, bad camera shapes, a
        colour delta that is not ``[..., N, 3]``.
    """
    model = template.model
    check_uv_map(template, uv_map)
    check_flame_params(params, model.n_shape, model.n_exp, where="render_head")
    camera.check("render_head: camera")
    gaussians, _ = map_to_gaussians(
        template, uv_map, pose_mesh(model, params), offset_radius, max_log_scale
    )
    shapes = [gaussians.means.shape[:-2], camera.viewmat.shape[:-2]]
    colors = gaussians.colors
    if color_delta is not None:
        n = template.n
        if jnp.ndim(color_delta) < 2 or tuple(jnp.shape(color_delta)[-2:]) != (n, 3):
            raise InputError(
                f"render_head: color_delta has shape {tuple(jnp.shape(color_delta))}; "
                f"expected [..., {n}, 3] (one RGB delta per Gaussian of the template)"
            )
        colors = jnp.clip(colors + color_delta, 0.0, 1.0)
        shapes.append(colors.shape[:-2])
    try:
        batch = tuple(jnp.broadcast_shapes(*shapes))
    except ValueError:
        raise InputError(
            f"render_head: leading shapes {[tuple(s) for s in shapes]} (map and FLAME "
            "parameters, camera, colour delta) do not broadcast to one batch"
        ) from None
    n = template.n
    gaussians = Gaussians(
        means=jnp.broadcast_to(gaussians.means, (*batch, n, 3)),
        quats=jnp.broadcast_to(gaussians.quats, (*batch, n, 4)),
        scales=jnp.broadcast_to(gaussians.scales, (*batch, n, 3)),
        opacities=jnp.broadcast_to(gaussians.opacities, (*batch, n)),
        colors=jnp.broadcast_to(colors, (*batch, n, 3)),
    )
    camera = Camera(
        viewmat=jnp.broadcast_to(camera.viewmat, (*batch, 4, 4)),
        K=jnp.broadcast_to(camera.K, (*batch, 3, 3)),
        width=camera.width,
        height=camera.height,
    )
    render, meta = render_gaussians(gaussians, camera, background, backend, capacity)
    return render, gaussians, meta
