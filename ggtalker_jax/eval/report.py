"""Contact sheets: rows of frames with labels, as one PNG people can open."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from ggtalker_jax.errors import InputError

_LABEL_BG = (24, 26, 32)
_LABEL_FG = (230, 230, 230)


def contact_sheet(
    rows: Sequence[np.ndarray],
    row_labels: Sequence[str] = (),
    col_labels: Sequence[str] = (),
    gap: int = 2,
) -> Image.Image:
    """Tile rows of frames into one labelled image.

    Args:
      rows: ``R`` arrays ``[N, H, W, 3]`` uint8, all the same shape.
      row_labels: ``R`` labels, drawn in the first cell of each row.
      col_labels: ``N`` labels, drawn at the bottom of each cell of the first row.
      gap: pixels between cells.

    Returns:
      An RGB image of ``R * (H + gap) - gap`` by ``N * (W + gap) - gap`` pixels.
    """
    if not rows:
        raise InputError("contact_sheet: no rows given")
    shape = np.shape(rows[0])
    if len(shape) != 4 or shape[-1] != 3 or any(np.shape(r) != shape for r in rows):
        raise InputError(
            f"contact_sheet: rows must all be [N, H, W, 3], got {[np.shape(r) for r in rows]}"
        )
    n, h, w, _ = shape
    sheet = Image.new("RGB", (n * (w + gap) - gap, len(rows) * (h + gap) - gap), _LABEL_BG)
    draw = ImageDraw.Draw(sheet)
    for r, row in enumerate(rows):
        for c, frame in enumerate(np.asarray(row, np.uint8)):
            x, y = c * (w + gap), r * (h + gap)
            sheet.paste(Image.fromarray(frame), (x, y))
            labels = []
            if c == 0 and r < len(row_labels):
                labels.append((x + 3, y + 2, row_labels[r]))
            if r == 0 and c < len(col_labels):
                labels.append((x + 3, y + h - 13, col_labels[c]))
            for lx, ly, text in labels:
                box = draw.textbbox((lx, ly), text)
                draw.rectangle((box[0] - 2, box[1] - 1, box[2] + 2, box[3] + 1), fill=_LABEL_BG)
                draw.text((lx, ly), text, fill=_LABEL_FG)
    return sheet
