"""Scoring a talking-head video against ground truth, case by case, and the files people open.

A *case* is one way of driving the head ("self-driven", "novel view +30°", "cross-language"):
predicted frames and FLAME parameters, the true FLAME parameters of the same instants and,
where the case has them, the ground-truth frames and head mask. Scores: **image**
(:func:`score_frames`: PSNR/SSIM of the full frame, dominated by the torso and background the
inpainter copies, and of the head mask, which says how good the head is) and **motion**
(:func:`score_motion`: lip vertex error, mouth opening and its correlation as the A2E
evaluation measures them, and the pixel distance of the projected mouth landmarks).

A report is ``{"cases": {name: score_case(...)}, ...}``: :func:`summary_table` prints it on one
screen; :func:`write_eval_report` writes ``metrics.json`` (strict JSON: a non-finite number,
the inf PSNR of identical frames or the NaN of an empty mask, is ``null``), ``per_frame.npz``,
PNG grids (ground truth | ours | error) and side-by-side mp4s with the sound.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image, ImageDraw

from ggtalker_jax.audio.wav import read_wav, write_wav
from ggtalker_jax.data.video import write_mp4
from ggtalker_jax.errors import InputError
from ggtalker_jax.eval import metrics
from ggtalker_jax.eval.a2e import correlation, lip_geometry, lip_vertex_error
from ggtalker_jax.eval.report import _LABEL_BG, _LABEL_FG, contact_sheet
from ggtalker_jax.eval.views import project_landmarks
from ggtalker_jax.flame.lbs import flame_forward
from ggtalker_jax.flame.model import FlameModel
from ggtalker_jax.outputs import atomic_file, write_text_atomic
from ggtalker_jax.types import (
    FLAME_PARAM_FIELDS,
    FLAME_PARAM_SIZES,
    FPS,
    SAMPLE_RATE,
    FlameParams,
    check_flame_params,
)

MOUTH_LANDMARKS = tuple(range(48, 68))
"""iBUG-68 mouth landmarks: outer lip 48-59, inner lip 60-67 (the FLAME landmark layout)."""

IMAGE_METRICS = ("psnr", "ssim", "head_psnr", "head_ssim")
ERROR_GAIN = 4.0
"""Error images show ``gain × |pred − true|`` (as the E2V grids): small errors stay visible."""


# -- image scores ------------------------------------------------------------------------------


def _check_frames(where: str, name: str, frames, like: tuple | None = None) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise InputError(
            f"{where}: {name} has dtype {frames.dtype}; pass uint8 frames [T, H, W, 3] "
            "(np.clip(x * 255, 0, 255).round().astype(np.uint8))"
        )
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise InputError(f"{where}: {name} has shape {frames.shape}; expected [T, H, W, 3], T > 0")
    if like is not None and frames.shape != like:
        raise InputError(
            f"{where}: {name} has shape {frames.shape} but pred has {like}; pass the same "
            "frames (T) at the same size (H, W)"
        )
    return frames


@jax.jit
def _image_scores(pred, true, mask) -> dict[str, jax.Array]:
    """Per-frame scores of one chunk: uint8 ``[B, H, W, 3]`` twice, mask ``[B, H, W]`` 0/1."""
    # Materialise the float images once: fused into the metrics, the two conversions came out
    # rounded differently on XLA CPU, and identical frames scored 157 dB instead of inf.
    p, t = jax.lax.optimization_barrier(
        (pred.astype(jnp.float32) / 255.0, true.astype(jnp.float32) / 255.0)
    )
    return {
        "psnr": metrics.psnr(p, t),
        "ssim": metrics.ssim(p, t),
        "head_psnr": metrics.masked_psnr(p, t, mask),
        "head_ssim": metrics.masked_ssim(p, t, mask),
    }


def _mean_over_frames(values: np.ndarray) -> float:
    """Mean of the frames that have a value (NaN = empty mask); NaN when none has."""
    kept = values[~np.isnan(values)]
    return float(kept.mean()) if kept.size else float("nan")


def score_frames(pred, true, head_mask=None, batch: int = 16) -> dict:
    """PSNR and SSIM of predicted frames against ground truth, full frame and head mask.

    The frames go through one jitted function in chunks of ``batch`` (the last chunk padded
    by repeating its last frame), so every clip of one image size shares one compile.

    Args:
      pred: ``[T, H, W, 3]`` uint8 predicted frames.
      true: ``[T, H, W, 3]`` uint8 ground truth.
      head_mask: ``[T, H, W]`` uint8 or bool, nonzero on the head; ``None`` leaves out the
        head scores.
      batch: frames per chunk.

    Returns:
      ``{"psnr", "ssim", "head_psnr", "head_ssim": mean over frames (float), "frames": T,
      "per_frame": {metric: [T] float32}}``. PSNR is in dB with peak 255 (identical frames:
      inf); SSIM as dm-pix (identical frames: 1). A frame with an empty head mask has NaN
      head scores and is left out of their mean (NaN when no frame has a head).

    Raises:
      InputError: frames not uint8 ``[T, H, W, 3]``, empty, of different shapes, smaller than
        the SSIM window, a mask of another shape, or ``batch < 1``.
    """
    pred = _check_frames("score_frames", "pred", pred)
    true = _check_frames("score_frames", "true", true, like=pred.shape)
    t, h, w, _ = pred.shape
    if min(h, w) < (n := metrics.SSIM_FILTER):
        raise InputError(f"score_frames: frames are {w}x{h}; SSIM needs at least {n}x{n} pixels")
    if not isinstance(batch, int | np.integer) or batch < 1:
        raise InputError(f"score_frames: batch is {batch!r}; pass a whole number >= 1")
    mask = np.ones((t, h, w), bool) if head_mask is None else np.asarray(head_mask)
    if mask.shape != (t, h, w):
        raise InputError(
            f"score_frames: head_mask has shape {mask.shape}; pass one mask per frame, {(t, h, w)}"
        )
    mask = (mask != 0).astype(np.uint8)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in IMAGE_METRICS}
    for start in range(0, t, batch):
        pick = np.minimum(np.arange(start, start + batch), t - 1)
        scores = _image_scores(pred[pick], true[pick], mask[pick])
        for k, v in scores.items():
            parts[k].append(np.asarray(v)[: min(batch, t - start)])
    keep = IMAGE_METRICS if head_mask is not None else ("psnr", "ssim")
    per_frame = {k: np.concatenate(parts[k]).astype(np.float32) for k in keep}
    return {
        **{k: _mean_over_frames(v) for k, v in per_frame.items()},
        "frames": int(t),
        "per_frame": per_frame,
    }


# -- motion scores -----------------------------------------------------------------------------


def _check_params(model: FlameModel, params: FlameParams, name: str) -> int:
    """Check per-frame ``[T, ...]`` fields, ``shape [S]`` and finite values; returns ``T``."""
    where = f"score_motion {name}"
    if not isinstance(params, FlameParams):
        raise InputError(f"{where}: is a {type(params).__name__}; pass a FlameParams")
    check_flame_params(params, model.n_shape, model.n_exp, where=where)
    if np.ndim(params.shape) != 1:
        raise InputError(f"{where}: 'shape' is {np.shape(params.shape)}; pass one identity [S]")
    t = int(np.shape(params.expression)[0]) if np.ndim(params.expression) == 2 else -1
    sizes = {"expression": model.n_exp, **FLAME_PARAM_SIZES}
    for field in FLAME_PARAM_FIELDS[1:]:
        if np.shape(getattr(params, field)) != (t, sizes[field]) or t < 1:
            raise InputError(
                f"{where}: '{field}' has shape {np.shape(getattr(params, field))}; expected "
                f"per-frame [T, {sizes[field]}] with the T of 'expression' (T >= 1)"
            )
    return t


def _check_cameras(viewmat, K, t: int) -> tuple[np.ndarray, np.ndarray]:
    viewmat, K = np.asarray(viewmat, np.float64), np.asarray(K, np.float64)
    for name, value, want in (("viewmat", viewmat, (t, 4, 4)), ("K", K, (t, 3, 3))):
        if value.shape != want:
            raise InputError(f"score_motion: {name} has shape {value.shape}; expected {want}")
        if not np.all(np.isfinite(value)):
            raise InputError(f"score_motion: {name} holds NaN/Inf; pass finite cameras")
    return viewmat, K


@jax.jit
def _posed_landmarks(model: FlameModel, pred: FlameParams, true: FlameParams):
    """Landmarks ``[T, L, 3]`` of both fully posed heads (global pose, neck, translation)."""
    return flame_forward(model, pred).landmarks, flame_forward(model, true).landmarks


def score_motion(
    model: FlameModel,
    pred_params: FlameParams,
    true_params: FlameParams,
    viewmat,  # [T, 4, 4]
    K,  # [T, 3, 3]
) -> dict:
    """How well the predicted FLAME motion matches the true one, on the mesh and in the image.

    - **lip vertex error** (mm): per frame the largest L2 distance over the FLAME ``lips``
      vertices between the predicted and the true mesh, mean over frames; not squared, not
      mean-centred. Both meshes use the true identity shape with the head pose (global, neck,
      eyes, translation) zeroed, so only expression and jaw count
      (:func:`~ggtalker_jax.eval.a2e.lip_geometry`, as in the A2E evaluation).
    - **mouth opening** (mm): inner-lip landmark distance (62 to 66) of those meshes per frame;
      ``opening_r`` is the Pearson r of predicted and true opening over time (0 when either is
      constant), ``opening_mm`` / ``true_opening_mm`` their means.
    - **landmark distance** (px): the :data:`MOUTH_LANDMARKS` (outer and inner lip) of each
      head posed with all its own parameters, projected by the frame's camera; the mean over
      frames and landmarks of the L2 distance between predicted and true pixels. Head-pose
      errors count here: it is where the mouth is drawn.

    Args:
      model: the FLAME model (needs its ``lips`` mask and the 68 iBUG landmarks).
      pred_params: predicted :class:`FlameParams`, ``shape [S]``, other fields ``[T, ...]``.
      true_params: ground truth, the same ``T``.
      viewmat: ``[T, 4, 4]`` world->camera of the frames (OpenCV: +z forward).
      K: ``[T, 3, 3]`` intrinsics, pixels.

    Returns:
      ``{"lip_vertex_error_mm", "opening_r", "opening_mm", "true_opening_mm", "landmark_px":
      float, "frames": T, "per_frame": {"lip_vertex_error_mm", "opening_mm",
      "true_opening_mm", "landmark_px": [T] float32}}``.

    Raises:
      InputError: non-FlameParams, fields that are not ``[T, ...]`` or sized for another
        model, NaN/Inf values, different ``T``, cameras of the wrong shape, a model without
        68 landmarks or lips mask, or a true mouth behind the camera.
    """
    t = _check_params(model, pred_params, "pred_params")
    t_true = _check_params(model, true_params, "true_params")
    if t != t_true:
        raise InputError(
            f"score_motion: pred_params have {t} frames but true_params {t_true}; score the "
            "same instants (cut both to the shorter)"
        )
    viewmat, K = _check_cameras(viewmat, K, t)
    model.require("landmarks")  # and lip_geometry refuses any layout but iBUG 68
    shape = np.asarray(true_params.shape, np.float32)
    true_lips, true_open = lip_geometry(model, shape, true_params.expression, true_params.jaw_pose)
    pred_lips, pred_open = lip_geometry(model, shape, pred_params.expression, pred_params.jaw_pose)
    lve_frames = np.array(
        [lip_vertex_error(pred_lips[i : i + 1], true_lips[i : i + 1]) for i in range(t)]
    )

    as_f32 = lambda p: jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), p)
    pred_lmk, true_lmk = _posed_landmarks(model, as_f32(pred_params), as_f32(true_params))
    mouth = list(MOUTH_LANDMARKS)
    pred_uv, _ = project_landmarks(np.asarray(pred_lmk)[:, mouth], viewmat, K)
    true_uv, true_depth = project_landmarks(np.asarray(true_lmk)[:, mouth], viewmat, K)
    behind = np.nonzero((true_depth <= 0).any(axis=-1))[0]
    if behind.size:
        raise InputError(
            f"score_motion: the true mouth is behind the camera in {behind.size} of {t} frames "
            f"(first: frame {behind[0]}); pass viewmat as world->camera (OpenCV, +z forward)"
        )
    px_frames = np.linalg.norm(pred_uv - true_uv, axis=-1).mean(axis=-1)  # [T]
    tracks = {
        "lip_vertex_error_mm": lve_frames,
        "opening_mm": 1000 * pred_open,
        "true_opening_mm": 1000 * true_open,
        "landmark_px": px_frames,
    }
    return {
        "lip_vertex_error_mm": lip_vertex_error(pred_lips, true_lips),
        "opening_r": correlation(pred_open, true_open),
        "opening_mm": float(1000 * pred_open.mean()),
        "true_opening_mm": float(1000 * true_open.mean()),
        "landmark_px": float(px_frames.mean()),
        "frames": int(t),
        "per_frame": {k: np.asarray(v, np.float32) for k, v in tracks.items()},
    }


def score_case(
    model: FlameModel,
    pred,
    pred_params: FlameParams,
    true_params: FlameParams,
    viewmat,
    K,
    true=None,
    head_mask=None,
    batch: int = 16,
) -> dict:
    """The scores of one case: :func:`score_motion`, plus :func:`score_frames` when a
    ground-truth video exists (``true`` not ``None``), in one dict.

    Args:
      model, pred_params, true_params, viewmat, K: as :func:`score_motion`.
      pred: ``[T, H, W, 3]`` uint8 predicted frames (the ``T`` of the parameters).
      true: ``[T, H, W, 3]`` uint8 ground truth, or ``None`` (a cross-driven case).
      head_mask: ``[T, H, W]`` of ``true`` or ``None``.
      batch: frames per image-metric chunk.

    Returns:
      The metrics of both, ``"frames": T`` and one ``"per_frame"`` dict of ``[T]`` tracks.
    """
    pred = _check_frames("score_case", "pred", pred)
    t = _check_params(model, pred_params, "pred_params")
    if pred.shape[0] != t:
        raise InputError(f"score_case: pred has {pred.shape[0]} frames, pred_params {t}")
    scores = score_motion(model, pred_params, true_params, viewmat, K)
    if true is not None:
        image = score_frames(pred, true, head_mask, batch=batch)
        scores = {**scores, **image, "per_frame": {**scores["per_frame"], **image["per_frame"]}}
    return scores


# -- pictures and videos -----------------------------------------------------------------------

# Heat ramp (inferno-like): black, purple, red, orange, pale yellow at 0, 1/4, ..., 1.
_HEAT = np.array(
    [[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], np.float64
)


def error_image(pred, true, gain: float = ERROR_GAIN) -> np.ndarray:
    """Absolute error as a heat map: ``gain`` × the mean over channels of ``|pred − true|``
    (0..1, clipped), through a black -> purple -> red -> yellow ramp.

    Args:
      pred, true: ``[..., H, W, 3]`` uint8, one shape.
      gain: error amplification.

    Returns:
      ``[..., H, W, 3]`` uint8.
    """
    pred, true = np.asarray(pred), np.asarray(true)
    if pred.dtype != np.uint8 or true.dtype != np.uint8:
        raise InputError(f"error_image: dtypes {pred.dtype}, {true.dtype}; pass uint8 frames")
    if pred.shape != true.shape or pred.ndim < 3 or pred.shape[-1] != 3:
        raise InputError(f"error_image: shapes {pred.shape}, {true.shape}; need the same shape")
    diff = np.abs(pred.astype(np.int16) - true.astype(np.int16)).mean(axis=-1) / 255.0
    level = np.clip(gain * diff, 0.0, 1.0) * (len(_HEAT) - 1)
    stops = np.arange(len(_HEAT))
    rgb = [np.interp(level, stops, _HEAT[:, c]) for c in range(3)]
    return np.stack(rgb, axis=-1).round().astype(np.uint8)


def comparison_grid(
    true,
    pred,
    picks: Sequence[int] | None = None,
    labels: Sequence[str] | None = None,
    gain: float = ERROR_GAIN,
) -> Image.Image:
    """Picked frames as a contact sheet: rows ground truth | ours | error (heat map).

    Args:
      true: ``[T, H, W, 3]`` uint8 ground truth, or ``None`` (one row: ours).
      pred: ``[T, H, W, 3]`` uint8.
      picks: frame indices, one column each (default: 6 evenly spaced).
      labels: one per pick (default ``"frame i"``).
      gain: error amplification of :func:`error_image`.

    Returns:
      An RGB image of ``R·(H + 2) − 2`` by ``P·(W + 2) − 2`` pixels (``R`` rows, ``P`` picks).
    """
    pred = _check_frames("comparison_grid", "pred", pred)
    if true is not None:
        true = _check_frames("comparison_grid", "true", true, like=pred.shape)
    t = pred.shape[0]
    if picks is None:
        picks = np.unique(np.linspace(0, t - 1, min(6, t)).round().astype(int))
    picks = [int(i) for i in picks]
    if not picks or any(not 0 <= i < t for i in picks):
        raise InputError(f"comparison_grid: picks {picks}; pass frame indices in [0, {t})")
    labels = [f"frame {i}" for i in picks] if labels is None else list(labels)
    if len(labels) != len(picks):
        raise InputError(f"comparison_grid: {len(labels)} labels for {len(picks)} picks")
    if true is None:
        return contact_sheet([pred[picks]], ["ours"], labels)
    rows = [true[picks], pred[picks], error_image(pred[picks], true[picks], gain)]
    return contact_sheet(rows, ["ground truth", "ours", "error"], labels)


def _label_patch(text: str, width: int, height: int) -> np.ndarray:
    """``text`` on the label background, at most ``[height, width, 3]``."""
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left, top, right, bottom = probe.textbbox((0, 0), text)
    patch = Image.new("RGB", (right - left + 6, bottom - top + 4), _LABEL_BG)
    ImageDraw.Draw(patch).text((3 - left, 2 - top), text, fill=_LABEL_FG)
    return np.asarray(patch)[:height, :width]


def _even(frames: np.ndarray) -> np.ndarray:
    """Pad ``[T, H, W, 3]`` with black to even ``H`` and ``W`` (H.264 needs both even)."""
    return np.pad(frames, ((0, 0), (0, frames.shape[1] % 2), (0, frames.shape[2] % 2), (0, 0)))


def _wav_for(path, audio, frames: int, fps: int, sample_rate: int, scratch: Path) -> Path:
    """A WAV of ``audio`` (a WAV path, or samples written into ``scratch``) as long as the
    frames, give or take one frame."""
    if isinstance(audio, str | os.PathLike):
        samples, sample_rate = read_wav(audio, expected_rate=None)
    else:
        samples = np.asarray(audio, np.float32)
        if samples.ndim != 1 or samples.shape[0] == 0:
            raise InputError(f"{path}: audio has shape {samples.shape}; pass [A] or a WAV path")
    length = samples.shape[0] / sample_rate
    if abs(length - frames / fps) > 1.0 / fps + 1e-6:
        raise InputError(
            f"{path}: the audio lasts {length:.3f} s but the {frames} frames last "
            f"{frames / fps:.3f} s at {fps} fps; trim or pad the audio to the frames"
        )
    if isinstance(audio, str | os.PathLike):
        return Path(audio)
    return write_wav(scratch / "audio.wav", samples, sample_rate)


def side_by_side_video(
    path: str | os.PathLike,
    columns: Sequence[np.ndarray],
    audio=None,
    labels: Sequence[str] = (),
    fps: int = FPS,
    sample_rate: int = SAMPLE_RATE,
) -> Path:
    """Write the columns side by side as one mp4 with the sound muxed in, atomically.

    Each column is padded to an even width (and the frames to an even height) with black, and
    carries its label in its top-left corner.

    Args:
      path: output ``.mp4`` (replaced: the caller checks ``--force``).
      columns: arrays ``[T, H, W_i, 3]`` uint8, one ``T`` and ``H``, widths may differ.
      audio: a WAV path, mono samples ``[A]`` in [-1, 1] at ``sample_rate``, or ``None``
        (no audio track). Its duration must match ``T / fps`` within one frame.
      labels: one per column (or none).
      fps: frames per second.
      sample_rate: Hz of an audio array.

    Returns:
      ``path`` as a :class:`Path`.
    """
    if not columns:
        raise InputError(f"{path}: no columns to write; pass at least one [T, H, W, 3] array")
    cells = [_even(_check_frames(str(path), f"column {i}", c)) for i, c in enumerate(columns)]
    t, h = cells[0].shape[:2]
    for i, cell in enumerate(cells):
        if cell.shape[:2] != (t, h):
            raise InputError(
                f"{path}: column {i} is {cell.shape[0]} frames of height {cell.shape[1]}, "
                f"column 0 is {t} of {h}; pass columns of one length and height"
            )
    if labels and len(labels) != len(columns):
        raise InputError(f"{path}: {len(labels)} labels for {len(columns)} columns; one each")
    frames = np.concatenate(cells, axis=2)  # [T, H', W', 3]
    x = 0
    for cell, text in zip(cells, labels or [""] * len(cells), strict=True):
        if text:
            patch = _label_patch(text, cell.shape[2], cell.shape[1])
            frames[:, : patch.shape[0], x : x + patch.shape[1]] = patch
        x += cell.shape[2]
    with tempfile.TemporaryDirectory(prefix="ggtalker-audio-") as scratch:
        audio_path = None
        if audio is not None:
            audio_path = _wav_for(path, audio, t, fps, sample_rate, Path(scratch))
        with atomic_file(path) as tmp:
            write_mp4(tmp, frames, fps=fps, audio_path=audio_path)
    return Path(path)


# -- reports -----------------------------------------------------------------------------------


def _cases(report: dict) -> dict:
    cases = report.get("cases") if isinstance(report, dict) else None
    if not isinstance(cases, dict):
        raise InputError("talking report: no 'cases' dict; pass {'cases': {name: scores}}")
    return cases


def _cell(row: dict, key: str, spec: str, width: int) -> str:
    value = row.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"{'—':>{width}}"
    return f"{value:>{width}{spec}}"


_COLUMNS = (
    ("PSNR", "psnr", ".2f", 7),
    ("SSIM", "ssim", ".3f", 7),
    ("head PSNR", "head_psnr", ".2f", 11),
    ("head SSIM", "head_ssim", ".3f", 11),
    ("LVE mm", "lip_vertex_error_mm", ".2f", 8),
    ("open r", "opening_r", ".3f", 8),
    ("mouth px", "landmark_px", ".2f", 10),
)


def summary_table(report: dict) -> list[str]:
    """The one-screen table of ``report = {"cases": {name: scores}}`` (as built, or read back
    from ``metrics.json``): a header, one row per case, a legend. A missing value (a case
    without ground-truth video), ``null`` or NaN shows "—"."""
    cases = _cases(report)
    width = max([18, *(len(n) + 2 for n in cases)])
    lines = ["case".ljust(width) + "".join(f"{label:>{w}}" for label, _, _, w in _COLUMNS)]
    for name, row in cases.items():
        cells = "".join(_cell(row, key, spec, w) for _, key, spec, w in _COLUMNS)
        lines.append(name.ljust(width) + cells)
    lines.append("LVE: worst lip vertex per frame; open r: mouth-opening correlation; px: lips")
    return lines


def case_slug(name: str) -> str:
    """A file-name part for a case name: ``"novel view +30°"`` -> ``"novel_view_p30deg"``."""
    text = re.sub(r"\+(?=\d)", "p", name)
    text = re.sub(r"-(?=\d)", "m", text).replace("°", "deg")
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _slugs(names) -> dict[str, str]:
    """Name -> :func:`case_slug`, refusing empty and clashing file names."""
    slugs, seen = {n: case_slug(n) for n in names}, {}
    for name, slug in slugs.items():
        if not slug or seen.setdefault(slug, name) != name:
            clash = f", as {seen[slug]!r} does" if slug else ""
            raise InputError(f"case name {name!r} gives the file name {slug!r}{clash}; rename it")
    return slugs


def _plain(value):
    """JSON-ready: numpy numbers to Python, arrays to lists, non-finite floats to None."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items() if k != "per_frame"}
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclasses.dataclass(frozen=True)
class SideBySide:
    """A video for :func:`write_eval_report`: the arguments of :func:`side_by_side_video`."""

    columns: Sequence[np.ndarray]
    audio: object = None
    labels: Sequence[str] = ()


