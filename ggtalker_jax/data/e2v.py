"""Training data of the Expression-Visual (E2V) prior: (reference image, target frame) pairs.

A batch element is one identity seen twice: a *source* (reference) image the Identity-Gaussian
Generator reads, at ``crop_size``, and a *target* frame at ``image_size`` with its FLAME
parameters, camera and head mask, which the Gaussian head must reproduce. Both show the head
mesh alone (no torso) on one solid background colour.

Two sources implement the trainer's ``DataSource`` protocol (``batch(position)``, deterministic
in ``position``, and ``batch_size``):

* :class:`ProceduralE2V`: identities of the synthetic world's library (:mod:`.e2v_pool`) under
  random expressions, jaw, head pose and cameras, rendered on the accelerator by the textured
  mesh renderer inside one jitted function: no disk, any number of frames.
* :class:`~ggtalker_jax.data.e2v_clips.ClipE2V`: frame pairs of clips in the clip format.

Random draws of :meth:`ProceduralE2V.batch` (per element, independently; ``r`` is
``max_head_rotation``):

==================  ===============================================================
identity            uniform over the source's identities
expression          ``N(0, expression_scale²)`` per component
jaw_pose            ``[U(0, max_jaw), 0, 0]`` (+x opens the mouth)
global_pose         ``U(-r/2, r/2)`` per axis; ``neck_pose`` the same, so the head turns
                    by at most ``r`` per axis
eye_pose            one gaze for both eyes: pitch ``U(±0.1)``, yaw ``U(±0.15)`` rad
translation         zero
source camera       :func:`portrait_camera` framing (:data:`HEAD_FIELD` metres across at
                    :data:`HEAD_DISTANCE`) of the identity's camera target raised by
                    :data:`HEAD_AIM`, yaw
                    ``U(±source_max_yaw)``, pitch :data:`SOURCE_PITCH`
target camera       yaw ``U(±max_yaw)``, pitch ``U(±max_pitch)``, distance
                    :data:`HEAD_DISTANCE` ``· U(1 ± DISTANCE_JITTER)`` with the focal length
                    kept (the head's size in the image changes by the same factor)
background          ``U(0, 1)`` per channel
==================  ===============================================================

Source and target draw their FLAME pose and expression independently (one shape: the
identity's).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ggtalker_jax.config.e2v import E2VDataConfig
from ggtalker_jax.data.e2v_pool import IdentityPool, build_identity_pool
from ggtalker_jax.errors import InputError
from ggtalker_jax.flame.lbs import flame_forward
from ggtalker_jax.flame.model import FlameModel
from ggtalker_jax.geometry.camera import portrait_camera
from ggtalker_jax.render.mesh import render_textured_meshes_bounded, window_capacity
from ggtalker_jax.types import FlameParams, Mesh

HEAD_DISTANCE = 0.9
"""Camera distance from the identity's camera target, metres (the world's portrait camera)."""

HEAD_FIELD = 0.37
"""Metres across the image at the target's depth: the head and neck (about 0.3 m tall) fill
most of the frame (about 29% of the pixels) and stay inside it whatever the draws (no head
pixel on the image border in 192 draws at the default ranges, 2026 measurement); the world's
portraits use 0.42 to fit the shoulders."""

HEAD_AIM = 0.015
"""How far above the identity's camera target (set for head-and-shoulders portraits) the head
cameras aim, metres: the head's centre, so the crown stays in the frame."""

SOURCE_PITCH = (-0.05, 0.1)
"""Range of the source camera's pitch, radians (the world's main camera)."""

DISTANCE_JITTER = 0.08
"""Relative range of the target camera's distance."""

EYE_RANGE = (0.1, 0.15)
"""Largest gaze pitch and yaw, radians."""

