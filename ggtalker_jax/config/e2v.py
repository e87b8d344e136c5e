"""The Expression-Visual prior's section: the Gaussian head's UV map, the Identity-Gaussian
Generator, its training data and its training run (``ggtalker e2v train|eval``)."""

from __future__ import annotations

import dataclasses

from ggtalker_jax.config.base import check, section_from_dict, training_checks
from ggtalker_jax.config.world import MAX_IDENTITIES, MAX_SEED

BACKENDS = ("auto", "reference", "pallas", "xla")
"""The splatting backends (``ggtalker_jax.kernels.splat.checks.BACKENDS``, repeated here so
loading a config does not import the kernels and JAX; tests/test_config.py keeps them equal)."""


@dataclasses.dataclass(frozen=True)
class E2VDataConfig:
    """Where E2V batches come from and how their frames are drawn.

    A batch element is (reference image, target frame of the same identity, the target's
    FLAME parameters and camera, the head mask). The procedural source draws identities from
    the synthetic world's library under random expressions, jaw, head pose and cameras and
    renders them with the mesh renderer inside the input stage; a folder source reads clips in
    the clip format.

    Attributes:
      source: ``"procedural"`` or a folder of clips (searched recursively for clip folders).
      identities: training identities of the procedural pool.
      heldout: held-out identities (procedural; never trained on) for evaluation.
      seed: seed of the identity pool (identities ``0..identities-1`` train, the next
        ``heldout`` evaluate).
      image_size: side of the target frame in pixels.
      crop_size: side of the reference image the generator reads.
      texture_size: UV texture side of the procedural identities.
      max_yaw: largest target-camera yaw away from the front, radians (training spread).
      max_pitch: largest target-camera pitch, radians.
      source_max_yaw: largest reference-camera yaw, radians.
      expression_scale: std of the random expression coefficients.
      max_jaw: largest jaw opening (axis-angle x, radians).
      max_head_rotation: largest head rotation (global pose, each axis), radians.
    """

    source: str = "procedural"
    identities: int = 16
    heldout: int = 4
    seed: int = 1
    image_size: int = 64
    crop_size: int = 64
    texture_size: int = 128
    max_yaw: float = 0.6
    max_pitch: float = 0.25
    source_max_yaw: float = 0.25
    expression_scale: float = 1.0
    max_jaw: float = 0.3
    max_head_rotation: float = 0.15

    def __post_init__(self):
        checks = [
            (bool(self.source.strip()), "source", "'procedural' or a folder of clips"),
            (1 <= self.identities <= MAX_IDENTITIES, "identities", f"1 to {MAX_IDENTITIES}"),
            (0 <= self.heldout <= 1000, "heldout", "0 to 1000"),
            (0 <= self.seed <= MAX_SEED, "seed", f"an integer from 0 to {MAX_SEED}"),
            (
                16 <= self.image_size <= 1024 and self.image_size % 2 == 0,
                "image_size",
                "an even number from 16 to 1024",
            ),
            (
                16 <= self.crop_size <= 1024 and self.crop_size % 16 == 0,
                "crop_size",
                "a multiple of 16 from 16 to 1024 (the encoder halves it four times)",
            ),
            (32 <= self.texture_size <= 2048, "texture_size", "32 to 2048"),
            (0 <= self.max_yaw <= 1.6, "max_yaw", "0 to 1.6 radians"),
            (0 <= self.max_pitch <= 0.8, "max_pitch", "0 to 0.8 radians"),
            (0 <= self.source_max_yaw <= 1.6, "source_max_yaw", "0 to 1.6 radians"),
            (0 <= self.expression_scale <= 5, "expression_scale", "0 to 5"),
            (0 <= self.max_jaw <= 0.6, "max_jaw", "0 to 0.6 radians"),
            (0 <= self.max_head_rotation <= 0.8, "max_head_rotation", "0 to 0.8 radians"),
        ]
        for ok, name, want in checks:
            check(ok, f"e2v.data.{name}", getattr(self, name), want)


