"""Tiny config: CPU-sized, used by the tests and the demo.

Command: ``ggtalker demo --config tiny`` makes a held-out synthetic person at 128 x 128 (a
20 s English adaptation clip, a 4 s English sentence with one extra camera, a 4 s German one),
adapts the tiny shipped priors to it with what is left of a 6-minute budget, and writes
``out/demo.mp4`` (ground truth | ours | novel camera, with sound), ``out/demo_grid.png``,
``out/metrics.json``, ``out/identity/`` and ``out/world/``, in about 5.5 minutes on two free
CPU cores (360 s with another job beside it; head PSNR about 25 dB on the held-out sentences).

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
        demo=DemoConfig(adapt_seconds=20.0, heldout_seconds=4.0, resolution=128, views=1),
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