GPU_GRAPHS = {
    "xla_gpu_enable_command_buffer": "FUSION,CUBLAS,CUBLASLT,CUSTOM_CALL,CUDNN,WHILE,CONDITIONAL"
}
"""Compiler options of :meth:`ProceduralE2V.batch` on a GPU: loops run inside the program's
CUDA graphs too (XLA leaves them out by default), so fewer kernels are launched one by one
from the host. On an H200 (``gpu`` config, 32 pairs at 256², profiler trace, 2026-12-03)
a batch's kernels took 1.1 ms instead of 1.5 ms, its span 2.7 ms instead of 3.3 ms. Only
this program compiles with them; every other keeps XLA's defaults. Not applied where
``XLA_FLAGS`` sets ``--xla_gpu_enable_command_buffer`` itself."""


@dataclasses.dataclass(frozen=True)
class E2VBatch:
    """One E2V batch (a pytree: every field is a child).

    Attributes:
      source_image: ``[B, Hc, Wc, 3]`` float32 0..1, ``Hc = Wc = crop_size``.
      source_params: :class:`FlameParams` ``[B]`` (``shape [B, S]``).
      source_viewmat: ``[B, 4, 4]`` world->camera of the source.
      source_K: ``[B, 3, 3]`` intrinsics of the ``crop_size`` source image.
      target_image: ``[B, H, W, 3]`` float32 0..1, ``H = W = image_size``: the head alone on
        the background colour.
      target_params: :class:`FlameParams` ``[B]``.
      target_viewmat: ``[B, 4, 4]``.  target_K: ``[B, 3, 3]``.
      target_mask: ``[B, H, W]`` float32, 1 on the head.
      background: ``[B, 3]`` float32 solid background colour of both images.
      identity: ``[B]`` int32 identity number.
      dropped: ``[B]`` int32 rasterizer work windows a procedural render left untested
        (source and target together; 0 when the render was complete, always 0 from clips).
    """

    source_image: jax.Array
    source_params: FlameParams
    source_viewmat: jax.Array
    source_K: jax.Array
    target_image: jax.Array
    target_params: FlameParams
    target_viewmat: jax.Array
    target_K: jax.Array
    target_mask: jax.Array
    background: jax.Array
    identity: jax.Array
    dropped: jax.Array

    @property
    def batch_size(self) -> int:
        return int(self.identity.shape[0])


jax.tree_util.register_dataclass(
    E2VBatch, data_fields=[f.name for f in dataclasses.fields(E2VBatch)], meta_fields=[]
)


# --------------------------------------------------------------------------- random draws


def _uniform(key, shape, low, high):
    return jax.random.uniform(key, shape, jnp.float32, low, high)


def _draw_params(key, config: E2VDataConfig, shape: jax.Array, n_exp: int) -> FlameParams:
    """Random FLAME parameters ``[B]`` for shapes ``[B, S]`` (module docstring's table)."""
    b = shape.shape[0]
    k_exp, k_jaw, k_rot, k_eye = jax.random.split(key, 4)
    zeros = jnp.zeros((b, 1), jnp.float32)
    jaw = _uniform(k_jaw, (b, 1), 0.0, config.max_jaw)
    half = 0.5 * config.max_head_rotation
    rotation = _uniform(k_rot, (2, b, 3), -half, half)  # global, neck
    gaze = _uniform(k_eye, (b, 2), -1.0, 1.0) * jnp.asarray([EYE_RANGE], jnp.float32)
    return FlameParams(
        shape=shape,
        expression=config.expression_scale * jax.random.normal(k_exp, (b, n_exp), jnp.float32),
        global_pose=rotation[0],
        neck_pose=rotation[1],
        jaw_pose=jnp.concatenate([jaw, zeros, zeros], axis=-1),
        eye_pose=jnp.concatenate([gaze, zeros, gaze, zeros], axis=-1),
        translation=jnp.zeros((b, 3), jnp.float32),
    )


