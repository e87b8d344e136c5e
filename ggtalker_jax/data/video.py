"""MP4 reading and writing (H.264, yuv420p, optional audio track).

Uses the ffmpeg binary of ``imageio-ffmpeg`` (imported lazily). Where it is missing but
OpenCV is there (the GPU image: imageio-ffmpeg's wheel is over what the device tool carries),
video is written as MPEG-4 Part 2 (``mp4v``, OpenCV has no H.264 encoder) without an audio
track, and read back through OpenCV, with one notice per process; the GPU jobs keep their
ground truth in memory and write videos only as outputs.
"""

from __future__ import annotations

import os
import re
import subprocess
import warnings
from pathlib import Path

import numpy as np

from ggtalker_jax.errors import InputError
from ggtalker_jax.types import FPS

# Near-lossless: the frames are ground truth for PSNR/SSIM, so keep coding noise well below
# the differences the metrics are meant to show.
DEFAULT_CRF = 12


_NOTICE = {"shown": False}


def _opencv():
    """OpenCV, when imageio-ffmpeg is missing (``None`` when neither is there)."""
    try:
        import imageio_ffmpeg  # noqa: F401

        return None
    except ImportError:
        pass
    try:
        import cv2
    except ImportError:
        return None
    if not _NOTICE["shown"]:
        _NOTICE["shown"] = True
        print(
            "note: imageio-ffmpeg is not installed; writing mp4 through OpenCV (mp4v, no sound)",
            flush=True,
        )
    return cv2


def _write_opencv(cv2, path, frames: np.ndarray, fps: int) -> None:
    t, h, w, _ = frames.shape
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h))
    if not writer.isOpened():
        raise InputError(f"{path}: OpenCV cannot write mp4 here; install imageio-ffmpeg")
    for frame in frames:
        writer.write(np.ascontiguousarray(frame[..., ::-1]))  # OpenCV wants BGR
    writer.release()


def _read_opencv(cv2, path: Path) -> tuple[np.ndarray, float]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame[..., ::-1])
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    capture.release()
    if not frames:
        raise InputError(f"{path}: not a readable video (OpenCV decoded no frames)")
    return np.ascontiguousarray(np.stack(frames)), fps


def _ffmpeg():
    # imageio-ffmpeg starts ffmpeg with subprocess (fork + exec at once), which Python 3.12
    # warns about in a multithreaded (JAX) process; the exec makes it safe.
    warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
    try:
        import imageio_ffmpeg
    except ImportError:
        raise InputError(
            "mp4 I/O needs imageio-ffmpeg; install it with `pip install imageio-ffmpeg`"
        ) from None
    return imageio_ffmpeg


def write_mp4(
    path: str | os.PathLike,
    frames: np.ndarray,
    fps: int = FPS,
    audio_path: str | os.PathLike | None = None,
    crf: int = DEFAULT_CRF,
) -> None:
    """Encode frames as H.264 mp4, muxing a WAV file in as AAC if given.

    Args:
      path: output ``.mp4`` (overwritten: callers check ``--force``).
      frames: ``[T, H, W, 3]`` uint8, even ``H`` and ``W``.
      fps: frames per second.
      audio_path: optional WAV to mux in.
      crf: x264 constant rate factor (lower = better).
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise InputError(
            f"{path}: frames must be [T, H, W, 3] uint8, got " f"{frames.shape} {frames.dtype}"
        )
    t, h, w, _ = frames.shape
    if t == 0 or h % 2 or w % 2:
        raise InputError(
            f"{path}: need at least one frame and even width/height for H.264, "
            f"got {t} frames of {w}x{h}"
        )
    cv2 = _opencv()
    if cv2 is not None:
        _write_opencv(cv2, path, frames, fps)
        return
    writer = _ffmpeg().write_frames(
        str(path),
        (w, h),
        fps=fps,
        codec="libx264",
        quality=None,
        macro_block_size=1,
        output_params=["-crf", str(crf), "-preset", "fast"],
        ffmpeg_log_level="error",
        audio_path=None if audio_path is None else str(audio_path),
        audio_codec=None if audio_path is None else "aac",
    )
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()


def read_mp4(path: str | os.PathLike) -> tuple[np.ndarray, float]:
    """Decode every frame of a video.

    Returns:
      ``(frames [T, H, W, 3] uint8, fps)``.

    Raises:
      InputError: missing file or a file ffmpeg cannot decode.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    cv2 = _opencv()
    if cv2 is not None:
        return _read_opencv(cv2, path)
    try:
        reader = _ffmpeg().read_frames(str(path))
        meta = next(reader)
        w, h = meta["size"]
        frames = [np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in reader]
    except (OSError, RuntimeError, StopIteration, KeyError) as e:
        raise InputError(f"{path}: not a readable video ({str(e).splitlines()[0]})") from None
    if not frames:
        raise InputError(f"{path}: the video has no frames")
    return np.stack(frames), float(meta.get("fps", 0.0))


def probe_media(path: str | os.PathLike) -> dict:
    """Duration and stream facts of a media file from ``ffmpeg -i`` (ffprobe is not shipped).

    Returns:
      ``{"duration": seconds, "video": bool, "audio": bool, "fps": float | None,
      "audio_rate": int | None}``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    exe = _ffmpeg().get_ffmpeg_exe()
    text = subprocess.run(
        [exe, "-hide_banner", "-i", str(path)], capture_output=True, text=True
    ).stderr
    m = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", text)
    if not m:
        raise InputError(f"{path}: ffmpeg cannot read it ({text.strip().splitlines()[-1]})")
    hours, minutes, seconds = m.groups()
    fps = re.search(r"(\d+(?:\.\d+)?) fps", text)
    rate = re.search(r"Audio:.*?(\d+) Hz", text)
    return {
        "duration": int(hours) * 3600 + int(minutes) * 60 + float(seconds),
        "video": "Video:" in text,
        "audio": "Audio:" in text,
        "fps": float(fps.group(1)) if fps else None,
        "audio_rate": int(rate.group(1)) if rate else None,
    }
