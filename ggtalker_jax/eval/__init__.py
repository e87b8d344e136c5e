"""Evaluation: measurements on clips (lip sync against the sound, landmark consistency across
cameras) and reports people open (contact sheets); image metrics join here as the models
land."""

from ggtalker_jax.eval.lipsync import (
    INNER_LIP_LANDMARKS,
    inner_lip_distance,
    lip_energy_report,
    silent_frames,
)
from ggtalker_jax.eval.report import contact_sheet
from ggtalker_jax.eval.views import landmarks_on_mask, project_landmarks

__all__ = [
    "INNER_LIP_LANDMARKS",
    "contact_sheet",
    "inner_lip_distance",
    "landmarks_on_mask",
    "lip_energy_report",
    "project_landmarks",
    "silent_frames",
]