def write_eval_report(
    out_dir: str | os.PathLike,
    report: dict,
    grids: Mapping[str, Image.Image | np.ndarray] | None = None,
    videos: Mapping[str, SideBySide] | None = None,
) -> dict[str, Path]:
    """Write a report's files; ``metrics.json`` last, so a folder holding it is complete.

    Files: ``grid_<slug>.png`` per grid, ``video_<slug>.mp4`` per video, ``per_frame.npz``
    (``<case slug>/<metric>`` -> ``[T]``) and ``metrics.json`` (the report without its
    per-frame tracks, plus ``"files"``; non-finite numbers are ``null``). ``<slug>`` is
    :func:`case_slug` of the name.

    Args:
      out_dir: the folder (created; files of these names are replaced).
      report: ``{"cases": {name: scores}, ...}``.
      grids: name -> PIL image or ``[H, W, 3]`` uint8 (e.g. :func:`comparison_grid`).
      videos: name -> :class:`SideBySide`.

    Returns:
      ``{file name: path}`` of everything written.
    """
    out = Path(out_dir)
    cases = _cases(report)
    grids, videos = dict(grids or {}), dict(videos or {})
    grid_slugs, video_slugs, case_slugs = _slugs(grids), _slugs(videos), _slugs(cases)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").unlink(missing_ok=True)
    written: dict[str, Path] = {}
    for name, grid in grids.items():
        image = grid if isinstance(grid, Image.Image) else Image.fromarray(np.asarray(grid))
        target = out / f"grid_{grid_slugs[name]}.png"
        with atomic_file(target) as tmp:
            image.save(tmp, format="PNG")
        written[target.name] = target
    for name, video in videos.items():
        target = out / f"video_{video_slugs[name]}.mp4"
        side_by_side_video(target, video.columns, video.audio, video.labels)
        written[target.name] = target
    tracks = {
        f"{case_slugs[name]}/{metric}": np.asarray(values)
        for name, row in cases.items()
        for metric, values in row.get("per_frame", {}).items()
    }
    if tracks:
        target = out / "per_frame.npz"
        with atomic_file(target) as tmp:
            np.savez(tmp, **tracks)
        written[target.name] = target
    plain = _plain(report)
    plain["files"] = sorted(written)
    text = json.dumps(plain, indent=2, allow_nan=False) + "\n"  # cases keep their order
    written["metrics.json"] = write_text_atomic(out / "metrics.json", text)
    return written
