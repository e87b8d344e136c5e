"""The synthetic talking-head world: identities, speech-driven FLAME motion, exact frames.

A library that yields arrays (:func:`iter_world`, :func:`generate_clip`), so a GPU job can
make its training world in memory; :func:`ggtalker_jax.world.folder.write_world` writes the
clip format for the CLI.
Everything is deterministic from ``WorldConfig.seed``: identity ``i`` and clip ``j`` draw from
their own seeded generators, so a rerun (or an interrupted run resumed) makes the same clips.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np

from ggtalker_jax.config import WorldConfig
from ggtalker_jax.data.clip import (
    Clip,
    View,
)
from ggtalker_jax.flame.lbs import flame_forward
from ggtalker_jax.flame.model import FlameModel
from ggtalker_jax.geometry.camera import portrait_camera
from ggtalker_jax.outputs import (
    require_memory,
)
from ggtalker_jax.render.mesh.shading import render_textured_meshes
from ggtalker_jax.types import FPS, SAMPLE_RATE, FlameParams, Mesh
from ggtalker_jax.world import scene
from ggtalker_jax.world.corpus import sentences_for
from ggtalker_jax.world.texture import UVMaps, make_texture, make_uv_maps


@dataclasses.dataclass(frozen=True)
class Identity:
    """One synthetic person: FLAME shape, UV texture, torso, background, voice and style."""

    name: str
    shape: np.ndarray  # [S]
    texture: np.ndarray  # [Ht, Wt, 3] uint8
    torso: Mesh
    background: np.ndarray  # [H, W, 3] uint8
    language: str
    voice: str
    pitch: int
    rate_wpm: int
    style: object  # ggtalker_jax.world.visemes.SpeakingStyle
    root: np.ndarray  # [3] rest root joint (the torso hangs from it)
    camera_target: np.ndarray  # [3] where the cameras look (rest head, a little below centre)


def _rng(config: WorldConfig, *path: int) -> np.random.Generator:
    return np.random.default_rng([config.seed, *path])


def make_identity(
    model: FlameModel, maps: UVMaps | None, config: WorldConfig, index: int
) -> Identity:
    """Identity ``index`` of the world (deterministic from the world seed).

    Shape, look and voice draw from separate streams, so an audio-only world
    (``maps=None``: no texture, torso or background) has the same people and voices.
    """
    from ggtalker_jax.world.visemes import SpeakingStyle

    shape_rng, look_rng, voice_rng = (_rng(config, index, 0, k) for k in range(3))
    shape = (shape_rng.standard_normal(model.n_shape) * config.shape_scale).astype(np.float32)
    language = config.languages[index % len(config.languages)]
    rest = _forward_frames(
        model, FlameParams.zeros(model.n_shape, model.n_exp).replace(shape=shape)
    )
    rest_vertices, root = np.asarray(rest[0]), np.asarray(rest[1][0])
    if maps is None:
        empty = np.zeros((0, 3), np.float32)
        torso = Mesh(
            empty,
            np.zeros((0, 3), np.int32),
            empty[:, :2],
            np.zeros((0, 3), np.int32),
            np.zeros((1, 1, 3), np.uint8),
        )
        texture = background = np.zeros((1, 1, 3), np.uint8)
    else:
        neck = np.asarray(model.masks.get("boundary", np.argsort(rest_vertices[:, 1])[:32]))
        neck_center = rest_vertices[neck].mean(0)
        neck_radius = float(
            np.linalg.norm((rest_vertices[neck] - neck_center)[:, [0, 2]], axis=-1).mean()
        )
        texture = make_texture(maps, look_rng)
        torso = scene.make_torso(neck_center, neck_radius, look_rng)
        background = scene.make_background(config.resolution, config.resolution, look_rng)
    target = np.array([0.0, np.percentile(rest_vertices[:, 1], 35), 0.0], np.float32)
    return Identity(
        name=f"id{index:03d}",
        shape=shape,
        texture=texture,
        torso=torso,
        background=background,
        language=language,
        voice=language,
        pitch=int(voice_rng.integers(35, 70)),
        rate_wpm=int(voice_rng.integers(140, 185)),
        style=SpeakingStyle.random(voice_rng),
        root=root.astype(np.float32),
        camera_target=target,
    )


def speech_for_clip(identity: Identity, config: WorldConfig, rng: np.random.Generator):
    """Sentences spoken until the clip is full; returns ``(audio [A], phonemes)`` cut or
    padded with silence to exactly ``seconds``."""
    from ggtalker_jax.world.speech import Phoneme, synthesize

    n_samples = int(round(config.n_frames * SAMPLE_RATE / FPS))
    pieces, phonemes, offset = [], [], 0
    sentences = sentences_for(identity.language)
    lead = int(rng.uniform(0.1, 0.4) * SAMPLE_RATE)  # silence before speech starts
    pieces.append(np.zeros(lead, np.float32))
    offset = lead
    while offset < n_samples:
        text = sentences[int(rng.integers(len(sentences)))]
        speech = synthesize(
            text, voice=identity.voice, rate_wpm=identity.rate_wpm, pitch=identity.pitch
        )
        shift = offset / SAMPLE_RATE
        phonemes += [Phoneme(p.symbol, p.start + shift, p.end + shift) for p in speech.phonemes]
        pause = np.zeros(int(rng.uniform(0.15, 0.5) * SAMPLE_RATE), np.float32)
        pieces += [speech.audio.astype(np.float32), pause]
        offset += speech.audio.shape[0] + pause.shape[0]
    audio = np.concatenate(pieces)[:n_samples]
    end = n_samples / SAMPLE_RATE
    phonemes = [p for p in phonemes if p.start < end]
    return audio, phonemes


@functools.partial(jax.jit, static_argnames=("width", "height"))
def _render_chunk(
    head_vertices, head, torso_vertices, torso, viewmat, K, background, width, height
):
    """Frames of one chunk: ``head_vertices [T, V, 3]``, ``torso_vertices [T, Vt, 3]``,
    ``viewmat [T, 4, 4]``, ``K [T, 3, 3]`` -> ``(rgb [T, H, W, 3] uint8, masks [T, 2, H, W])``.

    ``lax.map``, not ``vmap``: on CPU a batched z-buffer scatter is up to 1.5x slower and every
    frame would wait for the busiest one (see :mod:`ggtalker_jax.render.mesh.raster`).
    """

    def one(args):
        verts, body, view, k = args
        rgb, masks = render_textured_meshes(
            [Mesh(verts, *head), Mesh(body, *torso)], view, k, width, height, background
        )
        return jnp.round(rgb * 255.0).astype(jnp.uint8), masks

    return jax.lax.map(one, (head_vertices, torso_vertices, viewmat, K))


def render_frames(
    model: FlameModel,
    identity: Identity,
    head_vertices: np.ndarray,
    torso_vertices: np.ndarray,
    viewmat: np.ndarray,
    K: np.ndarray,
    size: int,
    chunk: int = 25,
):
    """Ground-truth frames of a posed head and torso under per-frame cameras.

    Every call with the same model, texture size, torso and ``size`` shares one compilation:
    the last chunk is padded to ``chunk`` frames.

    Args:
      model: the FLAME model (faces and UVs of the head).
      identity: texture, torso mesh and background.
      head_vertices: ``[T, V, 3]`` posed head (``flame_forward(...).vertices``).
      torso_vertices: ``[T, Vt, 3]`` posed torso (:func:`scene.pose_torso`).
      viewmat: ``[T, 4, 4]``.  K: ``[T, 3, 3]``.
      size: image side.
      chunk: frames per compiled call.

    Returns:
      ``(frames [T, H, W, 3] uint8, head_mask [T, H, W] uint8, torso_mask [T, H, W] uint8)``.
    """
    t = head_vertices.shape[0]
    head = (model.faces, model.vt, model.ft, jnp.asarray(identity.texture, jnp.float32) / 255.0)
    body = identity.torso
    torso = (body.faces, body.vt, body.ft, jnp.asarray(body.texture, jnp.float32) / 255.0)
    bg = jnp.asarray(identity.background, jnp.float32) / 255.0
    frames, heads, bodies = [], [], []
    for s in range(0, t, chunk):
        idx = np.minimum(np.arange(s, s + chunk), t - 1)
        rgb, masks = _render_chunk(
            jnp.asarray(head_vertices[idx], jnp.float32),
            head,
            jnp.asarray(torso_vertices[idx], jnp.float32),
            torso,
            jnp.asarray(viewmat[idx], jnp.float32),
            jnp.asarray(K[idx], jnp.float32),
            bg,
            width=size,
            height=size,
        )
        n = min(chunk, t - s)
        rgb, masks = np.asarray(rgb[:n]), np.asarray(masks[:n])
        frames.append(rgb)
        heads.append(masks[:, 0].astype(np.uint8))
        bodies.append(masks[:, 1].astype(np.uint8))
    return np.concatenate(frames), np.concatenate(heads), np.concatenate(bodies)


def view_cameras(
    identity: Identity, config: WorldConfig, rng: np.random.Generator, n_frames: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The clip's cameras: the main one (near frontal), then ``config.views`` extra ones
    alternating left and right of it at growing angles (0.5, 0.5, 0.75, 0.75, ... rad).

    Returns:
      ``[(viewmat [T, 4, 4], K [T, 3, 3])]``, main camera first (static cameras).
    """
    size = config.resolution
    yaw0 = rng.uniform(-0.15, 0.15)
    cams = [portrait_camera(identity.camera_target, size, yaw=yaw0, pitch=rng.uniform(-0.05, 0.1))]
    for v in range(config.views):
        side = 1.0 if v % 2 == 0 else -1.0
        yaw = side * (0.5 + 0.25 * (v // 2)) + yaw0
        cams.append(
            portrait_camera(identity.camera_target, size, yaw=yaw, pitch=rng.uniform(-0.1, 0.15))
        )
    return [(np.repeat(v[None], n_frames, 0), np.repeat(k[None], n_frames, 0)) for v, k in cams]


def generate_clip(
    model: FlameModel, identity: Identity, config: WorldConfig, identity_index: int, clip_index: int
) -> Clip:
    """One clip: speech, lip motion from visemes, head motion, frames from every camera."""
    from ggtalker_jax.world.visemes import phonemes_to_trajectories

    rng = _rng(config, identity_index, 1, clip_index)
    t = config.n_frames
    audio, phonemes = speech_for_clip(identity, config, rng)
    expression, jaw_pose = phonemes_to_trajectories(
        phonemes, t, fps=FPS, style=identity.style, n_exp=model.n_exp, audio=audio, rate=SAMPLE_RATE
    )
    motion = scene.head_motion(rng, t)
    params = FlameParams(
        shape=identity.shape,
        expression=np.asarray(expression, np.float32),
        jaw_pose=np.asarray(jaw_pose, np.float32),
        **motion,
    )
    size = config.resolution
    cameras = view_cameras(identity, config, rng, t)
    viewmat, K = cameras[0]
    frames = head = torso = None
    views = []
    if config.video:
        vertices, joints = (np.asarray(a) for a in _forward_frames(model, params))
        body = scene.pose_torso(
            identity.torso.vertices, identity.root, params.global_pose, joints[:, 0]
        )
        frames, head, torso = render_frames(model, identity, vertices, body, viewmat, K, size)
        for vview, vK in cameras[1:]:
            vframes, vhead, vtorso = render_frames(model, identity, vertices, body, vview, vK, size)
            views.append(View(vframes, vview, vK, vhead, vtorso))
    meta = {
        "fps": FPS,
        "width": size,
        "height": size,
        "identity": identity.name,
        "language": identity.language,
        "voice": identity.voice,
        "seed": config.seed,
        "source": "ggtalker-jax synthetic world",
        "clip": clip_index,
        "video": config.video,
        "views": len(views),
        "speaker": {
            "pitch": identity.pitch,
            "rate_wpm": identity.rate_wpm,
            "style": dataclasses.asdict(identity.style),
        },
        "phonemes": [[p.symbol, round(p.start, 4), round(p.end, 4)] for p in phonemes],
    }
    return Clip(
        frames=frames,
        audio=audio,
        flame=params,
        viewmat=viewmat,
        K=K,
        head_mask=head,
        torso_mask=torso,
        background=identity.background if config.video else None,
        views=tuple(views),
        meta=meta,
    )


@jax.jit
def _forward_frames(model: FlameModel, params: FlameParams) -> tuple[jax.Array, jax.Array]:
    out = flame_forward(model, params)
    return out.vertices, out.joints


def clip_name(identity_index: int, clip_index: int) -> str:
    return f"id{identity_index:03d}/clip{clip_index:03d}"


def clip_memory_bytes(config: WorldConfig) -> int:
    """Peak host memory of making one clip, estimated (bytes).

    Every camera's frames and masks stay in memory until the clip is written (5 bytes a
    pixel), the camera being rendered is held twice while its chunks are joined, one chunk of
    25 frames of z-buffer state is live (about 64 bytes a pixel), and the UV texture is held
    as uint8 and float32.
    """
    if not config.video:
        return 64 * 2**20
    pixels = config.resolution**2
    cameras = 1 + config.views
    frames = (cameras + 1) * config.n_frames * pixels * 5
    return frames + 25 * pixels * 64 + 2 * config.texture_side**2 * 3 * 5


def check_world_inputs(config: WorldConfig) -> None:
    """Refuse, before any work, what would only fail midway: an unknown espeak voice, or a
    clip too large for the memory that is free."""
    from ggtalker_jax.world.speech import check_voice

    for voice in dict.fromkeys(config.languages):
        check_voice(voice)
    require_memory(
        clip_memory_bytes(config),
        f"world: one clip ({config.n_frames} frames x {1 + config.views} cameras at "
        f"{config.resolution}x{config.resolution})",
        "lower --seconds, --resolution or --views",
    )


def iter_world(
    model: FlameModel, config: WorldConfig, skip=lambda name: False
) -> Iterator[tuple[str, Clip]]:
    """Yield ``(name, clip)`` for every clip of the world, identity by identity.

    Args:
      model: FLAME model (with UVs and masks when ``config.video``).
      config: what to generate.
      skip: ``name -> bool``; clips it accepts are not generated (used to resume).

    Raises:
      InputError: an unknown espeak voice (before anything is generated).
    """
    check_world_inputs(config)
    maps = make_uv_maps(model, config.texture_side) if config.video else None
    for i in range(config.identities):
        names = [clip_name(i, j) for j in range(config.clips_per_identity)]
        if all(skip(n) for n in names):
            continue
        identity = make_identity(model, maps, config, i)
        for j, name in enumerate(names):
            if not skip(name):
                yield name, generate_clip(model, identity, config, i, j)
