"""Tiny config: CPU-sized, used by the tests and the demo.

Command: ``ggtalker demo --config tiny`` builds a one-clip synthetic world (4 s of English
speech at 256 x 256, two extra cameras) and writes ``out/demo.mp4`` (main and novel views side
by side, with sound), ``out/demo_grid.png``, ``out/metrics.json`` and ``out/head_preview.png``
(a 6 x 4 grid of 192-pixel cells), in well under a minute on two CPU cores.
"""

from ggtalker_jax.config import Config, DemoConfig, PreviewConfig


def get_config(arg: str | None = None) -> Config:
    del arg  # no variants yet
    return Config(
        name="tiny",
        seed=0,
        preview=PreviewConfig(cell_size=192),
        demo=DemoConfig(seconds=4.0, resolution=256, views=2),
    )
