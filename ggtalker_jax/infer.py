"""Audio to video for an adapted identity: ``TalkingHead.load(folder).speak(audio)``.

1. **Motion**: the identity's A2E decoder samples FLAME expression and jaw per frame from the
   speech (:class:`~ggtalker_jax.motion.Speaker`, as an unknown speaker).
2. **Pose and background**: frame ``t`` takes its head pose (global, neck, eyes,
   translation) and its background, torso and head mask from frame ``loop(t)`` of a pose
   clip (the identity's own clip by default), played forwards and backwards so a long
   speech never jumps.
3. **Frames** (:meth:`TalkingHead.frame_step`, one jitted function over a chunk of ``B``
   frames): FLAME -> rigged Gaussians -> color MLP -> splatting (over black) -> the Body
   Inpainter blends the head into the pose clip's frame -> uint8.

A camera spec (``yaw=30,pitch=-10``, degrees) orbits the clip's camera around the head for a
novel view; the background stays the clip's.
"""

from __future__ import annotations

import dataclasses
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ggtalker_jax.errors import InputError
from ggtalker_jax.types import FLAME_PARAM_FIELDS, Camera, FlameParams

CAMERA_KEYS = ("yaw", "pitch")
MAX_ORBIT_DEGREES = 90.0


@dataclasses.dataclass(frozen=True)
class CameraSpec:
    """A novel view: the clip's camera orbited by ``yaw`` and ``pitch`` degrees."""

    yaw: float = 0.0
    pitch: float = 0.0

    @property
    def is_identity(self) -> bool:
        return self.yaw == 0.0 and self.pitch == 0.0


def parse_camera(spec: str | None) -> CameraSpec:
    """``"yaw=30,pitch=0"`` -> :class:`CameraSpec` (degrees; either key may be left out).

    Raises:
      InputError: an unknown key, a value that is not a number, or an angle past ±90°.
    """
    if spec is None or not spec.strip():
        return CameraSpec()
    values: dict[str, float] = {}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in CAMERA_KEYS:
            raise InputError(
                f"--camera {spec!r}: cannot read {part.strip()!r}; write "
                "yaw=DEGREES,pitch=DEGREES, e.g. --camera yaw=30,pitch=0"
            )
        try:
            angle = float(value)
        except ValueError:
            raise InputError(
                f"--camera {spec!r}: {key}={value.strip()!r} is not a number of degrees"
            ) from None
        if not math.isfinite(angle) or abs(angle) > MAX_ORBIT_DEGREES:
            raise InputError(
                f"--camera {spec!r}: {key}={angle:g} must lie within ±{MAX_ORBIT_DEGREES:g} "
                "degrees"
            )
        values[key] = angle
    return CameraSpec(**values)


def loop_index(n_out: int, n_clip: int) -> np.ndarray:
    """``[n_out]`` frames of a clip of ``n_clip`` frames played forwards, then backwards, and
    so on (no jump where the clip ends)."""
    if n_clip == 1:
        return np.zeros(n_out, np.int64)
    period = 2 * (n_clip - 1)
    t = np.arange(n_out) % period
    return np.where(t < n_clip, t, period - t)


def blend_head(inpainter, head_rgb, head_alpha, frame, frame_head_mask, radius: float):
    """The rendered head ``[B, H, W, 3]`` (premultiplied; alpha ``[B, H, W]``) blended into
    ``frame [B, H, W, 3]`` (0..1) by the inpainter, inside the hole cut from the head and the
    frame's own head mask ``[B, H, W]`` grown by ``radius`` pixels (a Python number)."""
    from ggtalker_jax.render.compose import hole_mask

    hole = hole_mask(head_alpha, frame_head_mask, radius, max_radius=math.ceil(radius))
    return inpainter(head_rgb, head_alpha, frame, hole)


def _frame_chunk(
    head_graph, head_state, inpainter_graph, inpainter_state, params, viewmat, K,
    frames, head_mask, radius: float, capacity: int,
):  # fmt: skip
    head = nnx.merge(head_graph, head_state)
    inpainter = nnx.merge(inpainter_graph, inpainter_state)
    h, w = frames.shape[1:3]
    render, _, _ = head(params, Camera(viewmat, K, int(w), int(h)), capacity)
    frame = frames.astype(jnp.float32) / 255.0
    out = blend_head(inpainter, render.rgb, render.alpha, frame, head_mask, radius)
    return jnp.clip(jnp.round(out * 255.0), 0, 255).astype(jnp.uint8)


frame_chunk = jax.jit(
    _frame_chunk, static_argnames=("head_graph", "inpainter_graph", "radius", "capacity")
)


