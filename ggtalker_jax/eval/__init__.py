"""Evaluation: image metrics (PSNR, SSIM, masked), measurements on clips (lip sync against
the sound, landmark consistency across cameras), reports people open (contact sheets), and
each prior's evaluation (:mod:`ggtalker_jax.eval.e2v`)."""

from ggtalker_jax.eval.lipsync import (
    INNER_LIP_LANDMARKS,
    inner_lip_distance,
    lip_energy_report,
    silent_frames,
)
from ggtalker_jax.eval.metrics import masked_psnr, masked_ssim, psnr, ssim, ssim_map
from ggtalker_jax.eval.report import contact_sheet
from ggtalker_jax.eval.views import landmarks_on_mask, project_landmarks

__all__ = [
    "INNER_LIP_LANDMARKS",
    "contact_sheet",
    "inner_lip_distance",
    "landmarks_on_mask",
    "lip_energy_report",
    "masked_psnr",
    "masked_ssim",
    "project_landmarks",
    "psnr",
    "silent_frames",
    "ssim",
    "ssim_map",
]