@dataclasses.dataclass(frozen=True)
class E2VConfig:
    """The Gaussian head and its prior.

    Attributes:
      uv_size: side of the UV Gaussian map (about 0.9·uv_size² Gaussians).
      encoder_widths: channels of the image encoder's stages (each halves the resolution).
      uv_widths: channels of the UV U-Net's levels (each halves the UV resolution).
      global_dim: size of the global image code broadcast to every texel.
      uv_embed_dim: channels of the learned per-texel embedding (what the image cannot show).
      offset_radius: largest position offset, in units of the triangle scale ``k``.
      max_log_scale: cap of the local log-scale (world scale = k·exp(s)).
      color_feature_dim, color_hidden, color_layers: the color MLP's per-texel feature size,
        hidden width and number of layers.
      batch_size: examples per step (over all devices).
      steps: optimizer steps.
      learning_rate, warmup_steps, weight_decay, grad_clip: AdamW with linear warm-up and
        cosine decay, global-norm clipping.
      ssim_weight: weight of D-SSIM next to L1.
      offset_weight: weight of relu(|local offset| - 0.5·offset_radius)² (keeps points near
        the surface).
      scale_weight: weight of relu(exp(s_local) - 0.6) (no giant splats).
      log_every, checkpoint_every, eval_every: intervals in steps.
      keep_checkpoints: how many of the newest checkpoints a run keeps.
      backend: splatting backend (``auto``: Pallas on GPU, XLA tiles on CPU).
      compute_dtype: ``float32`` or ``bfloat16`` for the networks' activations (the
        splatting is always float32).
      data: :class:`E2VDataConfig`.
    """

    uv_size: int = 32
    encoder_widths: tuple[int, ...] = (16, 32, 64, 64)
    uv_widths: tuple[int, ...] = (32, 64, 128)
    global_dim: int = 64
    uv_embed_dim: int = 8
    offset_radius: float = 1.0
    max_log_scale: float = 0.5
    color_feature_dim: int = 16
    color_hidden: int = 64
    color_layers: int = 3
    batch_size: int = 8
    steps: int = 200
    learning_rate: float = 1e-3
    warmup_steps: int = 20
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    ssim_weight: float = 0.2
    offset_weight: float = 0.01
    scale_weight: float = 1.0
    log_every: int = 10
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    eval_every: int = 0
    backend: str = "auto"
    compute_dtype: str = "float32"
    data: E2VDataConfig = dataclasses.field(default_factory=E2VDataConfig)

    def __post_init__(self):
        positive_ints = ("global_dim", "color_feature_dim", "color_hidden", "color_layers")
        checks = [
            (
                8 <= self.uv_size <= 1024 and self.uv_size % (2 ** len(self.uv_widths)) == 0,
                "uv_size",
                f"8 to 1024 and a multiple of {2 ** len(self.uv_widths)} (one halving per "
                "uv_widths level)",
            ),
            (
                len(self.encoder_widths) == 4 and min(self.encoder_widths) >= 1,
                "encoder_widths",
                "four positive widths",
            ),
            (
                1 <= len(self.uv_widths) <= 6 and min(self.uv_widths) >= 1,
                "uv_widths",
                "one to six positive widths",
            ),
            (0 <= self.uv_embed_dim <= 256, "uv_embed_dim", "0 to 256"),
            (0 < self.offset_radius <= 10, "offset_radius", "above 0, at most 10"),
            (-5 <= self.max_log_scale <= 3, "max_log_scale", "-5 to 3"),
            (0 <= self.ssim_weight <= 10, "ssim_weight", "0 to 10"),
            (0 <= self.offset_weight, "offset_weight", "0 or more"),
            (0 <= self.scale_weight, "scale_weight", "0 or more"),
            (self.backend in BACKENDS, "backend", "one of " + ", ".join(BACKENDS)),
        ]
        checks += [(getattr(self, n) >= 1, n, "1 or more") for n in positive_ints]
        for ok, name, want in checks + training_checks(self):
            check(ok, f"e2v.{name}", getattr(self, name), want)


def e2v_config_from_dict(values: dict) -> E2VConfig:
    """Rebuild an :class:`E2VConfig` from ``dataclasses.asdict`` output (a prior's
    ``prior.json`` or a run's ``config.json``), lists back to tuples, validated again.

    Raises:
      InputError: unknown or invalid fields (one line naming the first).
    """
    return section_from_dict(E2VConfig, values, "e2v", {"data": E2VDataConfig})