def _cameras(target, yaw, pitch, distance, size: int):
    """Head cameras ``(viewmat [B, 4, 4], K [B, 3, 3])`` at ``size`` pixels: ``target [B, 3]``,
    ``yaw, pitch, distance [B]``; the focal length is the one of :data:`HEAD_DISTANCE`, so a
    nearer camera sees a larger head."""

    def one(t, y, p, d):
        return portrait_camera(
            t, size, yaw=y, pitch=p, distance=d, field=HEAD_FIELD * d / HEAD_DISTANCE
        )

    return jax.vmap(one)(target, yaw, pitch, distance)


# --------------------------------------------------------------------------- rendering


def _render_heads(
    model: FlameModel, textures, vertices, viewmat, K, background, size: int, frame_map: str
):
    """Head meshes on solid backgrounds: ``textures [B, Ht, Wt, 3]`` uint8, ``vertices
    [B, V, 3]``, ``viewmat [B, 4, 4]``, ``K [B, 3, 3]``, ``background [B, 3]`` ->
    ``(rgb [B, H, W, 3], mask [B, H, W] float32, dropped [B] int32)``.

    The rasterizer runs a fixed amount of work (:func:`window_capacity`, about 1.6x what the
    largest of these heads needs), so no loop of this program waits on the host;
    ``dropped`` counts windows beyond it (0 at the config ranges; the E2V loss logs it).

    ``frame_map``: ``"vmap"`` (one batched launch) or ``"map"`` (``lax.map``, frame after
    frame); ``"auto"`` picks ``map`` on CPU and ``vmap`` elsewhere. Measured (a whole
    :meth:`ProceduralE2V.batch`, after compiling): on an H200, 32 pairs at 256² take 4 ms
    with ``vmap`` and 62 ms with ``map`` (16 pairs at 512²: 6 ms with ``vmap``); on a 2-core
    CPU, 8 pairs at 64² take 116 ms with ``map`` and 353 ms with ``vmap`` (batched z-buffer
    scatters, see :mod:`ggtalker_jax.render.mesh.raster`).
    """

    capacity = window_capacity(model.faces.shape[0], size, size)

    def one(texture, verts, view, k, color):
        mesh = Mesh(verts, model.faces, model.vt, model.ft, texture)
        backdrop = jnp.broadcast_to(color, (size, size, 3))
        rgb, masks, dropped = render_textured_meshes_bounded(
            [mesh], view, k, size, size, backdrop, max_windows=capacity
        )
        return rgb, masks[0].astype(jnp.float32), dropped

    args = (textures, vertices, viewmat, K, background)
    if frame_map == "auto":
        frame_map = "map" if jax.default_backend() == "cpu" else "vmap"
    if frame_map == "map":
        return jax.lax.map(lambda a: one(*a), args)
    return jax.vmap(one)(*args)


def _render_pairs(
    model,
    pool,
    local,
    source_params,
    target_params,
    source_camera,
    target_camera,
    background,
    config: E2VDataConfig,
    frame_map: str,
) -> E2VBatch:
    """Pose and render source and target of each element.

    ``local [B]`` indexes the pool; ``*_camera`` are ``(yaw, pitch, distance)`` triples of
    ``[B]`` arrays. Sources and targets of one size render in one call (one rasterizer in
    the compiled program, not two).
    """
    _, textures, targets, index = pool
    textures = textures[local]
    targets = targets[local] + jnp.asarray([[0.0, HEAD_AIM, 0.0]], jnp.float32)
    b = local.shape[0]
    posed = flame_forward(model, _concat(source_params, target_params)).vertices  # [2B, V, 3]
    src_view, src_K = _cameras(targets, *source_camera, config.crop_size)
    tgt_view, tgt_K = _cameras(targets, *target_camera, config.image_size)
    if config.crop_size == config.image_size:
        rgb, mask, dropped = _render_heads(
            model,
            _concat(textures, textures),
            posed,
            _concat(src_view, tgt_view),
            _concat(src_K, tgt_K),
            _concat(background, background),
            config.image_size,
            frame_map,
        )
        src_rgb, tgt_rgb, tgt_mask = rgb[:b], rgb[b:], mask[b:]
        dropped = dropped[:b] + dropped[b:]
    else:
        src_rgb, _, src_dropped = _render_heads(
            model, textures, posed[:b], src_view, src_K, background, config.crop_size, frame_map
        )
        tgt_rgb, tgt_mask, tgt_dropped = _render_heads(
            model, textures, posed[b:], tgt_view, tgt_K, background, config.image_size, frame_map
        )
        dropped = src_dropped + tgt_dropped
    return E2VBatch(
        source_image=src_rgb,
        source_params=source_params,
        source_viewmat=src_view,
        source_K=src_K,
        target_image=tgt_rgb,
        target_params=target_params,
        target_viewmat=tgt_view,
        target_K=tgt_K,
        target_mask=tgt_mask,
        background=background,
        identity=index[local],
        dropped=dropped,
    )


