"""Tiny config: CPU-sized, used by the tests and the demo.

Command: ``ggtalker demo --config tiny`` builds a one-clip synthetic world (4 s of English
speech at 256 x 256, two extra cameras) and writes ``out/demo.mp4`` (main and novel views side
by side, with sound), ``out/demo_grid.png``, ``out/metrics.json`` and ``out/head_preview.png``
(a 6 x 4 grid of 192-pixel cells), in well under a minute on two CPU cores.

``ggtalker e2v train --config tiny --workdir DIR`` trains the tiny E2V prior (32² UV map,
64-pixel frames, 32 procedural identities, 300 steps of 8) on CPU; ``ggtalker e2v eval
--workdir DIR`` scores it on 16 held-out identities.
"""

from ggtalker_jax.config import (
    A2EConfig,
    A2EDataConfig,
    AdaptConfig,
    Config,
    DemoConfig,
    E2VConfig,
    E2VDataConfig,
    PreviewConfig,
)


def get_config(arg: str | None = None) -> Config:
    del arg  # no variants yet
    return Config(
        name="tiny",
        seed=0,
        preview=PreviewConfig(cell_size=192),
        demo=DemoConfig(seconds=4.0, resolution=256, views=2),
        # The tiny E2V prior: a 32² UV map (about 1000 Gaussians) on 64-pixel frames.
        e2v=E2VConfig(
            uv_size=32,
            encoder_widths=(8, 16, 32, 32),
            uv_widths=(16, 32, 64),
            global_dim=32,
            uv_embed_dim=8,
            color_hidden=32,
            color_layers=2,
            batch_size=8,
            steps=300,
            learning_rate=2e-3,
            warmup_steps=20,
            log_every=10,
            checkpoint_every=50,
            eval_every=100,
            data=E2VDataConfig(
                identities=32, heldout=16, image_size=64, crop_size=64, texture_size=128
            ),
        ),
        # The tiny A2E prior: a 2-layer, 64-wide denoiser over 2 s windows, 16 speakers.
        a2e=A2EConfig(
            audio_dim=64,
            audio_layers=1,
            d_model=64,
            layers=2,
            heads=4,
            identity_dim=16,
            window=50,
            context=5,
            diffusion_steps=100,
            sample_steps=10,
            batch_size=16,
            steps=800,
            learning_rate=1e-3,
            warmup_steps=40,
            log_every=20,
            checkpoint_every=200,
            data=A2EDataConfig(
                identities=16, clips_per_identity=2, seconds=6.0, heldout_identities=4
            ),
        ),
        # Adaptation from the tiny priors: a 64² map (about 3.7k Gaussians), two frames a step.
        adapt=AdaptConfig(
            priors=("e2v_tiny", "a2e_tiny", "inpainter_tiny"),
            uv_size=64,
            batch_frames=2,
            minutes=2.0,
            eval_every=50,
            checkpoint_every=100,
        ),
    )
