"""Tiny config: CPU-sized, used by the tests and the demo.

Command: ``ggtalker demo --config tiny`` writes ``out/head_preview.png``, a 6 x 4 grid of
192-pixel cells (expressions by head poses) of the shipped procedural head, in a few seconds.
"""

from ggtalker_jax.config import Config, PreviewConfig


def get_config(arg: str | None = None) -> Config:
    del arg  # no variants yet
    return Config(name="tiny", seed=0, preview=PreviewConfig(cell_size=192))
