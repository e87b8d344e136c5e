"""Evaluating the A2E prior: lips of sampled motion against the exact motion of held-out clips.

Every measure is taken on the FLAME mesh of the clip's own speaker (its shape) with the head
pose zeroed, so only what the prior predicts (expression and jaw) moves the lips:

- **lip vertex error** (mm): per frame the largest L2 distance over the FLAME ``lips`` mask
  vertices between predicted and true mesh, mean over frames (the common definition: not
  squared, not mean-centred);
- **mouth opening** (mm): inner-lip landmark distance (:func:`~ggtalker_jax.eval.lipsync.
  inner_lip_distance`); the **correlation** of predicted and true opening over a clip's
  frames (Pearson r, 0 when either is constant) is the headline lip-sync number, averaged
  over clips;
- **velocity error** (mm/frame): mean over frames and lip vertices of the L2 distance between
  predicted and true frame-to-frame vertex motion.

The sets are the data config's held-out splits (``voices``: new speakers of the training
languages; ``languages``: languages never trained on), scored for the prior and, when given,
for a baseline (the regression model), with a plot of the opening over time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ggtalker_jax.data.a2e import SpeechClip
from ggtalker_jax.errors import InputError
from ggtalker_jax.eval.lipsync import inner_lip_distance
from ggtalker_jax.flame.lbs import flame_forward
from ggtalker_jax.flame.model import FlameModel
from ggtalker_jax.outputs import atomic_file, write_text_atomic
from ggtalker_jax.types import FlameParams

METRICS = ("lip_vertex_error_mm", "opening_r", "velocity_error_mm", "opening_mm")
SET_NAMES = {"voices": "held-out voices", "languages": "unseen languages"}


@jax.jit
def _lip_geometry(model: FlameModel, shape, expression, jaw_pose):
    t = expression.shape[0]
    params = FlameParams.zeros(model.n_shape, model.n_exp, (t,)).replace(
        shape=jnp.broadcast_to(shape, (t, model.n_shape)),
        expression=expression,
        jaw_pose=jaw_pose,
    )
    out = flame_forward(model, params)
    return out.vertices, out.landmarks


def lip_geometry(model: FlameModel, shape, expression, jaw_pose):
    """``(lip vertices [T, K, 3], mouth opening [T])`` in metres of one speaker's motion."""
    model.require("masks")
    vertices, landmarks = _lip_geometry(
        model,
        jnp.asarray(shape, jnp.float32),
        jnp.asarray(expression, jnp.float32),
        jnp.asarray(jaw_pose, jnp.float32),
    )
    lips = np.asarray(model.masks["lips"])
    return np.asarray(vertices)[:, lips], inner_lip_distance(np.asarray(landmarks))