def _concat(a, b):
    """Two pytrees of ``[B, ...]`` arrays -> one of ``[2B, ...]``."""
    return jax.tree.map(lambda x, y: jnp.concatenate([x, y], axis=0), a, b)


def _position_key(seed: int, position) -> jax.Array:
    return jax.random.fold_in(jax.random.key(seed), position)


def _batch(
    model, pool, position, *, config: E2VDataConfig, batch_size: int, frame_map: str
) -> E2VBatch:
    """:meth:`ProceduralE2V.batch`: draws (module docstring) -> FLAME -> renders."""
    b = batch_size
    keys = jax.random.split(_position_key(config.seed, position), 6)
    local = jax.random.randint(keys[0], (b,), 0, pool[0].shape[0])
    shape = pool[0][local]
    source = _draw_params(keys[1], config, shape, model.n_exp)
    target = _draw_params(keys[2], config, shape, model.n_exp)
    k_sy, k_sp, k_ty, k_tp, k_td = jax.random.split(keys[3], 5)
    source_camera = (
        _uniform(k_sy, (b,), -config.source_max_yaw, config.source_max_yaw),
        _uniform(k_sp, (b,), *SOURCE_PITCH),
        jnp.full((b,), HEAD_DISTANCE, jnp.float32),
    )
    target_camera = (
        _uniform(k_ty, (b,), -config.max_yaw, config.max_yaw),
        _uniform(k_tp, (b,), -config.max_pitch, config.max_pitch),
        HEAD_DISTANCE * _uniform(k_td, (b,), 1.0 - DISTANCE_JITTER, 1.0 + DISTANCE_JITTER),
    )
    background = _uniform(keys[4], (b, 3), 0.0, 1.0)
    return _render_pairs(
        model,
        pool,
        local,
        source,
        target,
        source_camera,
        target_camera,
        background,
        config,
        frame_map,
    )


_BATCH_STATIC = ("config", "batch_size", "frame_map")
_batch_jit = jax.jit(_batch, static_argnames=_BATCH_STATIC)
# A user's own XLA_FLAGS setting of the command buffers wins (e.g. graphs off to profile).
_own_graphs = "xla_gpu_enable_command_buffer" in os.environ.get("XLA_FLAGS", "")
_batch_jit_gpu = jax.jit(
    _batch, static_argnames=_BATCH_STATIC, compiler_options=None if _own_graphs else GPU_GRAPHS
)


