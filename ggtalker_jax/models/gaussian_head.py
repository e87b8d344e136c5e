"""One identity's Gaussian head: its UV Gaussian map (a free tensor after adaptation) and its
color MLP, drawn under any FLAME parameters and camera.

Per frame: FLAME skinning -> the map's texels rigged to the posed triangles
(:func:`ggtalker_jax.render.head.map_to_gaussians`) -> the color MLP's Δcolour on the map
colour (clipped to 0..1) -> tile splatting (:func:`ggtalker_jax.render.head.render_gaussians`)
over black. Everything the head learns per person is an
:class:`~ggtalker_jax.models.variables.IdentityParam` (the map, the MLP's per-texel features)
or a plain parameter of its own MLP; nothing is shared with the priors.

:func:`upsample_map` turns the generator's map into a finer one: the generator predicts the
template's base map plus a delta, and a finer template has its own base map (smaller
Gaussians, spaced for its texel density), so the *delta* is resampled, not the raw values.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ggtalker_jax.config.e2v import E2VConfig
from ggtalker_jax.errors import InputError
from ggtalker_jax.models.color_mlp import ColorMLP
from ggtalker_jax.models.variables import IdentityParam
from ggtalker_jax.render.head import (
    HeadRender,
    HeadTemplate,
    check_uv_map,
    map_to_gaussians,
    pose_mesh,
    render_gaussians,
)
from ggtalker_jax.types import Camera, FlameParams, Gaussians

__all__ = ["GaussianHead", "camera_centers", "upsample_map"]


def camera_centers(viewmat: jax.Array) -> jax.Array:
    """World camera centres ``[..., 3]`` of world->camera matrices ``[..., 4, 4]``:
    ``c = -Rᵀ t``."""
    rotation, t = viewmat[..., :3, :3], viewmat[..., :3, 3]
    return -jnp.sum(rotation * t[..., :, None], axis=-2)


def _resize_masked(values: np.ndarray, mask: np.ndarray, size: int) -> np.ndarray:
    """Resize ``values [Hu, Wu, D]`` known only where ``mask [Hu, Wu]`` to ``size²``, by
    normalised bilinear interpolation (covered texels only, so UV-island borders do not blend
    in the zeros of uncovered texels); texels with no covered neighbour get 0."""
    d = values.shape[-1]
    weights = jnp.asarray(mask, jnp.float32)[..., None]
    num = jax.image.resize(jnp.asarray(values) * weights, (size, size, d), "linear")
    den = jax.image.resize(weights, (size, size, 1), "linear")
    return np.asarray(jnp.where(den > 1e-6, num / jnp.maximum(den, 1e-6), 0.0), np.float32)


def upsample_map(uv_map, source: HeadTemplate, target: HeadTemplate) -> np.ndarray:
    """The raw map ``uv_map`` of ``source`` moved to ``target``'s (finer or coarser) grid.

    ``target.base_map + resize(uv_map - source.base_map)`` on the covered texels of
    ``target``: the prediction's delta (colour, opacity, offsets, the log-scale relative to
    the texel size) carries over while each Gaussian keeps the size its own grid spacing
    calls for.

    Args:
      uv_map: ``[Hu, Wu, 14]`` raw map on ``source``'s grid.
      source, target: head templates of the same FLAME model.

    Returns:
      ``[Hu', Wu', 14]`` float32 raw map on ``target``'s grid (zero on uncovered texels).

    Raises:
      InputError: templates of different models, or a map that does not fit ``source``.
    """
    if source.model is not target.model:
        raise InputError("upsample_map: the two head templates belong to different FLAME models")
    check_uv_map(source, uv_map, "upsample_map: uv_map")
    delta = (np.asarray(uv_map, np.float32) - source.base_map) * source.layout.mask[..., None]
    hu, wu = target.uv_size
    if hu != wu:
        raise InputError(f"upsample_map: target UV grid {hu}x{wu} is not square")
    if target.uv_size == source.uv_size:
        moved = delta
    else:
        moved = _resize_masked(delta, source.layout.mask, hu)
    return ((target.base_map + moved) * target.layout.mask[..., None]).astype(np.float32)


class GaussianHead(nnx.Module):
    """A UV Gaussian map plus a color MLP: one person's head (module docstring).

    Args:
      template: the head template (FLAME model, UV layout at the map's size); static.
      uv_map: ``[Hu, Wu, 14]`` initial raw map (e.g. the generator's, through
        :func:`upsample_map`).
      config: the E2V section (the decoding bounds ``offset_radius``/``max_log_scale``, the
        color MLP's sizes, the splatting backend).
      rngs: the color MLP's initialisation keys.
    """

    def __init__(self, template: HeadTemplate, uv_map, config: E2VConfig, rngs: nnx.Rngs):
        check_uv_map(template, uv_map, "GaussianHead: uv_map")
        self.template = template  # static: hashed by identity
        self.offset_radius = float(config.offset_radius)
        self.max_log_scale = float(config.max_log_scale)
        self.backend = config.backend
        self.uv_map = IdentityParam(jnp.asarray(uv_map, jnp.float32))
        self.color_mlp = ColorMLP(template.n, template.model.n_exp, config, rngs)

    def gaussians(self, params: FlameParams, viewmat: jax.Array):
        """The head's world Gaussians for ``T`` frames.

        Args:
          params: :class:`FlameParams` ``[T]``.
          viewmat: ``[T, 4, 4]`` the cameras (the color MLP reads the view direction).

        Returns:
          ``(Gaussians [T, N], LocalGaussians [N])`` (the local ones carry what the map
          regularisers read).
        """
        template = self.template
        vertices = pose_mesh(template.model, params)  # [T, V, 3]
        gaussians, local = map_to_gaussians(
            template, self.uv_map[...], vertices, self.offset_radius, self.max_log_scale
        )
        t, n = vertices.shape[0], template.n
        colors = jnp.broadcast_to(gaussians.colors, (t, n, 3))
        delta = self.color_mlp(colors, gaussians.means, params, camera_centers(viewmat))
        gaussians = Gaussians(
            means=gaussians.means,
            quats=gaussians.quats,
            scales=gaussians.scales,
            opacities=gaussians.opacities,
            colors=jnp.clip(colors + delta, 0.0, 1.0),
        )
        return gaussians, local

    def __call__(
        self,
        params: FlameParams,  # [T]
        camera: Camera,  # [T]
        capacity: int | None = None,
    ) -> tuple[HeadRender, object, dict]:
        """Render ``T`` frames over black.

        Returns:
          ``(HeadRender [T, H, W], LocalGaussians [N], splatting meta)``.

        Raises:
          InputError: (trace time) parameters or cameras whose leading shapes are not one
            ``[T]``.
        """
        t = params.expression.shape[0] if params.expression.ndim == 2 else None
        if t is None or camera.viewmat.shape[:-2] != (t,):
            raise InputError(
                f"GaussianHead: FLAME expression {tuple(params.expression.shape)} and camera "
                f"viewmat {tuple(camera.viewmat.shape)}; expected [T, E] and [T, 4, 4]"
            )
        gaussians, local = self.gaussians(params, camera.viewmat)
        render, meta = render_gaussians(gaussians, camera, None, self.backend, capacity)
        return render, local, meta
