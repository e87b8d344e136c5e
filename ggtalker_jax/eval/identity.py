"""``ggtalker eval``: an adapted identity driven by held-out clips, scored against them.

For each clip (never used in adaptation):

- **driven by its own audio**: the identity's A2E decoder samples the motion from the clip's
  speech; head pose, camera and background come from the clip itself. When the clip shows the
  adapted person, this is the *self-driven* case (another sentence) or the *cross-language*
  one (a language the adaptation clip did not speak), with image metrics against the clip's
  frames; a clip of another person is *cross-identity* (motion metrics only, against that
  person's motion).
- **novel views**: the same motion from each of the clip's extra cameras
  (``views/<k>/camera.npz``), scored on the head mask of that view (the background stays the
  main camera's, so the full-frame numbers of a novel view mostly measure the background).

Writes ``metrics.json``, ``grid_<case>.png`` (ground truth | ours | error) and
``video_<case>.mp4`` (ground truth | ours, with the sound) through
:func:`ggtalker_jax.eval.talking.write_eval_report`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np

from ggtalker_jax.errors import InputError
from ggtalker_jax.types import FLAME_PARAM_FIELDS, FlameParams

GRID_FRAMES = 6


def case_name(clip, adapted_meta: dict, folder: Path) -> str:
    """The case a clip makes: ``cross-identity`` (another person), ``cross-language`` (the
    person in a language the adaptation clip did not speak) or ``self-driven``."""
    language = clip.meta.get("language", "?")
    person = clip.meta.get("identity")
    if person is not None and person != adapted_meta.get("identity", person):
        return f"cross-identity {folder.name} ({language})"
    if language != adapted_meta.get("language", language):
        return f"cross-language {folder.name} ({language})"
    return f"self-driven {folder.name} ({language})"


def drive_by_clip(head, clip, key: jax.Array):
    """Drive ``head`` (a :class:`~ggtalker_jax.infer.TalkingHead`) by ``clip``: the motion
    sampled from its audio, head pose, camera and background from the clip itself, cut to
    the shorter of the two.

    Returns:
      ``(params [T], viewmat [T, 4, 4], K [T, 3, 3], frame index [T], the clip's own FLAME
      parameters [T])``.
    """
    motion = head.motion(clip.audio, key)
    t = min(motion["expression"].shape[0], clip.n_frames)
    motion = {k: v[:t] for k, v in motion.items()}
    params, viewmat, K, idx = head.drive(motion, pose_from=clip)
    truth = FlameParams(
        shape=np.asarray(clip.flame.shape),
        **{k: np.asarray(getattr(clip.flame, k))[:t] for k in FLAME_PARAM_FIELDS[1:]},
    )
    return params, viewmat, K, idx, truth


def view_degrees(view_viewmat: np.ndarray, main_viewmat: np.ndarray) -> float:
    """Yaw of a view's camera against the main one, degrees (from their optical axes)."""
    a, b = main_viewmat[2, :3], view_viewmat[2, :3]
    angle = math.degrees(math.atan2(b[0], b[2]) - math.atan2(a[0], a[2]))
    return (angle + 180.0) % 360.0 - 180.0


def _picks(t: int) -> np.ndarray:
    return np.linspace(0, t - 1, min(GRID_FRAMES, t)).round().astype(int)


def evaluate_identity(
    identity: str | Path,
    clips: Sequence[str | Path],
    out: str | Path,
    force: bool = False,
    key: jax.Array | None = None,
    progress: bool = True,
) -> dict:
    """Score an identity folder on held-out clips (module docstring).

    Args:
      identity: the folder ``ggtalker adapt`` wrote.
      clips: held-out clip folders (of the identity's resolution), or clips in memory.
      out: the output folder; an earlier evaluation there is replaced only with ``force``.
      key: the sampler's key (default: fixed).
      progress: show render progress.

    Returns:
      The report (``{"cases": {name: scores}, "identity": ..., "clips": [...]}``).

    Raises:
      InputError: an unusable identity folder, a clip that is missing or of another
        resolution, a clip adaptation used, an existing evaluation without ``force``.
    """
    from ggtalker_jax.data.adapt import clip_label
    from ggtalker_jax.data.clip import Clip, read_clip
    from ggtalker_jax.eval.talking import SideBySide, comparison_grid, score_case, write_eval_report
    from ggtalker_jax.infer import TalkingHead
    from ggtalker_jax.outputs import output_dir

    out = output_dir(out)
    if (out / "metrics.json").is_file() and not force:
        raise InputError(f"{out}: holds an earlier evaluation; pass --force to replace it")
    if not clips:
        raise InputError("eval: no clips given; pass --clips DIR [DIR ...]")
    head = TalkingHead.load(identity)
    used = {Path(c).resolve() for c in head.identity.info.get("clips", [])}
    model = head.head.template.model
    key = jax.random.key(0) if key is None else key
    cases, grids, videos = {}, {}, {}
    for n, source in enumerate(clips):
        if isinstance(source, Clip):
            clip, folder = source, clip_label(source, n)
        else:
            folder = Path(source)
            if folder.resolve() in used:
                raise InputError(
                    f"{folder}: was used to adapt this identity; evaluate on clips it never saw"
                )
            clip = read_clip(folder)
        name = case_name(clip, head.clip.meta, folder)
        params, viewmat, K, idx, true_params = drive_by_clip(head, clip, jax.random.fold_in(key, n))
        t = len(idx)
        own_video = not name.startswith("cross-identity")
        pred = head.render(params, viewmat, K, idx, pose_from=clip, progress=progress)
        cases[name] = score_case(
            model,
            pred,
            params,
            true_params,
            viewmat,
            K,
            true=clip.frames[:t] if own_video else None,
            head_mask=clip.head_mask[:t] if own_video else None,
        )
        picks = _picks(t)
        if own_video:
            grids[name] = comparison_grid(
                clip.frames[:t], pred, picks, [f"t={i / 25:.2f} s" for i in picks]
            )
            videos[name] = SideBySide([clip.frames[:t], pred], clip.audio, ["ground truth", "ours"])
        for _k, view in enumerate(clip.views):
            if view.frames is None or view.head_mask is None:
                continue
            vname = (
                f"novel view {view_degrees(view.viewmat[0], clip.viewmat[0]):+.0f}° {folder.name}"
            )
            vpred = head.render(
                params, view.viewmat[:t], view.K[:t], idx, pose_from=clip, progress=progress
            )
            cases[vname] = score_case(
                model,
                vpred,
                params,
                true_params,
                view.viewmat[:t],
                view.K[:t],
                true=view.frames[:t],
                head_mask=view.head_mask[:t],
            )
            grids[vname] = comparison_grid(
                view.frames[:t], vpred, picks, [f"t={i / 25:.2f} s" for i in picks]
            )
    report = {
        "identity": str(identity),
        "clips": [str(clip_label(c, k) if isinstance(c, Clip) else c) for k, c in enumerate(clips)],
        "cases": cases,
    }
    write_eval_report(out, report, grids, videos)
    return report