def lip_vertex_error(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean over frames of the max lip-vertex L2 distance, mm (``[T, K, 3]`` in metres)."""
    return float(1000 * np.linalg.norm(pred - true, axis=-1).max(axis=-1).mean())


def velocity_error(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean L2 distance of frame-to-frame lip-vertex motion, mm/frame."""
    if pred.shape[0] < 2:
        return 0.0
    motion_error = np.diff(pred, axis=0) - np.diff(true, axis=0)
    return float(1000 * np.linalg.norm(motion_error, axis=-1).mean())


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r of two series (0 when either is constant)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.std() < 1e-12 or b.std() < 1e-12:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def clip_scores(model: FlameModel, clip: SpeechClip, expression, jaw_pose) -> dict:
    """The metrics of one clip's predicted expression ``[T, E]`` and jaw ``[T, 3]``, plus the
    two opening tracks (mm) for plots."""
    true_lips, true_open = lip_geometry(model, clip.shape, clip.expression, clip.jaw_pose)
    pred_lips, pred_open = lip_geometry(model, clip.shape, expression, jaw_pose)
    return {
        "lip_vertex_error_mm": lip_vertex_error(pred_lips, true_lips),
        "opening_r": correlation(pred_open, true_open),
        "velocity_error_mm": velocity_error(pred_lips, true_lips),
        "opening_mm": float(1000 * pred_open.mean()),
        "true_opening_mm": float(1000 * true_open.mean()),
        "_tracks": (1000 * true_open, 1000 * pred_open),
    }


def predict_clips(speaker, clips: Sequence[SpeechClip], key: jax.Array) -> list[dict]:
    """Sampled FLAME fields of each clip (unknown identity), clips of one length as a batch.

    Args:
      speaker: a :class:`~ggtalker_jax.priors.a2e.Speaker` (prior + feature extractor).
      clips: the clips.
      key: sampling key (clip ``i`` of a batch is row ``i``; batches fold in their index).
    """
    by_length: dict[int, list[int]] = {}
    for i, c in enumerate(clips):
        by_length.setdefault(c.audio.shape[0], []).append(i)
    out: list[dict | None] = [None] * len(clips)
    for g, indices in enumerate(by_length.values()):
        audio = np.stack([clips[i].audio for i in indices])
        frames = [clips[i].n_frames for i in indices]
        fields = speaker.motion_batch(audio, jax.random.fold_in(key, g), n_frames=max(frames))
        for k, i in enumerate(indices):
            out[i] = {n: v[k, : frames[k]] for n, v in fields.items()}
    return out  # type: ignore[return-value]


def evaluate_a2e(
    speakers: Mapping[str, object],
    sets: Mapping[str, Sequence[SpeechClip]],
    model: FlameModel,
    key: jax.Array,
    out_dir: str | Path | None = None,
) -> dict:
    """Score models on held-out sets.

    Args:
      speakers: ``{"prior": Speaker, "baseline": Speaker, ...}`` (the first is the prior).
      sets: ``{"voices": clips, "languages": clips}``.
      model: the FLAME model.
      key: sampling key (the same for every model).
      out_dir: write ``metrics.json`` and ``opening.png`` there.

    Returns:
      ``{"sets": {set: {model: {metric: mean over clips}, "clips": n}}, "frames": ...}``.
    """
    if not any(sets.values()):
        raise InputError("a2e eval: no held-out clips to score; raise a2e.data.heldout_*")
    report: dict = {"sets": {}}
    tracks: dict[str, dict[str, tuple]] = {}
    for set_name, clips in sets.items():
        if not clips:
            continue
        row: dict = {"clips": len(clips), "languages": sorted({c.language for c in clips})}
        for name, speaker in speakers.items():
            preds = predict_clips(speaker, clips, key)
            scores = [
                clip_scores(model, c, p["expression"], p["jaw_pose"])
                for c, p in zip(clips, preds, strict=True)
            ]
            row[name] = {m: float(np.mean([s[m] for s in scores])) for m in METRICS}
            row[name]["true_opening_mm"] = float(np.mean([s["true_opening_mm"] for s in scores]))
            tracks.setdefault(set_name, {})[name] = scores[0]["_tracks"]
        report["sets"][set_name] = row
    report["frames"] = int(sum(c.n_frames for clips in sets.values() for c in clips))
    if out_dir is not None:
        write_a2e_report(Path(out_dir), report, tracks)
    return report


# -- reports -----------------------------------------------------------------------------------

_COLORS = {"truth": (20, 20, 20), 0: (214, 39, 40), 1: (31, 119, 180), 2: (44, 160, 44)}


def opening_plot(panels: Mapping[str, Mapping[str, tuple]], width: int = 900, height: int = 220):
    """A PIL image: per set, the true mouth opening over time and each model's.

    Args:
      panels: ``{set: {model: (true [T] mm, predicted [T] mm)}}``.
    """
    from PIL import Image, ImageDraw

    pad_l, pad_r, pad_t, pad_b = 48, 12, 24, 22
    image = Image.new("RGB", (width, height * len(panels)), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    for p, (set_name, models) in enumerate(panels.items()):
        top = p * height
        true = next(iter(models.values()))[0]
        series = [("truth", true)] + [(m, tr[1]) for m, tr in models.items()]
        hi = max(float(np.max(s)) for _, s in series) * 1.1 + 1e-6
        x0, x1, y0, y1 = pad_l, width - pad_r, top + pad_t, top + height - pad_b
        draw.rectangle((x0, y0, x1, y1), outline=(160, 160, 160))
        for v in np.linspace(0, hi, 4):
            y = y1 - (y1 - y0) * v / hi
            draw.text((4, y - 6), f"{v:4.1f}", fill=(90, 90, 90))
        t = len(true)
        draw.text(
            (x0, top + 4),
            f"{SET_NAMES.get(set_name, set_name)}: mouth opening (mm) "
            f"over {t} frames ({t / 25:.1f} s)",
            fill=(0, 0, 0),
        )
        legend_x = x1 - 330
        for k, (name, s) in enumerate(series):
            color = _COLORS["truth"] if name == "truth" else _COLORS[(k - 1) % 3]
            xs = x0 + (x1 - x0) * np.arange(len(s)) / max(len(s) - 1, 1)
            ys = y1 - (y1 - y0) * np.clip(np.asarray(s) / hi, 0, 1)
            draw.line(list(zip(xs.tolist(), ys.tolist(), strict=True)), fill=color, width=2)
            draw.line((legend_x, top + 11, legend_x + 18, top + 11), fill=color, width=3)
            draw.text((legend_x + 22, top + 4), name, fill=color)
            legend_x += 24 + 7 * len(name) + 12
    return image


def write_a2e_report(out: Path, report: dict, tracks) -> None:
    """``opening.png`` then ``metrics.json`` (last: a folder with it is complete)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").unlink(missing_ok=True)
    if tracks:
        with atomic_file(out / "opening.png") as tmp:
            opening_plot(tracks).save(tmp, format="PNG")
    write_text_atomic(out / "metrics.json", json.dumps(report, indent=2, sort_keys=True) + "\n")


def summary_table(report: dict) -> list[str]:
    """The one-screen table of a report."""
    lines = [f"{'set':<18}{'model':<10}{'opening r':>10}{'LVE mm':>9}{'vel mm/f':>10}{'clips':>7}"]
    for set_name, row in report["sets"].items():
        for name, scores in row.items():
            if not isinstance(scores, dict):
                continue
            lines.append(
                f"{SET_NAMES.get(set_name, set_name):<18}{name:<10}{scores['opening_r']:>10.3f}"
                f"{scores['lip_vertex_error_mm']:>9.2f}{scores['velocity_error_mm']:>10.3f}"
                f"{row['clips']:>7}"
            )
    return lines
