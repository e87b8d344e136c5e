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
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ggtalker_jax.errors import InputError
from ggtalker_jax.types import (
    FLAME_PARAM_FIELDS,
    FLAME_PARAM_SIZES,
    FPS,
    SAMPLE_RATE,
    FlameParams,
)

FLAME_KEYS = FLAME_PARAM_FIELDS  # the FLAME arrays of flame.npz
META_KEYS = ("fps", "width", "height", "identity", "language", "voice", "seed", "source")
CLIP_FILES = ("frames.mp4", "audio.wav", "flame.npz", "masks.npz", "bg.png", "meta.json")
VIEW_FILES = ("frames.mp4", "camera.npz", "masks.npz")


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
      audio: ``[A]`` float32 at 16 kHz.
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


def holds_only_clip_files(folder: Path) -> bool:
    """Whether ``folder`` holds nothing but what :func:`write_clip` writes (so replacing it
    loses nothing of a user's)."""
    for entry in folder.iterdir():
        if entry.is_symlink():
            return False
        if entry.name == "views" and entry.is_dir():
            for view in entry.iterdir():
                if not (view.name.isdigit() and view.is_dir() and not view.is_symlink()):
                    return False
                if any(f.name not in VIEW_FILES or not f.is_file() for f in view.iterdir()):
                    return False
        elif entry.name not in CLIP_FILES or not entry.is_file():
            return False
    return True


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


def write_flame_npz(
    path: str | os.PathLike,
    params: FlameParams,
    viewmat: np.ndarray,  # [T, 4, 4]
    K: np.ndarray,  # [T, 3, 3]
    force: bool = False,
) -> Path:
    """Write a clip's ``flame.npz`` (FLAME fields per frame and the camera per frame),
    atomically.

    Raises:
      InputError: the file exists and ``force`` is off, or frame counts disagree.
    """
    from ggtalker_jax.outputs import atomic_file

    path = Path(path)
    if path.exists() and not force:
        raise InputError(f"{path}: already exists; pass --force to overwrite it")
    flame = {k: np.asarray(getattr(params, k), np.float32) for k in FLAME_KEYS}
    t = flame["expression"].shape[0]
    _check_cameras(path, np.asarray(viewmat), np.asarray(K), t)
    for key, size in FLAME_PARAM_SIZES.items():
        if flame[key].shape != (t, size):
            raise InputError(f"{path}: '{key}' has shape {flame[key].shape}, expected {(t, size)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(
                f,
                **flame,
                viewmat=np.asarray(viewmat, np.float32),
                K=np.asarray(K, np.float32),
            )
    return path


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
    write_flame_npz(partial / "flame.npz", clip.flame, clip.viewmat, clip.K, force=True)
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


