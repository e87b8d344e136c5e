"""The clip format: the on-disk unit of real and synthetic data (one folder per clip).

::

    CLIP/frames.mp4            25 fps H.264, even width and height
    CLIP/audio.wav             16 kHz mono 16-bit PCM
    CLIP/flame.npz             shape [S], expression [T, E], global_pose/neck_pose/jaw_pose
                               [T, 3], eye_pose [T, 6], translation [T, 3], viewmat [T, 4, 4],
                               K [T, 3, 3] (float32)
    CLIP/masks.npz             head [T, H, W], torso [T, H, W] (uint8); optional CLIP/bg.png
    CLIP/views/<k>/frames.mp4  optional extra cameras of the same instants
    CLIP/views/<k>/camera.npz  viewmat [T, 4, 4], K [T, 3, 3]
    CLIP/views/<k>/masks.npz   optional: head [T, H, W], torso [T, H, W] (uint8)
    CLIP/meta.json             fps, width, height, identity, language, voice, seed, source

Writers build the folder under ``CLIP.partial`` and rename it at the end, so an interrupted
writer never leaves something that looks finished. Readers validate every file and raise one
line naming the file and the numbers.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np

from ggtalker_jax.errors import InputError
from ggtalker_jax.types import FLAME_PARAM_FIELDS, FlameParams

FPS = 25
SAMPLE_RATE = 16000
FLAME_KEYS = FLAME_PARAM_FIELDS  # the FLAME arrays of flame.npz
META_KEYS = ("fps", "width", "height", "identity", "language", "voice", "seed", "source")


@dataclasses.dataclass(frozen=True)
class View:
    """An extra camera of the same instants: ``frames [T, H, W, 3]`` uint8 (or ``None`` when
    not loaded), ``viewmat [T, 4, 4]``, ``K [T, 3, 3]``, optional ``head_mask`` and
    ``torso_mask [T, H, W]`` uint8."""

    frames: np.ndarray | None
    viewmat: np.ndarray
    K: np.ndarray
    head_mask: np.ndarray | None = None
    torso_mask: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class Clip:
    """One clip in memory.

    Attributes:
      frames: ``[T, H, W, 3]`` uint8, or ``None`` for audio + FLAME only clips.
      audio: ``[S]`` float32 at 16 kHz.
      flame: :class:`FlameParams` with per-frame fields ``[T, ...]`` and ``shape [S_id]``.
      viewmat: ``[T, 4, 4]`` world->camera.  K: ``[T, 3, 3]``.
      head_mask, torso_mask: ``[T, H, W]`` uint8 (0/1), or ``None``.
      background: ``[H, W, 3]`` uint8 or ``None``.
      views: extra cameras.
      meta: the ``meta.json`` dict.
    """

    frames: np.ndarray | None
    audio: np.ndarray
    flame: FlameParams
    viewmat: np.ndarray
    K: np.ndarray
    head_mask: np.ndarray | None = None
    torso_mask: np.ndarray | None = None
    background: np.ndarray | None = None
    views: tuple[View, ...] = ()
    meta: dict = dataclasses.field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(self.flame.expression.shape[0])


def audio_frames(n_samples: int, fps: int = FPS, rate: int = SAMPLE_RATE) -> float:
    """Length of ``n_samples`` of audio in video frames."""
    return n_samples * fps / rate


def check_lengths(n_frames: int, n_samples: int, where: str, fps: int = FPS) -> None:
    """Frame count and audio length must agree within one frame."""
    audio_len = audio_frames(n_samples, fps)
    if abs(n_frames - audio_len) > 1.0:
        raise InputError(
            f"{where}: {n_frames} frames but the audio lasts {audio_len:.1f} frames "
            f"({n_samples} samples at {SAMPLE_RATE} Hz, {fps} fps); they must agree within "
            "one frame"
        )


def write_clip(folder: str | os.PathLike, clip: Clip, force: bool = False) -> Path:
    """Write ``clip`` in the clip format (atomically: built in ``folder.partial``, renamed).

    Raises:
      InputError: ``folder`` exists and ``force`` is not set, or the clip is inconsistent.
    """
    from ggtalker_jax.audio.wav import write_wav
    from ggtalker_jax.data.video import write_mp4

    folder = Path(folder)
    if folder.exists() and not force:
        raise InputError(f"{folder}: already exists; pass --force to overwrite it")
    check_lengths(clip.n_frames, clip.audio.shape[0], str(folder))
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    write_wav(partial / "audio.wav", clip.audio, SAMPLE_RATE)
    flame = {k: np.asarray(getattr(clip.flame, k), np.float32) for k in FLAME_KEYS}
    np.savez(
        partial / "flame.npz",
        **flame,
        viewmat=np.asarray(clip.viewmat, np.float32),
        K=np.asarray(clip.K, np.float32),
    )
    if clip.frames is not None:
        write_mp4(partial / "frames.mp4", clip.frames, FPS)
    if clip.head_mask is not None:
        np.savez_compressed(
            partial / "masks.npz",
            head=clip.head_mask.astype(np.uint8),
            torso=clip.torso_mask.astype(np.uint8),
        )
    if clip.background is not None:
        from PIL import Image

        Image.fromarray(clip.background).save(partial / "bg.png")
    for k, view in enumerate(clip.views):
        vdir = partial / "views" / str(k)
        vdir.mkdir(parents=True)
        write_mp4(vdir / "frames.mp4", view.frames, FPS)
        np.savez(
            vdir / "camera.npz",
            viewmat=view.viewmat.astype(np.float32),
            K=view.K.astype(np.float32),
        )
        if view.head_mask is not None:
            np.savez_compressed(
                vdir / "masks.npz",
                head=view.head_mask.astype(np.uint8),
                torso=view.torso_mask.astype(np.uint8),
            )
    (partial / "meta.json").write_text(json.dumps(clip.meta, indent=2, sort_keys=True) + "\n")
    if folder.exists():
        shutil.rmtree(folder)
    partial.rename(folder)
    return folder


def read_flame_npz(
    path: Path, n_frames: int | None = None
) -> tuple[FlameParams, np.ndarray, np.ndarray]:
    """Read and validate ``flame.npz``: ``(params, viewmat [T, 4, 4], K [T, 3, 3])``."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError) as e:
        raise InputError(f"{path}: not a readable .npz ({e})") from None
    missing = [k for k in (*FLAME_KEYS, "viewmat", "K") if k not in data]
    if missing:
        raise InputError(f"{path}: missing arrays {missing}")
    t = data["expression"].shape[0] if data["expression"].ndim == 2 else -1
    want = {
        "global_pose": (t, 3),
        "neck_pose": (t, 3),
        "jaw_pose": (t, 3),
        "eye_pose": (t, 6),
        "translation": (t, 3),
        "viewmat": (t, 4, 4),
        "K": (t, 3, 3),
    }
    for key, shape in want.items():
        if t < 0 or data[key].shape != shape:
            raise InputError(
                f"{path}: '{key}' has shape {data[key].shape}, expected {shape} "
                f"(T = {t} frames from 'expression')"
            )
    if data["shape"].ndim != 1:
        raise InputError(f"{path}: 'shape' has shape {data['shape'].shape}, expected [S]")
    for key, value in data.items():
        if not np.all(np.isfinite(value)):
            bad = int(value.size - np.count_nonzero(np.isfinite(value)))
            raise InputError(f"{path}: '{key}' holds {bad} NaN/Inf value(s)")
    if n_frames is not None and t != n_frames:
        raise InputError(f"{path}: {t} frames of FLAME parameters but {n_frames} video frames")
    params = FlameParams(**{k: data[k].astype(np.float32) for k in FLAME_KEYS})
    return params, data["viewmat"].astype(np.float32), data["K"].astype(np.float32)


