"""Placing Gaussians in the world: rigid transforms of a Gaussian set (posing a head, the
benchmark's moving workload) and Gaussians rigged to mesh triangles from a UV map.

A raw UV map ``[..., Hu, Wu, 14]`` (channels in :data:`ggtalker_jax.geometry.uv.MAP_SLICES`)
becomes Gaussians in three steps:

1. :func:`decode_texels`: raw texel values -> :class:`LocalGaussians` through bounded
   activations (below), each attribute local to its triangle's rigging frame.
2. :func:`rig_gaussians`: frame ``(R, T, k)`` of each texel's face on the posed mesh
   (:func:`ggtalker_jax.geometry.triangles.triangle_frames`, GaussianAvatars'): world mean
   ``p + k R μ`` with ``p`` the texel's barycentric surface point, scale ``k exp(s)``,
   rotation ``R ∘ r``.
3. :func:`initial_raw_map`: the raw map a generator adds its delta to: Gaussians on the
   surface, just overlapping their neighbours.

The mean is anchored at the texel's surface point, not at the centroid ``T`` as in
GaussianAvatars: with a zero offset every texel of a triangle sits at its own spot, so a zero
map already covers the surface.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ggtalker_jax.errors import InputError
from ggtalker_jax.geometry.rotations import matrix_to_quaternion, quaternion_multiply
from ggtalker_jax.geometry.triangles import triangle_frames
from ggtalker_jax.geometry.uv import MAP_CHANNELS, MAP_SLICES, TexelLayout, surface_points
from ggtalker_jax.types import Gaussians

# Gaussian std over the world spacing d of neighbouring texels in the surface plane. At 0.5
# the opacity-0.9 surface still dips to alpha ~0.6 midway between four texels (seams show in
# renders); at 0.6 it stays above ~0.9 everywhere while a Gaussian's 1-std disc still only
# reaches a little past its neighbours' halfway points: they just overlap.
_STD_PER_SPACING = 0.6
# The std along the triangle normal relative to the in-plane one: flat surfels that still
# render from grazing views.
_NORMAL_FLATNESS = 0.3
# Initial log-scales stay this far below the cap (the capped softplus is flat above it).
_CAP_MARGIN = 0.05


def transform_gaussians(gaussians: Gaussians, rotation, translation) -> Gaussians:
    """Move Gaussians rigidly: ``x -> R x + t``; rotations compose as ``R ∘ q``.

    Args:
      gaussians: means ``[..., N, 3]`` and quats ``[..., N, 4]`` (the rest is kept).
      rotation: ``[..., 3, 3]``, one per leading batch element.
      translation: ``[..., 3]``.

    Returns:
      The moved :class:`Gaussians`, with the batch shape of ``rotation`` in front.
    """
    rotation = jnp.asarray(rotation, jnp.float32)
    translation = jnp.asarray(translation, jnp.float32)
    means = (
        jnp.einsum(
            "...ij,...nj->...ni", rotation, gaussians.means, precision=jax.lax.Precision.HIGHEST
        )
        + translation[..., None, :]
    )
    turn = matrix_to_quaternion(rotation)[..., None, :]  # [..., 1, 4]
    shape = (*means.shape[:-1], 4)
    quats = quaternion_multiply(
        jnp.broadcast_to(turn, shape), jnp.broadcast_to(gaussians.quats, shape)
    )
    batch = means.shape[:-2]
    return Gaussians(
        means=means,
        quats=quats,
        scales=jnp.broadcast_to(gaussians.scales, (*batch, *gaussians.scales.shape[-2:])),
        opacities=jnp.broadcast_to(gaussians.opacities, (*batch, gaussians.opacities.shape[-1])),
        colors=jnp.broadcast_to(gaussians.colors, (*batch, *gaussians.colors.shape[-2:])),
    )


@dataclasses.dataclass(frozen=True)
class LocalGaussians:
    """Decoded texels, each attribute local to its triangle's rigging frame.

    Attributes:
      offsets: ``[..., N, 3]`` mean offset from the texel's surface point, in the frame's
        axes (edge, normal, in-plane) and units of the triangle scale ``k``.
      log_scales: ``[..., N, 3]`` local log std: world std ``k exp(s)``.
      quats: ``[..., N, 4]`` unit wxyz rotation relative to the triangle frame.
      colors: ``[..., N, 3]`` in 0..1.
      opacities: ``[..., N]`` in 0..1.
    """

    offsets: jax.Array
    log_scales: jax.Array
    quats: jax.Array
    colors: jax.Array
    opacities: jax.Array


jax.tree_util.register_dataclass(
    LocalGaussians,
    data_fields=[f.name for f in dataclasses.fields(LocalGaussians)],
    meta_fields=[],
)


def decode_texels(texels, offset_radius: float = 1.0, max_log_scale: float = 0.5):
    """Raw texel values -> :class:`LocalGaussians` (the activations of the map channels).

    =========  ========  ===================================================================
    channels   field     activation
    =========  ========  ===================================================================
    0:3        offset    ``r tanh(raw)``: within ``offset_radius`` triangle scales per axis
    3:6        log-scale ``c - softplus(c - raw)``: a soft cap at ``c = max_log_scale``
                         (``≈ raw`` well below it), so no Gaussian outgrows ``k e^c``
    6:10       rotation  ``raw / |raw|`` (wxyz; identity is ``(1, 0, 0, 0)``)
    10:13      colour    ``sigmoid(raw)``
    13         opacity   ``sigmoid(raw)``
    =========  ========  ===================================================================

    Args:
      texels: ``[..., N, 14]`` raw values (e.g. ``layout.gather(uv_map)``).
      offset_radius: ``r``, the largest offset per axis, in units of the triangle scale.
      max_log_scale: ``c``, the cap of the local log-scale.

    Returns:
      :class:`LocalGaussians` with the leading shape of ``texels``.

    Raises:
      InputError: (trace time) a channel count other than 14.
    """
    texels = jnp.asarray(texels)
    check_texel_channels(texels.shape, "decode_texels: texels")
    raw = {name: texels[..., s] for name, s in MAP_SLICES.items()}
    q = raw["rotation"]
    norm2 = jnp.sum(q * q, axis=-1, keepdims=True)
    return LocalGaussians(
        offsets=offset_radius * jnp.tanh(raw["offset"]),
        log_scales=max_log_scale - jax.nn.softplus(max_log_scale - raw["log_scale"]),
        quats=q * jax.lax.rsqrt(jnp.maximum(norm2, 1e-12)),
        colors=jax.nn.sigmoid(raw["color"]),
        opacities=jax.nn.sigmoid(raw["opacity"][..., 0]),
    )


def check_texel_channels(shape: tuple, what: str) -> None:
    """Refuse a raw map or texel array ``shape`` whose last axis is not the 14 channels."""
    if len(shape) < 2 or shape[-1] != MAP_CHANNELS:
        found = shape[-1] if shape else 0
        raise InputError(
            f"{what} has {found} channels; expected {MAP_CHANNELS} (offset 3, log-scale 3, "
            "rotation 4, colour 3, opacity 1)"
        )


def rig_gaussians(local: LocalGaussians, vertices, faces, layout: TexelLayout) -> Gaussians:
    """Place decoded texels on a posed mesh (module docstring, step 2).

    Args:
      local: :class:`LocalGaussians` ``[..., N]`` (one per texel of ``layout``).
      vertices: ``[..., V, 3]`` posed vertices; leading dims broadcast against ``local``'s
        (one map on many frames, or one map per frame).
      faces: ``[F, 3]`` int (host array).  layout: the texels.

    Returns:
      World :class:`Gaussians` ``[*B, N]``, ``B`` the broadcast leading shape.
    """
    vertices = jnp.asarray(vertices)
    face_corners = np.asarray(faces)[layout.face]  # [N, 3]
    rotation, _, scale = triangle_frames(vertices, face_corners)  # [*Bv, N, 3, 3], [*Bv, N]
    anchor = surface_points(vertices, faces, layout)  # [*Bv, N, 3]
    n = layout.n
    batch = jnp.broadcast_shapes(local.offsets.shape[:-2], vertices.shape[:-2])
    to = lambda x, *tail: jnp.broadcast_to(x, (*batch, n, *tail))
    frame_quats = to(matrix_to_quaternion(rotation), 4)
    rotation, scale, anchor = to(rotation, 3, 3), to(scale), to(anchor, 3)
    offsets, log_scales = to(local.offsets, 3), to(local.log_scales, 3)
    turned = jnp.einsum(
        "...ij,...j->...i", rotation, offsets, precision=jax.lax.Precision.HIGHEST
    )  # [*B, N, 3]
    k = scale[..., None]  # [*B, N, 1]
    return Gaussians(
        means=anchor + k * turned,
        quats=quaternion_multiply(frame_quats, to(local.quats, 4)),
        scales=k * jnp.exp(log_scales),
        opacities=to(local.opacities),
        colors=to(local.colors, local.colors.shape[-1]),
    )


def _inverse_capped_softplus(s: np.ndarray, cap: float) -> np.ndarray:
    """The raw value whose capped softplus ``cap - softplus(cap - raw)`` is ``s < cap``."""
    gap = cap - s  # > 0
    return cap - (gap + np.log(-np.expm1(-gap)))  # log(expm1(gap)), stable for large gaps


def _logit(p) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-4, 1.0 - 1e-4)
    return np.log(p) - np.log1p(-p)


def initial_raw_map(
    layout: TexelLayout,
    rest_vertices,
    faces,
    opacity=0.9,
    color=0.5,
    max_log_scale: float = 0.5,
) -> np.ndarray:
    """The raw map of Gaussians lying on the rest mesh, each about its texel's world size.

    Per texel, the world spacing of texel centres is ``d = sqrt(A_world / A_uv)`` (its face's
    world area over that face's UV area in texels). The decoded in-plane std is ``0.6 d``
    (neighbours just overlap: a closed surface of alpha about 0.9 or more), the std along the
    normal ``0.3`` of that; the local log-scale is ``s = log(std / k)`` (``k`` the face's
    rigging scale), kept ``0.05`` under the cap. Offsets decode to zero and rotations to the
    identity (the triangle frame). A generator predicts this map plus a delta.

    Args:
      layout: the texels (its ``uv_area``; without one, the texel count of each face).
      rest_vertices: ``[V, 3]`` rest vertices.  faces: ``[F, 3]`` int.
      opacity: decoded opacity, a number or ``[N]``.
      color: decoded colour in 0..1, a number, ``[3]`` or ``[N, 3]``.
      max_log_scale: the cap :func:`decode_texels` will use.

    Returns:
      ``[Hu, Wu, 14]`` float32 raw values; uncovered texels are zero.
    """
    verts = np.asarray(rest_vertices, np.float64)
    corners = np.asarray(faces)[layout.face]  # [N, 3]
    tri = verts[corners]  # [N, 3, 3]
    world_area = 0.5 * np.linalg.norm(
        np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=-1
    )
    if layout.uv_area is not None:
        uv_area = np.asarray(layout.uv_area, np.float64)
    else:
        uv_area = np.bincount(layout.face)[layout.face].astype(np.float64)
    spacing = np.sqrt(world_area / np.maximum(uv_area, 1e-3))
    _, _, k = triangle_frames(jnp.asarray(verts, jnp.float32), corners)
    k = np.maximum(np.asarray(k, np.float64), 1e-12)
    plane = np.log(np.maximum(_STD_PER_SPACING * spacing, 1e-12) / k)
    local = np.stack([plane, plane + np.log(_NORMAL_FLATNESS), plane], -1)  # (edge, n, plane)
    local = np.clip(local, max_log_scale - 20.0, max_log_scale - _CAP_MARGIN)

    n = layout.n
    texels = np.zeros((n, MAP_CHANNELS), np.float64)
    texels[:, MAP_SLICES["log_scale"]] = _inverse_capped_softplus(local, max_log_scale)
    texels[:, MAP_SLICES["rotation"].start] = 1.0
    texels[:, MAP_SLICES["color"]] = np.broadcast_to(_logit(color), (n, 3))
    texels[:, MAP_SLICES["opacity"]] = np.broadcast_to(_logit(opacity), (n,))[:, None]
    out = np.zeros((*layout.size, MAP_CHANNELS), np.float32)
    out[layout.rows, layout.cols] = texels
    return out
