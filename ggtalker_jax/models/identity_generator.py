"""The Identity-Gaussian Generator: one reference image (with its FLAME parameters and camera)
-> the raw Gaussian UV map ``[B, Hu, Wu, 14]`` of that person.

Pipeline (the step comments in :class:`IdentityGenerator` cite these numbers):

1. **Encode.** A CNN over the ``[B, Hc, Wc, 3]`` image: a stem conv, four stages that each
   halve the resolution (a stride-2 conv and a residual block; widths
   ``config.encoder_widths``), and a feature pyramid (1x1 laterals, nearest upsampling,
   summed) that brings the four stages back to one ``[B, Hc/2, Wc/2, Fl]`` map with
   ``Fl = encoder_widths[1]``. The deepest stage, averaged over the image, gives the global
   code ``[B, global_dim]``.
2. **Lift** (:func:`lift_texels`, pure geometry, no parameters). Every texel's surface point
   on the *source* posed mesh (``render.head.pose_mesh`` + ``geometry.uv.surface_points``)
   is projected with the source camera; the feature map and the image itself are sampled
   bilinearly there. A texel counts as visible when it lies in front of the camera, inside
   the image and no farther than a tolerance behind the nearest surface of the mesh
   z-buffer around its pixel (the min over the 2x2 z-buffer pixels whose centres surround it;
   ``render.mesh.rasterize_mesh`` of the same mesh, vmapped over the batch, at
   ``zbuffer_scale`` of the image resolution). The tolerance is relative (``1 %`` of the
   depth: FLAME meshes are ~1 m away, the nose hides the cheek by ~2 cm) plus a footprint
   term (``1.5`` z-buffer pixels at that depth: a surface seen at a grazing angle changes
   depth by about a pixel footprint across one pixel). Texels with no surface in that 2x2
   window (slivers between pixel centres) count as hidden. Visibility is a hard 0/1 with no
   gradient (it is a property of the given mesh, not something to learn through).
3. **Scatter** the texel samples (times visibility), the visibility and the facing cosine
   to the UV grid; concatenate a learned UV embedding ``[Hu, Wu, uv_embed_dim]`` (what the
   image cannot show: the back of the head, the mouth interior) and the global code.
4. **Decode** with a UV U-Net (``config.uv_widths``: one level per width, each halving the
   resolution, skip connections by concatenation) and a last conv to 14 channels.
   Its offset channels start at exactly zero (training starts on the mesh surface), the
   other channels at ``1e-2`` of the usual initialisation (training starts at the template
   map). Output = ``template.base_map + delta``, zero on uncovered texels.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ggtalker_jax.config.e2v import E2VConfig
from ggtalker_jax.errors import InputError
from ggtalker_jax.geometry.triangles import face_normals
from ggtalker_jax.geometry.uv import MAP_CHANNELS, MAP_SLICES, surface_points
from ggtalker_jax.models.layers import (
    ConvBlock,
    Downsample,
    ResBlock,
    Upsample,
    compute_dtype,
    group_count,
    sample_bilinear,
    upsample_nearest,
)
from ggtalker_jax.render.head import HeadTemplate, pose_mesh
from ggtalker_jax.render.mesh.raster import rasterize_mesh, window_capacity
from ggtalker_jax.types import FlameParams

__all__ = ["IdentityGenerator", "TexelLift", "lift_texels"]

LIFT_EXTRA = 5  # lifted channels besides the feature map: RGB 3, visibility 1, facing 1
DELTA_INIT_SCALE = 1e-2  # last-layer init of the non-offset channels, times lecun normal


# --------------------------------------------------------------------------- step 2: lift


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TexelLift:
    """Where the texels land in the source image and whether the image shows them.

    Attributes:
      pixels: ``[B, N, 2]`` pixel positions ``(u, v)`` in the source image (centres +0.5).
      depth: ``[B, N]`` camera-space z.
      visibility: ``[B, N]`` float 0/1 (no gradient): in front, on the image, not occluded.
      facing: ``[B, N]`` cosine between the face normal and the direction to the camera,
        clipped to 0..1 (1 = seen head-on), times visibility.
      dropped: ``[B]`` int32 work windows the z-buffer's rasterizer left untested (it runs
        a fixed amount of work, :func:`~ggtalker_jax.render.mesh.window_capacity`; 0 when
        that sufficed, as for any head framed in its image).
    """

    pixels: jax.Array
    depth: jax.Array
    visibility: jax.Array
    facing: jax.Array
    dropped: jax.Array


def lift_texels(
    template: HeadTemplate,
    vertices: jax.Array,
    viewmat: jax.Array,
    K: jax.Array,
    image_size: tuple[int, int],
    *,
    zbuffer_scale: float = 0.5,
    depth_tolerance: float = 0.01,
    footprint_pixels: float = 1.5,
    near: float = 0.01,
) -> TexelLift:
    """Project the texels of a posed mesh into its camera and test their visibility.

    Args:
      template: the head template (texel layout and faces).
      vertices: ``[B, V, 3]`` posed source mesh.
      viewmat: ``[B, 4, 4]`` world->camera.  K: ``[B, 3, 3]`` intrinsics of the image.
      image_size: ``(Hc, Wc)`` of the image ``K`` is for (static).
      zbuffer_scale: z-buffer resolution relative to the image (static).
      depth_tolerance: relative depth slack (fraction of the texel's depth).
      footprint_pixels: extra slack in z-buffer pixels' world footprint at the texel's depth.
      near: texels closer than this (camera z, metres) are invisible.

    Returns:
      :class:`TexelLift` (``[B, N, ...]``).
    """
    height, width = image_size
    zh, zw = max(1, round(height * zbuffer_scale)), max(1, round(width * zbuffer_scale))
    points = surface_points(vertices, template.faces, template.layout)  # [B, N, 3]
    # Camera space and pixels, elementwise (no TF32 on GPUs; geometry.camera.project_points
    # is written for one camera and relies on rank promotion).
    rotation = viewmat[:, None, :3, :3]  # [B, 1, 3, 3]
    p_cam = jnp.sum(rotation * points[..., None, :], axis=-1) + viewmat[:, None, :3, 3]
    depth = p_cam[..., 2]  # [B, N]
    safe = jnp.where(depth > near, depth, near)[..., None]
    xy = p_cam[..., :2] / safe  # [B, N, 2]
    pixels = jnp.stack(
        [
            K[:, None, 0, 0] * xy[..., 0] + K[:, None, 0, 1] * xy[..., 1] + K[:, None, 0, 2],
            K[:, None, 1, 1] * xy[..., 1] + K[:, None, 1, 2],
        ],
        axis=-1,
    )  # [B, N, 2]

    # The z-buffer of the same mesh at (zh, zw): K scaled to that grid (pixel edges map to
    # pixel edges, so u' = u · zw / Wc).
    scale = jnp.asarray([zw / width, zh / height, 1.0], jnp.float32)
    k_small = K * scale[None, :, None]  # rows 0, 1 of K scaled
    faces = jnp.asarray(template.faces, jnp.int32)
    # A fixed amount of rasterizer work: this runs inside the training step, where a loop
    # with a data-dependent trip count would make the host wait for the GPU at every
    # iteration (render.mesh.raster, step 3).
    capacity = window_capacity(faces.shape[0], zw, zh)

    def depth_of(v, vm, k):
        fragments = rasterize_mesh(v, faces, vm, k, zw, zh, near, max_windows=capacity)
        return fragments.depth, fragments.dropped

    zbuffer, dropped = jax.vmap(depth_of)(vertices, viewmat, k_small)  # [B, zh, zw], +inf empty

    # The nearest surface around the texel: the min over the 2x2 z-buffer pixels whose
    # centres surround it (a single nearest pixel is often empty along a coarse z-buffer's
    # silhouette, which would let back-of-head texels that project there count as seen).
    x = pixels[..., 0] * (zw / width) - 0.5  # [B, N] z-buffer pixel-centre coordinates
    y = pixels[..., 1] * (zh / height) - 0.5
    on_image = (x >= -0.5) & (x < zw - 0.5) & (y >= -0.5) & (y < zh - 0.5)
    x0, y0 = jnp.floor(x).astype(jnp.int32), jnp.floor(y).astype(jnp.int32)
    flat = zbuffer.reshape(zbuffer.shape[0], zh * zw)
    seen = jnp.full(depth.shape, jnp.inf, jnp.float32)
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        xi, yi = x0 + dx, y0 + dy
        inside = (xi >= 0) & (xi < zw) & (yi >= 0) & (yi < zh)
        index = jnp.clip(yi, 0, zh - 1) * zw + jnp.clip(xi, 0, zw - 1)
        seen = jnp.minimum(
            seen, jnp.where(inside, jnp.take_along_axis(flat, index, axis=1), jnp.inf)
        )
    focal = k_small[:, 0, 0][:, None]  # [B, 1] z-buffer focal length in pixels
    tolerance = depth * depth_tolerance + footprint_pixels * depth / focal
    # No surface at all around the texel (a sliver between pixel centres): not trusted.
    visible = on_image & (depth > near) & jnp.isfinite(seen) & (depth <= seen + tolerance)
    visibility = jax.lax.stop_gradient(visible.astype(jnp.float32))

    # Facing: cos(normal, direction to the camera), in camera space (camera at the origin).
    normals = face_normals(vertices, template.faces)[:, template.layout.face]  # [B, N, 3]
    n_cam = jnp.sum(rotation * normals[..., None, :], axis=-1)  # [B, N, 3]
    cosine = -jnp.sum(n_cam * p_cam, axis=-1) / jnp.maximum(
        jnp.linalg.norm(n_cam, axis=-1) * jnp.linalg.norm(p_cam, axis=-1), 1e-12
    )
    facing = jax.lax.stop_gradient(jnp.clip(cosine, 0.0, 1.0)) * visibility
    return TexelLift(
        pixels=pixels, depth=depth, visibility=visibility, facing=facing, dropped=dropped
    )


# --------------------------------------------------------------------------- the network


def _delta_init(base_init=None):
    """Kernel init of the last conv ``[kh, kw, Cin, 14]``: zero on the offset channels,
    ``DELTA_INIT_SCALE`` x ``base_init`` on the others."""
    base_init = nnx.initializers.lecun_normal() if base_init is None else base_init
    channel_scale = np.full((MAP_CHANNELS,), DELTA_INIT_SCALE, np.float32)
    channel_scale[MAP_SLICES["offset"]] = 0.0

    def init(key, shape, dtype=jnp.float32):
        scale = jnp.asarray(channel_scale, dtype).reshape((1,) * (len(shape) - 1) + (-1,))
        return base_init(key, shape, dtype) * scale

    return init


class ImageEncoder(nnx.Module):
    """Step 1: ``[B, Hc, Wc, 3]`` in 0..1 -> (features ``[B, Hc/2, Wc/2, Fl]``, global code
    ``[B, G]``), ``Fl = widths[1]``, ``G = global_dim``; ``Hc``, ``Wc`` multiples of 16."""

    def __init__(self, widths: tuple[int, ...], global_dim: int, rngs: nnx.Rngs, *, dtype):
        self.dtype = dtype
        lift = widths[1]
        self.stem = nnx.Conv(3, widths[0], (3, 3), dtype=dtype, rngs=rngs)
        ins = (widths[0], *widths[:-1])
        pairs = zip(ins, widths, strict=True)
        self.downs = nnx.List([Downsample(i, o, rngs, dtype=dtype) for i, o in pairs])
        self.blocks = nnx.List([ResBlock(w, w, rngs, dtype=dtype) for w in widths])
        self.laterals = nnx.List(
            [nnx.Conv(w, lift, (1, 1), dtype=dtype, rngs=rngs) for w in widths]
        )
        self.head = ConvBlock(lift, lift, rngs, dtype=dtype)
        self.global_norm = nnx.GroupNorm(
            widths[-1], num_groups=group_count(widths[-1]), rngs=rngs
        )  # float32, as in ConvBlock
        self.global_proj = nnx.Linear(widths[-1], global_dim, dtype=dtype, rngs=rngs)

    def __call__(self, image: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = self.stem((image * 2.0 - 1.0).astype(self.dtype))  # [B, Hc, Wc, w0]
        stages = []
        for down, block in zip(self.downs, self.blocks, strict=True):
            x = block(down(x))  # [B, Hc/2^(i+1), Wc/2^(i+1), w_i]
            stages.append(x)
        # Feature pyramid: top-down, nearest upsampling, summed laterals.
        p = self.laterals[-1](stages[-1])
        for stage, lateral in zip(stages[-2::-1], list(self.laterals)[-2::-1], strict=True):
            p = lateral(stage) + upsample_nearest(p)
        features = self.head(p)  # [B, Hc/2, Wc/2, Fl]
        last = self.global_norm(stages[-1].astype(jnp.float32))
        pooled = jnp.mean(jax.nn.silu(last), axis=(1, 2))  # [B, w3] float32
        return features, self.global_proj(pooled)


class UVUNet(nnx.Module):
    """Step 4: ``[B, Hu, Wu, Cin] -> [B, Hu, Wu, 14]`` (``Hu``, ``Wu`` multiples of
    ``2**len(widths)``); the last conv is :func:`_delta_init`."""

    def __init__(self, in_features: int, widths: tuple[int, ...], rngs: nnx.Rngs, *, dtype):
        self.stem = nnx.Conv(in_features, widths[0], (3, 3), dtype=dtype, rngs=rngs)
        bottom = widths[-1]
        downs_out = (*widths[1:], bottom)
        self.enc = nnx.List([ResBlock(w, w, rngs, dtype=dtype) for w in widths])
        self.downs = nnx.List(
            [Downsample(i, o, rngs, dtype=dtype) for i, o in zip(widths, downs_out, strict=True)]
        )
        self.middle = ResBlock(bottom, bottom, rngs, dtype=dtype)
        pairs = zip(widths, downs_out, strict=True)
        self.ups = nnx.List([Upsample(o, i, rngs, dtype=dtype) for i, o in pairs])
        self.dec = nnx.List([ResBlock(2 * w, w, rngs, dtype=dtype) for w in widths])
        self.out = ConvBlock(widths[0], MAP_CHANNELS, rngs, dtype=dtype, kernel_init=_delta_init())

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.stem(x)  # [B, Hu, Wu, u0]
        skips = []
        for block, down in zip(self.enc, self.downs, strict=True):
            x = block(x)  # [B, Hu/2^i, Wu/2^i, u_i]
            skips.append(x)
            x = down(x)
        x = self.middle(x)  # [B, Hu/2^L, Wu/2^L, u_{L-1}]
        for i in reversed(range(len(skips))):
            x = self.dec[i](jnp.concatenate([self.ups[i](x), skips[i]], axis=-1))
        return self.out(x)  # [B, Hu, Wu, 14]


class IdentityGenerator(nnx.Module):
    """Reference image -> raw Gaussian UV map (module docstring: the four steps).

    Args:
      template: the head template (FLAME model, texel layout, base map, faces); static.
      config: the E2V config (``uv_size`` must equal the template's UV size;
        ``encoder_widths``, ``uv_widths``, ``global_dim``, ``uv_embed_dim``,
        ``compute_dtype``).
      rngs: parameter initialisation keys.
      zbuffer_scale, depth_tolerance, footprint_pixels: visibility knobs of
        :func:`lift_texels` (not in :class:`E2VConfig`).

    Raises:
      InputError: the template's UV size differs from ``config.uv_size``.
    """

    def __init__(
        self,
        template: HeadTemplate,
        config: E2VConfig,
        rngs: nnx.Rngs,
        *,
        zbuffer_scale: float = 0.5,
        depth_tolerance: float = 0.01,
        footprint_pixels: float = 1.5,
    ):
        if tuple(template.layout.size) != (config.uv_size, config.uv_size):
            raise InputError(
                f"IdentityGenerator: the head template's UV size {template.layout.size} "
                f"differs from e2v.uv_size {config.uv_size}; build the template with "
                f"make_head_template(model, {config.uv_size})"
            )
        self.template = template  # static: compared and hashed by identity
        self.crop_size = int(config.data.crop_size)
        self.dtype = compute_dtype(config.compute_dtype)
        self.lift_options = (float(zbuffer_scale), float(depth_tolerance), float(footprint_pixels))
        lift = config.encoder_widths[1]
        self.encoder = ImageEncoder(
            tuple(config.encoder_widths), config.global_dim, rngs, dtype=self.dtype
        )
        hu, wu = template.layout.size
        self.uv_embed = nnx.Param(
            0.1 * jax.random.normal(rngs.params(), (hu, wu, config.uv_embed_dim), jnp.float32)
        )
        in_features = lift + LIFT_EXTRA + config.uv_embed_dim + config.global_dim
        self.unet = UVUNet(in_features, tuple(config.uv_widths), rngs, dtype=self.dtype)

    def __call__(
        self,
        source_image: jax.Array,  # [B, Hc, Wc, 3] in 0..1
        source_params: FlameParams,  # [B]
        source_viewmat: jax.Array,  # [B, 4, 4]
        source_K: jax.Array,  # [B, 3, 3] for the Hc x Wc image
    ) -> jax.Array:
        """Returns the raw map ``[B, Hu, Wu, 14]`` float32 (``base_map + delta``, zero on
        uncovered texels)."""
        return self.predict(source_image, source_params, source_viewmat, source_K)[0]

    def predict(
        self,
        source_image: jax.Array,
        source_params: FlameParams,
        source_viewmat: jax.Array,
        source_K: jax.Array,
    ) -> tuple[jax.Array, jax.Array]:
        """:meth:`__call__` and the lift's ``dropped [B]`` (:class:`TexelLift`): ``(map,
        dropped)``, for a trainer that logs whether the visibility z-buffer was complete."""
        template = self.template
        shape = tuple(source_image.shape)
        crop = self.crop_size
        if len(shape) != 4 or shape[1:] != (crop, crop, 3):
            raise InputError(
                f"IdentityGenerator: the reference image has shape {shape}; this generator "
                f"reads [B, {crop}, {crop}, 3] (e2v.data.crop_size={crop}): resize the "
                f"reference (and scale its K) to {crop}x{crop}"
            )
        batch, height, width = shape[:3]
        # 1. Encode.
        features, code = self.encoder(source_image)  # [B, Hc/2, Wc/2, Fl], [B, G]

        # 2. Lift: texel samples of the features and of the image, times visibility.
        vertices = pose_mesh(template.model, source_params)  # [B, V, 3]
        zbuffer_scale, depth_tolerance, footprint_pixels = self.lift_options
        lift = lift_texels(
            template,
            vertices,
            source_viewmat,
            source_K,
            (height, width),
            zbuffer_scale=zbuffer_scale,
            depth_tolerance=depth_tolerance,
            footprint_pixels=footprint_pixels,
        )
        sampled = sample_bilinear(features, lift.pixels, (height, width))  # [B, N, Fl]
        rgb = sample_bilinear(source_image, lift.pixels, (height, width))  # [B, N, 3]
        vis = lift.visibility[..., None]  # [B, N, 1]
        texels = jnp.concatenate(
            [
                sampled * vis.astype(self.dtype),
                (rgb * vis).astype(self.dtype),
                vis.astype(self.dtype),
                lift.facing[..., None].astype(self.dtype),
            ],
            axis=-1,
        )  # [B, N, Fl + 5]

        # 3. Scatter to the UV grid; concat the UV embedding and the global code.
        hu, wu = template.layout.size
        grid = template.layout.scatter(texels)  # [B, Hu, Wu, Fl + 5]
        embed = self.uv_embed[...].astype(self.dtype)  # [Hu, Wu, E]
        embed = jnp.broadcast_to(embed, (batch, *embed.shape))
        code = jnp.broadcast_to(code[:, None, None, :], (batch, hu, wu, code.shape[-1]))
        x = jnp.concatenate([grid, embed, code], axis=-1)  # [B, Hu, Wu, Cin]

        # 4. Decode: base map + delta, on the covered texels only.
        delta = self.unet(x).astype(jnp.float32)  # [B, Hu, Wu, 14]
        mask = jnp.asarray(template.layout.mask[..., None], jnp.float32)  # [Hu, Wu, 1]
        base = jnp.asarray(template.base_map, jnp.float32)
        return (base[None] + delta) * mask[None], lift.dropped