def read_clip(folder: str | os.PathLike, load_video: bool = True) -> Clip:
    """Read and validate one clip folder.

    Args:
      folder: the clip folder.
      load_video: decode ``frames.mp4`` and views; ``False`` reads audio, FLAME and meta
        only (what the audio prior needs), and also accepts clips without video.

    Raises:
      InputError: a missing or corrupt file, a wrong sample rate, frame/audio or frame/FLAME
        count mismatch, NaN parameters, or masks of the wrong shape (one line each).
    """
    from ggtalker_jax.audio.wav import read_wav

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such clip folder")
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        raise InputError(f"{meta_path}: no such file (every clip has a meta.json)")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"{meta_path}: not valid JSON ({e})") from None
    audio, _ = read_wav(folder / "audio.wav", SAMPLE_RATE)
    frames = None
    # A clip written with --no-video says so in its meta; any other clip must have frames.
    if load_video and meta.get("video", True):
        from ggtalker_jax.data.video import read_mp4

        frames, _ = read_mp4(folder / "frames.mp4")
    n_frames = None if frames is None else frames.shape[0]
    flame, viewmat, K = read_flame_npz(folder / "flame.npz", n_frames)
    check_lengths(flame.expression.shape[0], audio.shape[0], str(folder / "audio.wav"))
    head = torso = background = None
    views = []
    if frames is not None:
        head, torso = _read_masks(folder / "masks.npz", frames.shape[:3])
        if (folder / "bg.png").exists():
            from PIL import Image

            background = np.asarray(Image.open(folder / "bg.png").convert("RGB"))
        for vdir in sorted((folder / "views").glob("*"), key=lambda p: (len(p.name), p.name)):
            vframes, _ = read_mp4(vdir / "frames.mp4")
            cam = np.load(vdir / "camera.npz") if (vdir / "camera.npz").exists() else None
            if cam is None:
                raise InputError(f"{vdir / 'camera.npz'}: no such file")
            if vframes.shape[0] != frames.shape[0] or cam["viewmat"].shape[0] != frames.shape[0]:
                raise InputError(
                    f"{vdir}: {vframes.shape[0]} frames and "
                    f"{cam['viewmat'].shape[0]} cameras, but the clip has "
                    f"{frames.shape[0]} frames"
                )
            vhead, vtorso = _read_masks(vdir / "masks.npz", vframes.shape[:3])
            views.append(View(vframes, cam["viewmat"], cam["K"], vhead, vtorso))
    return Clip(
        frames=frames,
        audio=audio,
        flame=flame,
        viewmat=viewmat,
        K=K,
        head_mask=head,
        torso_mask=torso,
        background=background,
        views=tuple(views),
        meta=meta,
    )


def _read_masks(path: Path, shape: tuple[int, int, int]):
    if not path.is_file():
        return None, None
    try:
        with np.load(path, allow_pickle=False) as z:
            head, torso = z["head"], z["torso"]
    except (KeyError, ValueError, OSError, EOFError) as e:
        raise InputError(f"{path}: not a readable masks file ({e})") from None
    for name, mask in (("head", head), ("torso", torso)):
        if mask.shape != tuple(shape) or mask.dtype != np.uint8:
            raise InputError(
                f"{path}: '{name}' is {mask.shape} {mask.dtype}, expected " f"{tuple(shape)} uint8"
            )
    return head, torso