class TalkingHead:
    """An adapted identity that turns speech into video (module docstring).

    Load with :meth:`load`; call :meth:`speak`. :meth:`motion`, :meth:`drive` and
    :meth:`render` are its three stages, for callers that bring their own motion or cameras.

    Args:
      identity: a loaded :class:`~ggtalker_jax.identity.Identity`.
      batch: frames per jitted chunk.
    """

    def __init__(self, identity, batch: int | None = None):
        self.identity = identity
        self.head, self.inpainter = identity.head, identity.inpainter
        self.speaker = identity.speaker
        self.clip = identity.clip
        self.batch = int(batch or identity.config.adapt.infer_batch)
        info = identity.info
        per_frame = int(info["capacity"]) / int(info["config"]["adapt"]["batch_frames"])
        from ggtalker_jax.kernels.splat.binning import round_capacity

        self.capacity = round_capacity(int(per_frame * self.batch) + 1024)
        self._head = nnx.split(self.head)
        self._inpainter = nnx.split(self.inpainter)
        self._frames_of, self._frames = None, None

    @classmethod
    def load(cls, folder: str | os.PathLike, model=None, batch: int | None = None) -> TalkingHead:
        """Load the identity folder ``ggtalker adapt`` wrote.

        Raises:
          InputError: no such folder, an unfinished adaptation, or a folder from an
            incompatible config (:func:`~ggtalker_jax.identity.load_identity`).
        """
        from ggtalker_jax.identity import load_identity

        return cls(load_identity(folder, model), batch)

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)`` of the frames."""
        return tuple(self.clip.frames.shape[1:3])

    # -- stages --------------------------------------------------------------------------------

    def motion(self, audio: np.ndarray, key: jax.Array) -> dict[str, np.ndarray]:
        """FLAME ``expression [T, E]`` and ``jaw_pose [T, 3]`` for ``audio [A]`` (16 kHz)."""
        fields = self.speaker.speak(audio, key)
        return {k: fields[k] for k in ("expression", "jaw_pose")}

    def drive(self, motion: dict, pose_from=None, camera: CameraSpec | None = None):
        """Per-frame FLAME parameters, cameras and background frames for ``motion``.

        Args:
          motion: ``expression [T, E]``, ``jaw_pose [T, 3]``.
          pose_from: a :class:`~ggtalker_jax.data.clip.Clip` (default: the identity's own)
            whose head pose, camera, frames and head masks are looped.
          camera: a novel view (default: the clip's camera).

        Returns:
          ``(FlameParams [T], viewmat [T, 4, 4], K [T, 3, 3], frame index [T])`` into
          ``pose_from``'s frames.

        Raises:
          InputError: a pose clip of another resolution or without frames or head masks.
        """
        from ggtalker_jax.flame import flame_forward
        from ggtalker_jax.geometry.camera import orbit_viewmat

        clip = self._pose_clip(pose_from)
        t = motion["expression"].shape[0]
        idx = loop_index(t, clip.n_frames)
        fields = {k: np.asarray(getattr(clip.flame, k))[idx] for k in FLAME_PARAM_FIELDS[1:]}
        fields["expression"] = np.asarray(motion["expression"], np.float32)
        fields["jaw_pose"] = np.asarray(motion["jaw_pose"], np.float32)
        params = FlameParams(shape=np.asarray(clip.flame.shape, np.float32), **fields)
        viewmat, K = clip.viewmat[idx], clip.K[idx]
        camera = camera or CameraSpec()
        if not camera.is_identity:
            first = FlameParams(
                shape=jnp.asarray(params.shape),
                **{k: jnp.asarray(getattr(params, k)[:1]) for k in FLAME_PARAM_FIELDS[1:]},
            )
            pivot = np.asarray(flame_forward(self.head.template.model, first).vertices)[0].mean(0)
            viewmat = orbit_viewmat(
                viewmat, pivot, math.radians(camera.yaw), math.radians(camera.pitch)
            )
        return params, np.asarray(viewmat, np.float32), np.asarray(K, np.float32), idx

    def render(self, params: FlameParams, viewmat, K, frame_index, pose_from=None, progress=False):
        """``[T, H, W, 3]`` uint8 frames: :meth:`frame_step` over chunks of ``batch`` frames
        (the last padded, so one compile serves every length). The pose clip's frames go to
        the device once; every chunk is dispatched before the first is read back, so the
        host never waits between chunks."""
        frames, masks = self._device_frames(self._pose_clip(pose_from))
        t, b = len(frame_index), self.batch
        starts = range(0, t, b)
        if progress:
            from tqdm import tqdm

            starts = tqdm(starts, desc="render", unit="chunk", dynamic_ncols=True)
        chunks = []
        for s in starts:
            rows = np.arange(s, min(s + b, t))
            pad = np.concatenate([rows, np.repeat(rows[-1:], b - len(rows))])
            index = jnp.asarray(frame_index[pad])
            chunk = self.frame_step(
                _take(params, pad), viewmat[pad], K[pad], frames[index], masks[index]
            )
            chunks.append((rows, chunk))
        out = np.empty((t, *self.size, 3), np.uint8)
        for rows, chunk in chunks:
            out[rows] = np.asarray(chunk)[: len(rows)]
        return out

    def _device_frames(self, clip) -> tuple[jax.Array, jax.Array]:
        """The pose clip's frames and head masks on the device (kept for the last clip)."""
        if self._frames_of is not clip:
            self._frames = (jnp.asarray(clip.frames), jnp.asarray(clip.head_mask))
            self._frames_of = clip
        return self._frames

    def frame_step(self, params: FlameParams, viewmat, K, frames, head_mask) -> jax.Array:
        """The jitted inner step: ``B`` frames of parameters, cameras and pose-clip frames
        (uint8 ``[B, H, W, 3]``) and head masks ``[B, H, W]`` -> ``[B, H, W, 3]`` uint8."""
        return frame_chunk(
            self._head[0], self._head[1], self._inpainter[0], self._inpainter[1],
            params, jnp.asarray(viewmat), jnp.asarray(K), jnp.asarray(frames),
            jnp.asarray(head_mask), float(self.identity.hole_radius), self.capacity,
        )  # fmt: skip

    # -- all together --------------------------------------------------------------------------

    def speak(
        self,
        audio: np.ndarray,
        camera: CameraSpec | str | None = None,
        pose_from=None,
        key: jax.Array | None = None,
        progress: bool = False,
    ) -> np.ndarray:
        """Video of the identity saying ``audio`` (``[A]`` float32, 16 kHz mono).

        Args:
          audio: the speech.
          camera: a :class:`CameraSpec`, a spec string (``"yaw=30"``) or ``None``.
          pose_from: the pose clip (default: the identity's own).
          key: the sampler's key (default: a fixed one, so a call is repeatable).
          progress: show a bar over the render chunks.

        Returns:
          ``[T, H, W, 3]`` uint8 at 25 fps, ``T`` from the audio's length.
        """
        audio = np.asarray(audio, np.float32)
        if audio.ndim != 1 or audio.size == 0:
            raise InputError(f"speak: audio has shape {audio.shape}; expected mono samples [A]")
        if isinstance(camera, str):
            camera = parse_camera(camera)
        key = jax.random.key(0) if key is None else key
        motion = self.motion(audio, key)
        params, viewmat, K, idx = self.drive(motion, pose_from, camera)
        return self.render(params, viewmat, K, idx, pose_from, progress)

    def _pose_clip(self, pose_from):
        clip = self.clip if pose_from is None else pose_from
        if clip.frames is None or clip.head_mask is None:
            raise InputError(
                "--pose-from: the pose clip needs frames.mp4 and masks.npz (its frames give the "
                "background and torso)"
            )
        if tuple(clip.frames.shape[1:3]) != tuple(self.clip.frames.shape[1:3]):
            h, w = clip.frames.shape[1:3]
            raise InputError(
                f"--pose-from: its frames are {w}x{h}, the identity's are "
                f"{self.size[1]}x{self.size[0]}; give a clip of the identity's resolution"
            )
        return clip


def _take(params: FlameParams, index: np.ndarray) -> FlameParams:
    return FlameParams(
        shape=jnp.asarray(params.shape),
        **{k: jnp.asarray(getattr(params, k)[index]) for k in FLAME_PARAM_FIELDS[1:]},
    )


def speech_audio(audio_path=None, text: str | None = None, voice: str | None = None):
    """The speech to say: ``audio_path`` read (any format, resampled to 16 kHz mono) or
    ``text`` spoken by the espeak ``voice``.

    Raises:
      InputError: both or neither given, a missing or corrupt audio file, empty text, or an
        unknown voice (names how to list them).
    """
    if (audio_path is None) == (text is None):
        raise InputError("give the speech as --audio FILE or as --text '...' --voice VOICE")
    if audio_path is not None:
        from ggtalker_jax.audio.load import load_audio

        return load_audio(audio_path)
    from ggtalker_jax.world.speech import check_voice, synthesize

    check_voice(voice or "en")
    return synthesize(text, voice or "en", silence_before_s=0.2, silence_after_s=0.3).audio


__all__ = ["CameraSpec", "TalkingHead", "loop_index", "parse_camera", "speech_audio"]
