"""Evaluating an E2V prior on held-out identities (``ggtalker e2v eval``).

For every held-out identity one reference frame is drawn (random expression, near-frontal
camera); the generator reads it once, and the head it predicts is rendered for:

- ``same camera``: a new expression, jaw and head pose seen from the reference camera;
- ``yaw +30`` / ``yaw -30`` / ``yaw +60`` / ``yaw -60``: that frame from cameras turned
  around the head by ±30° and ±60° (novel views);
- ``other identity``: the same-camera targets, but the generator reads another held-out
  identity's reference (the next one in order, with its own FLAME fit and camera): what the
  head PSNR would be if the generator ignored the image. ``image_gain_db`` = same-camera head
  PSNR minus this one.

Metrics per case (means over identities): PSNR and SSIM on the head mask (``head_psnr``,
``head_ssim``) and on the full frame (``psnr``, ``ssim``; the head on its solid
background). One PNG grid per case: rows are identities, columns reference | ground truth |
ours | error (absolute error, ×4).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ggtalker_jax.config.e2v import E2VConfig
from ggtalker_jax.eval import metrics
from ggtalker_jax.outputs import atomic_file, write_text_atomic

CASES = (
    ("same camera", 0.0),
    ("yaw +30", math.radians(30.0)),
    ("yaw -30", math.radians(-30.0)),
    ("yaw +60", math.radians(60.0)),
    ("yaw -60", math.radians(-60.0)),
)
"""Evaluation cases: name and camera yaw offset from the reference camera, radians."""

SWAP_CASE = "other identity"
GRID_ROWS = 8
"""Identities shown per grid (all are scored)."""


def _slug(name: str) -> str:
    return name.replace(" ", "_").replace("+", "p").replace("-", "m")


def _scores(pred, target, mask) -> dict[str, np.ndarray]:
    return {
        "head_psnr": np.asarray(metrics.masked_psnr(pred, target, mask)),
        "head_ssim": np.asarray(metrics.masked_ssim(pred, target, mask)),
        "psnr": np.asarray(metrics.psnr(pred, target)),
        "ssim": np.asarray(metrics.ssim(pred, target)),
    }


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    pil = Image.fromarray((np.clip(image, 0, 1) * 255).round().astype(np.uint8))
    return np.asarray(pil.resize((size, size), Image.BILINEAR))


def comparison_grid(reference, target, pred, rows: int = GRID_ROWS) -> np.ndarray:
    """``[rows·H, 4·W, 3]`` uint8: reference | ground truth | ours | error (×4) per row.

    Args:
      reference: ``[B, Hc, Wc, 3]`` (resized to the target size).  target, pred:
        ``[B, H, W, 3]`` in 0..1.
    """
    rows = min(rows, target.shape[0])
    size = target.shape[1]
    lines = []
    for i in range(rows):
        error = np.clip(4.0 * np.abs(pred[i] - target[i]), 0, 1)
        cells = [_resize(reference[i], size)] + [
            (np.clip(x, 0, 1) * 255).round().astype(np.uint8) for x in (target[i], pred[i], error)
        ]
        lines.append(np.concatenate(cells, axis=1))
    return np.concatenate(lines, axis=0)


def _swap_sources(batch):
    """The batch with every element's reference taken from the next identity's."""
    roll = lambda x: jnp.roll(x, 1, axis=0)
    return dataclasses.replace(
        batch,
        source_image=roll(batch.source_image),
        source_params=jax.tree.map(roll, batch.source_params),
        source_viewmat=roll(batch.source_viewmat),
        source_K=roll(batch.source_K),
    )


def evaluate_e2v(
    generator,
    source,
    config: E2VConfig,
    out_dir: str | Path | None = None,
    position: int = 0,
    chunk: int = 16,
) -> dict:
    """Score a generator on the held-out identities of ``source``.

    Args:
      generator: an :class:`~ggtalker_jax.models.identity_generator.IdentityGenerator`.
      source: a :class:`~ggtalker_jax.data.e2v.ProceduralE2V` over the held-out identities.
      config: the E2V section the generator was built with.
      out_dir: where ``metrics.json`` and the grids go (``None``: nothing written).
      position: which reference frames are drawn (deterministic).
      chunk: images rendered per call.

    Returns:
      ``{"identities": I, "cases": {case: {metric: mean}}, "image_gain_db": float}``.
    """
    from ggtalker_jax.train.e2v import predict_batch

    identities = [int(i) for i in source.identities]
    yaws = [yaw for _, yaw in CASES]
    batch = source.views(identities, yaws, position=position)  # identity-major
    n_cases = len(CASES)

    def render_all(b) -> np.ndarray:
        # Fixed-size chunks (the last one padded by repeating its first element), so one
        # compiled renderer serves every call.
        size = b.target_image.shape[0]
        parts = []
        for start in range(0, size, chunk):
            pick = np.minimum(np.arange(start, start + chunk), size - 1)
            part = jax.tree.map(lambda x, p=pick: x[p], b)
            rgb = np.asarray(predict_batch(generator, part, config).rgb)
            parts.append(rgb[: min(chunk, size - start)])
        return np.concatenate(parts)

    pred = render_all(batch)
    target = np.asarray(batch.target_image)
    mask = np.asarray(batch.target_mask)
    reference = np.asarray(batch.source_image)
    results, grids = {}, {}
    for j, (name, _) in enumerate(CASES):
        pick = np.arange(len(identities)) * n_cases + j
        scores = _scores(pred[pick], target[pick], mask[pick])
        results[name] = {k: float(np.mean(v)) for k, v in scores.items()}
        grids[name] = comparison_grid(reference[pick], target[pick], pred[pick])
    # The generator must read the image: the same targets from another identity's reference.
    same = jax.tree.map(lambda x: x[np.arange(len(identities)) * n_cases], batch)
    swapped = _swap_sources(same)
    pred_swap = render_all(swapped)
    scores = _scores(pred_swap, np.asarray(same.target_image), np.asarray(same.target_mask))
    results[SWAP_CASE] = {k: float(np.mean(v)) for k, v in scores.items()}
    grids[SWAP_CASE] = comparison_grid(
        np.asarray(swapped.source_image), np.asarray(same.target_image), pred_swap
    )
    report = {
        "identities": len(identities),
        "image_size": int(target.shape[1]),
        "cases": results,
        "image_gain_db": results["same camera"]["head_psnr"] - results[SWAP_CASE]["head_psnr"],
    }
    if out_dir is not None:
        write_report(Path(out_dir), report, grids)
    return report


def write_report(out: Path, report: dict, grids: dict[str, np.ndarray]) -> None:
    """``metrics.json`` (last, so a folder with it is complete) and ``grid_<case>.png``."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").unlink(missing_ok=True)
    for name, grid in grids.items():
        with atomic_file(out / f"grid_{_slug(name)}.png") as tmp:
            Image.fromarray(grid).save(tmp)
    write_text_atomic(out / "metrics.json", json.dumps(report, indent=2, sort_keys=True) + "\n")


def summary_table(report: dict) -> list[str]:
    """The one-screen table of a report."""
    lines = [
        f"{'case':<16}{'head PSNR':>11}{'head SSIM':>11}{'PSNR':>8}{'SSIM':>8}",
    ]
    for name, row in report["cases"].items():
        lines.append(
            f"{name:<16}{row['head_psnr']:>11.2f}{row['head_ssim']:>11.3f}"
            f"{row['psnr']:>8.2f}{row['ssim']:>8.3f}"
        )
    lines.append(
        f"{report['identities']} held-out identities; the image is worth "
        f"{report['image_gain_db']:+.2f} dB of head PSNR (same camera vs another identity's "
        "reference)"
    )
    return lines
