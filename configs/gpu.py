"""One-GPU config (H100 and H200 alike: both Hopper).

Command: ``ggtalker demo --config gpu`` writes the demo at 512 x 512 (6 s, two extra cameras)
and ``out/head_preview.png`` with 512-pixel cells.

``ggtalker e2v train --config gpu --workdir DIR`` trains the shipped E2V prior (128² UV map,
256-pixel frames, 256 procedural identities); BENCHMARKS.md records the run.
"""

from ggtalker_jax.config import Config, DemoConfig, E2VConfig, E2VDataConfig, PreviewConfig


def get_config(arg: str | None = None) -> Config:
    del arg
    return Config(
        name="gpu",
        seed=0,
        preview=PreviewConfig(cell_size=512),
        demo=DemoConfig(seconds=6.0, resolution=512, views=2),
        # The shipped E2V prior: a 128² UV map (about 15k Gaussians) on 256-pixel frames,
        # 256 procedural identities, trained in one device call.
        e2v=E2VConfig(
            uv_size=128,
            encoder_widths=(32, 64, 128, 192),
            uv_widths=(48, 96, 192),
            global_dim=128,
            uv_embed_dim=16,
            batch_size=32,
            steps=2000,
            learning_rate=1e-3,
            warmup_steps=100,
            log_every=50,
            checkpoint_every=250,
            eval_every=500,
            compute_dtype="bfloat16",
            data=E2VDataConfig(
                identities=256, heldout=16, image_size=256, crop_size=256, texture_size=512
            ),
        ),
    )
