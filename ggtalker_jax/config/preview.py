"""The FLAME preview grid's section (``ggtalker flame preview`` and the demo)."""

from __future__ import annotations

import dataclasses

from ggtalker_jax.config.base import check


@dataclasses.dataclass(frozen=True)
class PreviewConfig:
    """The FLAME preview grid.

    Attributes:
      cell_size: pixels per grid cell (square).
      expression_strength: coefficient applied to each shown expression component.
    """

    cell_size: int = 192
    expression_strength: float = 2.0

    def __post_init__(self):
        check(32 <= self.cell_size <= 1024, "preview.cell_size", self.cell_size, "32 to 1024")
        check(
            self.expression_strength > 0,
            "preview.expression_strength",
            self.expression_strength,
            "> 0",
        )