def load_npz(path: Path, keys: tuple[str, ...], what: str) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` (no pickles), with one line for a missing, truncated or
    corrupt file or a missing array.

    Args:
      path: the file.
      keys: arrays that must be there.
      what: what the file is, for the message (``"a FLAME parameter file"``).
    """
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    # A damaged zip fails in the zip layer, the zlib layer or numpy's header parser.
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as e:
        raise InputError(f"{path}: not readable as {what} ({type(e).__name__}: {e})") from None
    missing = [k for k in keys if k not in data]
    if missing:
        raise InputError(f"{path}: missing arrays {missing} (it holds {sorted(data)}); not {what}")
    return data


def _check_finite(path: Path, data: dict[str, np.ndarray]) -> None:
    for key, value in data.items():
        real = np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)
        if not real:
            raise InputError(f"{path}: '{key}' has dtype {value.dtype}, expected real numbers")
        if not np.all(np.isfinite(value)):
            bad = int(value.size - np.count_nonzero(np.isfinite(value)))
            raise InputError(f"{path}: '{key}' holds {bad} NaN/Inf value(s)")


def _check_cameras(path: Path, viewmat: np.ndarray, K: np.ndarray, t: int) -> None:
    for key, arr, shape in (("viewmat", viewmat, (t, 4, 4)), ("K", K, (t, 3, 3))):
        if arr.shape != shape:
            raise InputError(
                f"{path}: '{key}' has shape {arr.shape}, expected {shape} (one per frame)"
            )


def read_flame_npz(
    path: Path, n_frames: int | None = None
) -> tuple[FlameParams, np.ndarray, np.ndarray]:
    """Read and validate ``flame.npz``: ``(params, viewmat [T, 4, 4], K [T, 3, 3])``."""
    data = load_npz(path, (*FLAME_KEYS, "viewmat", "K"), "a FLAME parameter file")
    t = data["expression"].shape[0] if data["expression"].ndim == 2 else -1
    want = {key: (t, size) for key, size in FLAME_PARAM_SIZES.items()}
    if t < 0:
        raise InputError(
            f"{path}: 'expression' has shape {data['expression'].shape}, expected [T, E]"
        )
    for key, shape in want.items():
        if data[key].shape != shape:
            raise InputError(
                f"{path}: '{key}' has shape {data[key].shape}, expected {shape} "
                f"(T = {t} frames from 'expression')"
            )
    _check_cameras(path, data["viewmat"], data["K"], t)
    if data["shape"].ndim != 1:
        raise InputError(f"{path}: 'shape' has shape {data['shape'].shape}, expected [S]")
    _check_finite(path, data)
    if n_frames is not None and t != n_frames:
        raise InputError(f"{path}: {t} frames of FLAME parameters but {n_frames} video frames")
    params = FlameParams(**{k: data[k].astype(np.float32) for k in FLAME_KEYS})
    return params, data["viewmat"].astype(np.float32), data["K"].astype(np.float32)


def read_meta(path: Path) -> dict:
    """``meta.json`` as a dict: UTF-8 JSON holding an object, or one line saying what it is."""
    if not path.is_file():
        raise InputError(f"{path}: no such file (every clip has a meta.json)")
    try:
        meta = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None
    except RecursionError:
        raise InputError(f"{path}: nested too deeply to be a clip's meta.json") from None
    if not isinstance(meta, dict):
        raise InputError(
            f"{path}: holds a JSON {type(meta).__name__}, expected an object with "
            f"{', '.join(META_KEYS)}"
        )
    fps = meta.get("fps", FPS)
    if type(fps) not in (int, float) or fps != FPS:
        raise InputError(
            f"{path}: fps is {fps!r}, but the clip format is {FPS} fps; re-encode the video "
            f"at {FPS} fps and fix meta.json"
        )
    return meta


def _check_fps(path: Path, fps: float) -> None:
    if abs(fps - FPS) > 0.01:
        raise InputError(
            f"{path}: plays at {fps:g} fps, but the clip format is {FPS} fps; re-encode it "
            f"(`ffmpeg -i {path} -r {FPS} OUT.mp4`)"
        )


def _check_meta_size(path: Path, meta: dict, frames: np.ndarray) -> None:
    h, w = frames.shape[1:3]
    for key, actual in (("width", w), ("height", h)):
        if key in meta and (type(meta[key]) is not int or meta[key] != actual):
            raise InputError(
                f"{path}: {key} is {meta[key]!r}, but frames.mp4 is {w}x{h}; fix meta.json"
            )


def _read_background(path: Path, size: tuple[int, int]) -> np.ndarray | None:
    if not path.exists():
        return None
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            background = np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise InputError(f"{path}: not a readable image ({type(e).__name__}: {e})") from None
    if background.shape[:2] != size:
        raise InputError(
            f"{path}: is {background.shape[1]}x{background.shape[0]}, but the frames are "
            f"{size[1]}x{size[0]}"
        )
    return background


def _read_view(vdir: Path, frames: np.ndarray) -> View:
    """One extra camera, checked against the main camera's frames."""
    from ggtalker_jax.data.video import read_mp4

    t, h, w = frames.shape[:3]
    if not vdir.name.isdigit():
        raise InputError(f"{vdir}: not a view folder; the views of a clip are numbered 0, 1, ...")
    vframes, fps = read_mp4(vdir / "frames.mp4")
    _check_fps(vdir / "frames.mp4", fps)
    if vframes.shape[1:3] != (h, w):
        raise InputError(
            f"{vdir / 'frames.mp4'}: frames are {vframes.shape[2]}x{vframes.shape[1]}, but the "
            f"clip's frames.mp4 is {w}x{h}; every camera of a clip has one size"
        )
    if vframes.shape[0] != t:
        raise InputError(
            f"{vdir / 'frames.mp4'}: {vframes.shape[0]} frames, but the clip has {t} frames"
        )
    cam_path = vdir / "camera.npz"
    cam = load_npz(cam_path, ("viewmat", "K"), "a camera file")
    _check_cameras(cam_path, cam["viewmat"], cam["K"], t)
    _check_finite(cam_path, cam)
    vhead, vtorso = _read_masks(vdir / "masks.npz", vframes.shape[:3])
    viewmat, K = cam["viewmat"].astype(np.float32), cam["K"].astype(np.float32)
    return View(vframes, viewmat, K, vhead, vtorso)


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
    meta = read_meta(folder / "meta.json")
    audio, _ = read_wav(folder / "audio.wav", SAMPLE_RATE)
    frames = None
    # A clip written with --no-video says so in its meta; any other clip must have frames.
    if load_video and meta.get("video", True) is not False:
        from ggtalker_jax.data.video import read_mp4

        frames, fps = read_mp4(folder / "frames.mp4")
        _check_fps(folder / "frames.mp4", fps)
        _check_meta_size(folder / "meta.json", meta, frames)
    n_frames = None if frames is None else frames.shape[0]
    flame, viewmat, K = read_flame_npz(folder / "flame.npz", n_frames)
    check_lengths(flame.expression.shape[0], audio.shape[0], str(folder / "audio.wav"))
    head = torso = background = None
    views = []
    if frames is not None:
        head, torso = _read_masks(folder / "masks.npz", frames.shape[:3])
        background = _read_background(folder / "bg.png", frames.shape[1:3])
        view_dirs = list((folder / "views").iterdir()) if (folder / "views").is_dir() else []
        for vdir in sorted(view_dirs, key=lambda p: (len(p.name), p.name)):
            views.append(_read_view(vdir, frames))
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
    data = load_npz(path, ("head", "torso"), "a masks file")
    for name in ("head", "torso"):
        mask = data[name]
        if mask.shape != tuple(shape) or mask.dtype != np.uint8:
            raise InputError(
                f"{path}: '{name}' is {mask.shape} {mask.dtype}, expected {tuple(shape)} uint8"
            )
        if mask.max(initial=0) > 1:
            raise InputError(f"{path}: '{name}' holds {mask.max()}; masks hold only 0 and 1")
    return data["head"], data["torso"]
