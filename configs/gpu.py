"""One-GPU config (H100 and H200 alike: both Hopper).

Command: ``ggtalker demo --config gpu`` writes the demo at 512 x 512 (6 s, two extra cameras)
and ``out/head_preview.png`` with 512-pixel cells. Stages that need a GPU add their sections
here as they land.
"""

from ggtalker_jax.config import Config, DemoConfig, PreviewConfig


def get_config(arg: str | None = None) -> Config:
    del arg
    return Config(
        name="gpu",
        seed=0,
        preview=PreviewConfig(cell_size=512),
        demo=DemoConfig(seconds=6.0, resolution=512, views=2),
    )
