"""The Body Inpainter's section: the U-Net that blends the rendered head into the torso and
background of the original frame, its training data and its prior's training run
(``ggtalker inpainter train|eval|export``).

The defaults are the tiny CPU prior's (``priors/shipped/inpainter_tiny``): 64² frames of 16
people, 400 steps of 8, about 3 minutes on 2 CPU cores (world, training and evaluation);
the gpu config overrides them for the shipped prior."""

from __future__ import annotations

import dataclasses

from ggtalker_jax.config.base import check, section_from_dict, training_checks
from ggtalker_jax.config.world import MAX_IDENTITIES, MAX_SEED


@dataclasses.dataclass(frozen=True)
class InpainterDataConfig:
    """Where inpainter examples come from.

    An example is one frame of a clip: the head drawn alone (the frame inside its head mask,
    shifted by a small jitter, its edge softened and its colour jittered, as the Gaussian head
    would draw it), the frame with a randomly dilated head region removed, and the frame
    itself as the target (:mod:`ggtalker_jax.data.inpainter`).

    Attributes:
      source: ``"procedural"`` (a world made in memory by the world library) or a folder of
        clips (``frames.mp4`` + ``masks.npz``; searched recursively).
      identities: people of the training world (procedural source).
      heldout: people never trained on (evaluation; a world of seed ``seed + 1``).
      seconds: length of each person's clip.
      image_size: frame side in pixels.
      seed: world seed (the held-out people use ``seed + 1``).
      min_dilation, max_dilation: range of the head mask's dilation, as a fraction of the
        frame side (10-30 px at 512² is 0.02-0.06).
      max_jitter: largest shift of the drawn head against the frame, fraction of the side.
      color_jitter: largest per-channel gain change and offset of the drawn head's colour.
    """

    source: str = "procedural"
    identities: int = 16
    heldout: int = 4
    seconds: float = 2.0
    image_size: int = 64
    seed: int = 3
    min_dilation: float = 0.02
    max_dilation: float = 0.06
    max_jitter: float = 0.01
    color_jitter: float = 0.03

    def __post_init__(self):
        checks = [
            (bool(self.source), "source", "'procedural' or a folder of clips"),
            (1 <= self.identities <= MAX_IDENTITIES, "identities", f"1 to {MAX_IDENTITIES}"),
            (0 <= self.heldout <= 1000, "heldout", "0 to 1000"),
            (0.4 <= self.seconds <= 600, "seconds", "0.4 to 600"),
            (
                32 <= self.image_size <= 2048 and self.image_size % 2 == 0,
                "image_size",
                "an even number from 32 to 2048 (and a multiple of 2**(len(widths) - 1))",
            ),
            (0 <= self.seed <= MAX_SEED, "seed", f"an integer from 0 to {MAX_SEED}"),
            (0 <= self.min_dilation <= 0.5, "min_dilation", "0 to 0.5"),
            (self.min_dilation <= self.max_dilation <= 0.5, "max_dilation", "min_dilation to 0.5"),
            (0 <= self.max_jitter <= 0.1, "max_jitter", "0 to 0.1"),
            (0 <= self.color_jitter <= 0.5, "color_jitter", "0 to 0.5"),
        ]
        for ok, name, want in checks:
            check(ok, f"inpainter.data.{name}", getattr(self, name), want)


@dataclasses.dataclass(frozen=True)
class InpainterConfig:
    """The Body Inpainter and its prior.

    Attributes:
      widths: channels of the U-Net's levels; each level after the first halves the
        resolution (five widths = four downsamplings).
      batch_size, steps, learning_rate, warmup_steps, weight_decay, grad_clip: the prior's
        AdamW run (linear warm-up, cosine decay, global-norm clipping).
      ssim_weight: weight of D-SSIM next to L1.
      log_every, checkpoint_every, eval_every: intervals in steps.
      keep_checkpoints: how many of the newest checkpoints a run keeps.
      compute_dtype: ``float32`` or ``bfloat16`` activations.
      data: :class:`InpainterDataConfig`.
    """

    widths: tuple[int, ...] = (8, 16, 32, 32, 32)
    batch_size: int = 8
    steps: int = 400
    learning_rate: float = 3e-3
    warmup_steps: int = 20
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    ssim_weight: float = 0.2
    log_every: int = 20
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    eval_every: int = 0
    compute_dtype: str = "float32"
    data: InpainterDataConfig = dataclasses.field(default_factory=InpainterDataConfig)

    def __post_init__(self):
        checks = [
            (
                2 <= len(self.widths) <= 6 and min(self.widths) >= 1,
                "widths",
                "two to six positive widths",
            ),
            (
                self.data.image_size % (2 ** (len(self.widths) - 1)) == 0,
                "widths",
                f"at most {_levels(self.data.image_size) + 1} widths: the U-Net halves "
                f"inpainter.data.image_size={self.data.image_size} once per width after the "
                "first",
            ),
            (0 <= self.ssim_weight <= 10, "ssim_weight", "0 to 10"),
        ]
        for ok, name, want in checks + training_checks(self):
            check(ok, f"inpainter.{name}", getattr(self, name), want)


def _levels(size: int) -> int:
    """How many times ``size`` halves evenly (its power-of-two factor's exponent)."""
    n = 0
    while size % 2 == 0 and size > 1:
        size, n = size // 2, n + 1
    return n


def inpainter_config_from_dict(values: dict) -> InpainterConfig:
    """Rebuild an :class:`InpainterConfig` from ``dataclasses.asdict`` output (a prior's
    ``prior.json`` or a run's ``config.json``), validated again.

    Raises:
      InputError: unknown or invalid fields (one line naming the first).
    """
    return section_from_dict(InpainterConfig, values, "inpainter", {"data": InpainterDataConfig})