@functools.partial(jax.jit, static_argnames=("config", "frame_map"))
def _views_jit(
    model, pool, local, yaws, position, same_pose, *, config: E2VDataConfig, frame_map: str
):
    """:meth:`ProceduralE2V.views`: one source per identity, its targets at each yaw."""
    n, y = local.shape[0], yaws.shape[0]
    keys = jax.random.split(jax.random.fold_in(_position_key(config.seed, position), 1), 5)
    shape = pool[0][local]
    source = _draw_params(keys[0], config, shape, model.n_exp)
    fresh = _draw_params(keys[1], config, shape, model.n_exp)
    target = jax.tree.map(lambda a, b: jnp.where(same_pose, a, b), source, fresh)
    k_sy, k_sp = jax.random.split(keys[2])
    yaw = _uniform(k_sy, (n,), -config.source_max_yaw, config.source_max_yaw)
    pitch = _uniform(k_sp, (n,), *SOURCE_PITCH)
    distance = jnp.full((n,), HEAD_DISTANCE, jnp.float32)
    background = _uniform(keys[3], (n, 3), 0.0, 1.0)
    # Identity-major: element i * Y + j is identity i at yaw offset j.
    rep = lambda x: jnp.repeat(x, y, axis=0)
    target_yaw = rep(yaw) + jnp.tile(yaws, n)
    return _render_pairs(
        model,
        pool,
        rep(local),
        jax.tree.map(rep, source),
        jax.tree.map(rep, target),
        (rep(yaw), rep(pitch), rep(distance)),
        (target_yaw, rep(pitch), rep(distance)),
        rep(background),
        config,
        frame_map,
    )


# --------------------------------------------------------------------------- sources


class ProceduralE2V:
    """E2V batches drawn from synthetic identities and rendered on the accelerator.

    The identity pool (:func:`~ggtalker_jax.data.e2v_pool.build_identity_pool`) is made once
    on the host and uploaded once; every :meth:`batch` is one call of one compiled function.

    Args:
      model: the FLAME model (with UVs and masks).
      config: the data config.
      batch_size: elements per batch.
      identities: identity numbers of this source (default: the training split,
        ``range(config.identities)``); :func:`make_e2v_source` passes the held-out split.
      workers: processes for building the pool (``None``: automatic, see
        :func:`~ggtalker_jax.data.e2v_pool.build_identity_pool`).
      frame_map: how the renderer runs over a batch: ``"vmap"``, ``"map"`` (``lax.map``) or
        ``"auto"`` (``map`` on CPU, ``vmap`` on an accelerator).
    """

    def __init__(
        self,
        model: FlameModel,
        config: E2VDataConfig,
        batch_size: int,
        identities: Sequence[int] | None = None,
        workers: int | None = None,
        frame_map: str = "auto",
    ):
        if frame_map not in ("auto", "vmap", "map"):
            raise InputError(f"ProceduralE2V: frame_map {frame_map!r}; use auto, vmap or map")
        if identities is None:
            identities = range(config.identities)
        identities = [int(i) for i in identities]
        if not identities:
            raise InputError("ProceduralE2V: no identities given; pass at least one index")
        if batch_size < 1:
            raise InputError(f"ProceduralE2V: batch_size is {batch_size}; pass 1 or more")
        self.model = model
        self.config = config
        self.batch_size = int(batch_size)
        self.frame_map = frame_map
        self.pool: IdentityPool = build_identity_pool(model, config, identities, workers)
        self._arrays = jax.device_put(
            (self.pool.shape, self.pool.texture, self.pool.camera_target, self.pool.index)
        )
        self._local = {int(i): k for k, i in enumerate(self.pool.index)}
        # The model's arrays on the device once: numpy leaves passed to a jitted call are
        # copied to the device on every call (5 MB a batch for the shipped head; on an H200
        # that host time was 14% of an E2V training step).
        self._model = jax.device_put(model)
        self._batch_jit = _batch_jit_gpu if jax.default_backend() == "gpu" else _batch_jit

    @property
    def identities(self) -> np.ndarray:
        """``[I]`` int32 identity numbers of this source."""
        return self.pool.index

    def batch(self, position: int) -> E2VBatch:
        """Batch number ``position``: the same position gives the same batch, from
        ``fold_in(key(config.seed), position)``: bit for bit on CPU; on a GPU the draws are
        bit for bit and the images to float rounding (on an H200 about 5% of the pixels
        differ between two calls, by at most 2.4e-7)."""
        return self._batch_jit(
            self._model,
            self._arrays,
            jnp.asarray(position, jnp.uint32),
            config=self.config,
            batch_size=self.batch_size,
            frame_map=self.frame_map,
        )

    def views(
        self,
        identities: Sequence[int],
        yaws: Sequence[float],
        position: int = 0,
        same_pose: bool = False,
    ) -> E2VBatch:
        """An evaluation batch of novel views around each identity's source frame.

        For each identity ``i`` (in order) one source frame is drawn as in :meth:`batch`
        (random expression and pose, source camera with a random yaw ``y_i`` within
        ``source_max_yaw``, pitch ``p_i``, distance :data:`HEAD_DISTANCE`, background
        ``c_i``), and one target expression and pose: a fresh draw, or the source's own with
        ``same_pose``. Its targets show that target expression and pose from the cameras at
        yaw ``y_i + yaws[j]``, the same pitch, distance and focal length as the source (at
        ``image_size``), on ``c_i``. So ``yaws[j] = 0`` is the same-camera frame of a new
        expression and jaw (self-reenactment); ``±0.524, ±1.047`` are ±30° and ±60° novel
        views.

        Args:
          identities: identity numbers held by this source.
          yaws: yaw offsets, radians.
          position: picks the draws (deterministic; a different stream from :meth:`batch`).
          same_pose: targets keep the source's expression and pose (pure novel views).

        Returns:
          :class:`E2VBatch` of ``len(identities) * len(yaws)`` elements, identity-major
          (element ``i * len(yaws) + j``).
        """
        missing = [int(i) for i in identities if int(i) not in self._local]
        if missing or not len(identities) or not len(yaws):
            raise InputError(
                f"ProceduralE2V.views: identities {missing or list(identities)} with yaws "
                f"{list(yaws)}; pass at least one yaw and identities from "
                f"{self.pool.index.min()}..{self.pool.index.max()}"
            )
        local = jnp.asarray([self._local[int(i)] for i in identities], jnp.int32)
        return _views_jit(
            self._model,
            self._arrays,
            local,
            jnp.asarray(yaws, jnp.float32),
            jnp.asarray(position, jnp.uint32),
            jnp.asarray(bool(same_pose)),
            config=self.config,
            frame_map=self.frame_map,
        )


