"""Customized adaptation's section: fitting the priors to one person's clip
(``ggtalker adapt``), and how inference draws that person (``ggtalker infer``)."""

from __future__ import annotations

import dataclasses

from ggtalker_jax.config.base import check, section_from_dict

PHASES = ("head", "joint", "inpainter", "a2e")
"""The optimised phases, in order (the generator's map comes first, unoptimised)."""


@dataclasses.dataclass(frozen=True)
class AdaptConfig:
    """Adaptation of the shipped priors to one identity.

    After the Identity-Gaussian Generator predicts the map from a reference frame, four
    phases run, each one jitted step over a batch of the clip's frames, until its step count,
    its share of the time budget or a plateau of the held-out PSNR:

    - ``head``: the map as a free tensor (per-attribute learning rates, 3DGS-style) and the
      color MLP, against the clip's head pixels;
    - ``joint``: the same, plus per-frame corrections of the clip's FLAME expression, jaw,
      pose and translation (tracking refinement);
    - ``inpainter``: the Body Inpainter on the adapted head drawn into the clip's frames;
    - ``a2e``: the Audio-Expression decoder on the clip's audio and motion (speaking style),
      early-stopped on the clip's held-out tail.

    Attributes:
      priors: the shipped priors adaptation starts from, as (E2V, A2E, inpainter) names
        (``ggtalker adapt --priors DIR`` replaces them with ``DIR/e2v``, ``DIR/a2e``,
        ``DIR/inpainter``).
      uv_size: side of the identity's UV map; the prior's map is upsampled to it (a finer map
        than the prior's draws finer texture). 0: the prior's own size.
      batch_frames: frames per step.
      heldout_every: every ``k``-th frame of the clip is held out (validation of the head and
        inpainter phases, never trained on).
      a2e_heldout: fraction of the clip's audio, at its end, held out for the ``a2e`` phase.
      minutes: default time budget of the whole adaptation (``--minutes``).
      budget: shares of the budget per phase, in :data:`PHASES` order.
      steps: most steps per phase, in :data:`PHASES` order (0 skips the phase).
      eval_every: steps between held-out evaluations (PSNR curve, plateau test).
      patience: evaluations without a gain of ``min_gain_db`` before a phase stops.
      min_gain_db: the smallest held-out PSNR gain that counts as progress.
      checkpoint_every: steps between checkpoints (a killed run resumes from the last).
      lr_offset, lr_scale, lr_rotation, lr_color, lr_opacity: Adam learning rates of the
        map's raw channels (position offset, log-scale, rotation, colour logit, opacity
        logit).
      lr_color_mlp: the color MLP (its features and layers).
      lr_expression, lr_pose, lr_translation: the per-frame FLAME corrections (expression
        and jaw; global, neck and eye pose; translation).
      lr_inpainter: the Body Inpainter's fine-tuning.
      lr_a2e: the A2E decoder's fine-tuning (the paper's 1e-5).
      ssim_weight: D-SSIM next to L1 in the head and inpainter losses.
      offset_weight, scale_weight: the map regularisers (as in E2V training).
      flame_weight: L2 pull of the FLAME corrections towards zero.
      reference_frame: the frame the generator reads; -1 picks the most frontal training
        frame with a closed mouth.
      seed: seed of the frame draws.
      infer_batch: frames per jitted chunk of inference (``TalkingHead``).
    """

    priors: tuple[str, ...] = ("e2v", "a2e", "inpainter")
    uv_size: int = 64
    batch_frames: int = 2
    heldout_every: int = 10
    a2e_heldout: float = 0.2
    minutes: float = 3.0
    budget: tuple[float, ...] = (0.4, 0.3, 0.2, 0.1)
    steps: tuple[int, ...] = (4000, 4000, 1000, 200)
    eval_every: int = 100
    patience: int = 4
    min_gain_db: float = 0.05
    checkpoint_every: int = 200
    lr_offset: float = 1e-3
    lr_scale: float = 5e-3
    lr_rotation: float = 1e-3
    lr_color: float = 1e-2
    lr_opacity: float = 5e-2
    lr_color_mlp: float = 1e-3
    lr_expression: float = 1e-3
    lr_pose: float = 1e-5
    lr_translation: float = 1e-6
    lr_inpainter: float = 2e-4
    lr_a2e: float = 1e-5
    ssim_weight: float = 0.2
    offset_weight: float = 0.01
    scale_weight: float = 1.0
    flame_weight: float = 1.0
    reference_frame: int = -1
    seed: int = 0
    infer_batch: int = 8

    def __post_init__(self):
        lrs = [f.name for f in dataclasses.fields(self) if f.name.startswith("lr_")]
        checks = [
            (
                len(self.priors) == 3 and all(isinstance(p, str) and p for p in self.priors),
                "priors",
                "three shipped prior names (E2V, A2E, inpainter)",
            ),
            (self.uv_size == 0 or 8 <= self.uv_size <= 1024, "uv_size", "0 or 8 to 1024"),
            (1 <= self.batch_frames <= 256, "batch_frames", "1 to 256"),
            (2 <= self.heldout_every <= 1000, "heldout_every", "2 to 1000"),
            (0 < self.a2e_heldout < 1, "a2e_heldout", "between 0 and 1"),
            (0 < self.minutes <= 24 * 60, "minutes", "above 0, at most 1440"),
            (
                len(self.budget) == len(PHASES) and min(self.budget) >= 0 and sum(self.budget) > 0,
                "budget",
                f"{len(PHASES)} non-negative shares ({', '.join(PHASES)}) with a positive sum",
            ),
            (
                len(self.steps) == len(PHASES) and min(self.steps) >= 0,
                "steps",
                f"{len(PHASES)} step counts >= 0 ({', '.join(PHASES)})",
            ),
            (1 <= self.eval_every, "eval_every", "1 or more"),
            (1 <= self.patience, "patience", "1 or more"),
            (0 <= self.min_gain_db, "min_gain_db", "0 or more"),
            (1 <= self.checkpoint_every, "checkpoint_every", "1 or more"),
            (0 <= self.ssim_weight <= 10, "ssim_weight", "0 to 10"),
            (0 <= self.offset_weight, "offset_weight", "0 or more"),
            (0 <= self.scale_weight, "scale_weight", "0 or more"),
            (0 <= self.flame_weight, "flame_weight", "0 or more"),
            (-1 <= self.reference_frame, "reference_frame", "-1 (auto) or a frame index"),
            (0 <= self.seed <= 2**32 - 1, "seed", "an integer from 0 to 2**32-1"),
            (1 <= self.infer_batch <= 1024, "infer_batch", "1 to 1024"),
        ]
        checks += [(0 <= getattr(self, n) <= 1, n, "0 to 1") for n in lrs]
        for ok, name, want in checks:
            check(ok, f"adapt.{name}", getattr(self, name), want)

    def phase_steps(self, phase: str) -> int:
        """Most steps of ``phase``."""
        return self.steps[PHASES.index(phase)]

    def phase_seconds(self, phase: str, minutes: float) -> float:
        """``phase``'s share of a ``minutes`` budget, in seconds."""
        share = self.budget[PHASES.index(phase)] / sum(self.budget)
        return 60.0 * minutes * share


def adapt_config_from_dict(values: dict) -> AdaptConfig:
    """Rebuild an :class:`AdaptConfig` from ``dataclasses.asdict`` output, validated again.

    Raises:
      InputError: unknown or invalid fields (one line naming the first).
    """
    return section_from_dict(AdaptConfig, values, "adapt", {})