def split_identities(config: E2VDataConfig, split: str) -> range:
    """Identity numbers of a procedural split: ``"train"`` is ``0..identities-1``,
    ``"heldout"`` the next ``heldout``."""
    if split == "train":
        return range(config.identities)
    if split == "heldout":
        if config.heldout == 0:
            raise InputError(
                "e2v.data.heldout is 0: there are no held-out identities; set "
                "--set e2v.data.heldout=4 (or more)"
            )
        return range(config.identities, config.identities + config.heldout)
    raise InputError(f"E2V data split {split!r} is unknown; use 'train' or 'heldout'")


def make_e2v_source(model: FlameModel, config: E2VDataConfig, batch_size: int, split="train"):
    """The E2V data source ``config.source`` names.

    Args:
      model: the FLAME model.
      config: the data config; ``source`` is ``"procedural"`` or a folder of clips.
      batch_size: elements per batch.
      split: ``"train"`` or ``"heldout"`` (procedural identities
        ``identities..identities+heldout-1``; a folder of clips has no held-out split).

    Returns:
      :class:`ProceduralE2V` or :class:`~ggtalker_jax.data.e2v_clips.ClipE2V`.
    """
    if config.source == "procedural":
        return ProceduralE2V(model, config, batch_size, split_identities(config, split))
    from ggtalker_jax.data.e2v_clips import ClipE2V

    if split != "train":
        split_identities(config, split)  # an unknown split name says so first
        raise InputError(
            f"e2v.data.source={config.source!r} is a folder of clips, which has no held-out "
            "split; evaluate held-out identities with e2v.data.source=procedural or point "
            "e2v.data.source at a folder of held-out clips"
        )
    return ClipE2V(config.source, model, config, batch_size)
