"""``ggtalker demo``: the main job on the embedded default, as a library function.

1. **A person** (:func:`~ggtalker_jax.world.person.write_person`): identity 0 of world
   ``config.seed`` (0 in the shipped configs: the priors trained on seeds 1 to 4), speaking
   three clips:
   ``adapt_<language>`` (the adaptation clip, main camera only), ``heldout_<language>`` (a
   sentence adaptation never hears, with ``demo.views`` extra cameras) and
   ``heldout_<other_language>`` (a sentence in another language).
2. **Adaptation** (:func:`~ggtalker_jax.train.adapt.adapt_identity`) of the shipped priors to
   the adaptation clip, with what is left of the demo's time budget (``demo.minutes`` minus
   the time spent so far minus ``demo.reserve_minutes``).
3. **Speaking** (:class:`~ggtalker_jax.infer.TalkingHead`): the identity says each held-out
   sentence from its audio alone (its A2E decoder makes the motion; head pose, camera and
   background come from that clip), once from the clip's camera and once from a novel one
   (the clip's first extra camera, or the main camera orbited by 30 degrees), and each case
   with ground truth is scored (:func:`~ggtalker_jax.eval.talking.score_case`).
4. **Outputs**: ``demo.mp4`` (ground truth | ours | ours from the novel camera, side by side,
   with the sound: the held-out sentence, then the other-language one appended in the same
   three columns), ``demo_grid.png`` (ground truth | ours | error at ``demo.grid_frames``
   instants of each sentence), ``metrics.json`` (the cases' scores, the adaptation's phases,
   the timings), ``config.json``, and the ``world/`` and ``identity/`` folders the demo made
   (``ggtalker infer --identity DIR/identity`` makes the person say anything else).

Everything is made in ``DIR/demo.partial/`` and moved into ``DIR`` when complete,
``metrics.json`` last; a rerun after a kill keeps the finished clips and the adaptation's
checkpoints (same settings), so it carries on instead of starting over.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np

from ggtalker_jax.config import Config
from ggtalker_jax.errors import InputError
from ggtalker_jax.outputs import (
    atomic_file,
    exclusive,
    is_partial,
    output_dir,
    remove_path,
    require_memory,
    write_text_atomic,
)

# Moved into place in this order once all are complete; metrics.json, last, marks a finished
# demo.
OUTPUTS = ("world", "identity", "config.json", "demo_grid.png", "demo.mp4", "metrics.json")
STAGE = "demo.partial"
_STAGE_MARK = "stage.json"
_WORLD_MARK = "demo_world.json"
PERSON = 0
"""The identity index of the demo's person in world ``config.seed``."""
NOVEL_YAW = 30.0
"""Degrees the main camera is orbited by when a sentence has no extra camera."""
MIN_ADAPT_MINUTES = 0.25
"""Adaptation's floor when the world took (almost) the whole budget."""
COLUMNS = ("ground truth", "ours", "ours, novel camera")


def _timed(timings: dict, name: str):
    class _Timer:
        def __enter__(self):
            self.start = time.perf_counter()

        def __exit__(self, *exc):
            timings[name] = round(time.perf_counter() - self.start, 2)

    return _Timer()


def person_specs(config: Config):
    """The demo's three :class:`~ggtalker_jax.world.person.ClipSpec`: adaptation, held-out
    sentence, held-out sentence in the other language (each its own random stream)."""
    from ggtalker_jax.world.person import ClipSpec

    d = config.demo
    return (
        ClipSpec(f"adapt_{d.language}", d.adapt_seconds, d.language, 0, 0),
        ClipSpec(f"heldout_{d.language}", d.heldout_seconds, d.language, 1, d.views),
        ClipSpec(f"heldout_{d.other_language}", d.heldout_seconds, d.other_language, 2, 0),
    )


# -- what may be replaced ----------------------------------------------------------------------


def _is_demo_world(path: Path) -> bool:
    """A folder the demo's step 1 wrote: its mark, clip folders and unfinished clips only."""
    from ggtalker_jax.data.clip import holds_only_clip_files
    from ggtalker_jax.world.folder import is_world

    if path.is_symlink() or not path.is_dir():
        return False
    if is_world(path):  # what earlier versions of the demo wrote
        return True
    try:
        mark = json.loads((path / _WORLD_MARK).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    if not isinstance(mark, dict) or mark.get("ggtalker") != "demo world":
        return False
    for entry in path.iterdir():
        clip = entry.is_dir() and not entry.is_symlink() and holds_only_clip_files(entry)
        if entry.name != _WORLD_MARK and not (clip or is_partial(entry)):
            return False
    return True


def _is_identity(path: Path) -> bool:
    """A finished identity folder holding only what adaptation writes."""
    from ggtalker_jax.identity import INFO_NAME, KIND, OWNED

    if path.is_symlink() or not path.is_dir():
        return False
    try:
        info = json.loads((path / INFO_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    if not isinstance(info, dict) or info.get("kind") != KIND:
        return False
    return all(e.name in OWNED or is_partial(e) for e in path.iterdir())


def _is_own_output(path: Path) -> bool:
    """Whether an existing ``DIR/<output name>`` is something a demo writes (and so may be
    replaced): a file for the file names, a demo world or a finished identity folder."""
    if path.is_symlink():
        return False
    if path.name == "world":
        return _is_demo_world(path)
    if path.name == "identity":
        return _is_identity(path)
    return path.is_file()


def _is_stage(stage: Path) -> bool:
    """Whether ``stage`` is the demo's staging folder: marked by ``stage.json``, or still
    empty or holding only the mark's temporary file (a run stopped right after making it)."""
    if stage.is_symlink() or not stage.is_dir():
        return False
    if (stage / _STAGE_MARK).is_file():
        return True
    return all(is_partial(p) and p.name.startswith(".stage.") for p in stage.iterdir())


def _claim(out_dir: Path, force: bool) -> Path:
    """Check ``out_dir`` before any work and return the staging folder.

    Existing demo outputs are replaced only with ``force``, except those an interrupted run
    of the demo moved in (its staging folder is still there and no ``metrics.json`` says it
    finished). A path with an output's name that the demo would not write (a folder named
    ``demo.mp4``, a ``world`` or ``identity`` holding a user's files) is refused, ``force``
    or not.
    """
    from ggtalker_jax.world.folder import enclosing_world, read_world_stamp

    world = out_dir if read_world_stamp(out_dir) is not None else enclosing_world(out_dir)
    if world:
        raise InputError(
            f"{out_dir}: is or lies inside the world {world}; the demo writes its own world "
            "and outputs, so choose an --out outside it"
        )
    stage = out_dir / STAGE
    if (stage.exists() or stage.is_symlink()) and not _is_stage(stage):
        raise InputError(
            f"{stage}: exists but is not a ggtalker demo's staging folder; move it away or "
            "choose another --out"
        )
    existing = [
        out_dir / n for n in OUTPUTS if (out_dir / n).exists() or (out_dir / n).is_symlink()
    ]
    for path in existing:
        if not _is_own_output(path):
            raise InputError(
                f"{path}: is not a ggtalker demo output, so the demo will not replace it, "
                "even with --force; move it away or choose another --out"
            )
    interrupted = stage.is_dir() and not (out_dir / "metrics.json").exists()
    if existing and not force and not interrupted:
        shown = next((p for p in existing if p.name == "demo.mp4"), existing[0])
        raise InputError(
            f"{shown}: already exists; pass --force to overwrite the demo outputs, or choose "
            "another --out"
        )
    return stage


# -- staging -------------------------------------------------------------------------------


def _read_mark(path: Path) -> dict:
    try:
        mark = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return mark if isinstance(mark, dict) else {}


def _open_stage(stage: Path, person: dict, adaptation: dict) -> None:
    """Create the staging folder, keeping what an interrupted run of the same settings left
    (it resumes): its world (the same ``person``), and with it the identity adapted from that
    world with the same ``adaptation`` (config and priors). Everything else is rebuilt."""
    stage.mkdir(parents=True, exist_ok=True)
    world = stage / "world"
    keep_world = _read_mark(world / _WORLD_MARK).get("person") == person
    keep_identity = keep_world and _read_mark(stage / _STAGE_MARK).get("adaptation") == adaptation
    mark = {"ggtalker": "demo staging", "adaptation": adaptation}
    write_text_atomic(stage / _STAGE_MARK, json.dumps(mark) + "\n")
    kept = {_STAGE_MARK} | ({"world"} if keep_world else set())
    kept |= {"identity"} if keep_identity else set()
    for entry in stage.iterdir():
        if entry.name not in kept:
            remove_path(entry)


def _publish(stage: Path, out_dir: Path) -> None:
    """Move the finished outputs from ``stage`` into ``out_dir``, ``metrics.json`` last, then
    remove ``stage``. Files are replaced by one rename each; folders by two.

    An earlier demo's ``metrics.json`` goes first: a kill while publishing must not leave
    new outputs beside an old marker that says the set is finished.
    """
    (out_dir / "metrics.json").unlink(missing_ok=True)
    for name in OUTPUTS:
        src, dst = stage / name, out_dir / name
        if src.is_dir():
            old = stage / f"{name}.old"
            remove_path(old)
            if dst.exists():
                dst.rename(old)
            src.rename(dst)
            remove_path(old)
        else:
            os.replace(src, dst)
    remove_path(stage)


# -- the run -------------------------------------------------------------------------------


def run_demo(
    out_dir: str | Path,
    config: Config,
    force: bool = False,
    progress: bool = True,
    priors: str | Path | None = None,
) -> dict:
    """Make the demo's person, adapt the priors to it, make it speak, write the outputs.

    Everything is made in ``out_dir/demo.partial/`` and moved into ``out_dir`` when complete
    (module docstring), so a killed demo leaves no output that looks finished, and its rerun
    (same command, no ``--force``) carries on.

    Args:
      out_dir: output folder (created); an existing output is refused unless ``force``.
      config: the resolved config (``config.demo`` sizes the person and the time budget,
        ``config.adapt`` the adaptation).
      force: replace existing outputs (only the demo's own: see :func:`_claim`).
      progress: show progress bars.
      priors: a folder with ``e2v/``, ``a2e/``, ``inpainter/`` (default: the shipped
        priors ``config.adapt.priors`` names).

    Returns:
      The metrics dict (also written to ``out_dir/metrics.json``).

    Raises:
      InputError: an output exists and ``force`` is not set, an output path holds something
        the demo did not write, an unwritable ``out_dir``, an unknown voice, a missing
        prior, or a demo too large for the free memory; another demo writing ``out_dir``.
    """
    from ggtalker_jax.flame import load_flame
    from ggtalker_jax.train.adapt import resolve_priors
    from ggtalker_jax.world.speech import check_voice

    start = time.perf_counter()
    # Everything that can be refused is refused before the lock creates the folder.
    out_dir = output_dir(out_dir)
    _claim(out_dir, force)
    check_voice(config.demo.language)
    check_voice(config.demo.other_language)
    if config.demo.other_language == config.demo.language:
        raise InputError(
            f"config: demo.other_language={config.demo.other_language!r} is demo.language too; "
            "pick another voice for the cross-language sentence (--set demo.other_language=de)"
        )
    resolve_priors(config.adapt, priors)
    _check_demo_memory(config)
    model = load_flame(config.flame_model or None)
    with exclusive(out_dir, "demo"):
        stage = _claim(out_dir, force)  # again: another run may have finished meanwhile
        # What makes a staged world, and an identity adapted from it, the same as this run's.
        person = {"specs": [dataclasses.asdict(s) for s in person_specs(config)]}
        person |= {"resolution": config.demo.resolution, "seed": config.seed}
        person |= {"identity": PERSON, "model": model.source}
        adaptation = {"config": config.to_json(), "priors": priors and str(priors)}
        _open_stage(stage, json.loads(json.dumps(person)), adaptation)
        metrics = _make_outputs(stage, out_dir, model, config, person, priors, start, progress)
        _publish(stage, out_dir)
    return metrics


def _check_demo_memory(config: Config) -> None:
    from ggtalker_jax.types import FPS

    d = config.demo
    frames = round(d.adapt_seconds * FPS) + round(d.heldout_seconds * FPS) * (2 + d.views)
    # Every clip held as frames and masks (twice over while adapting: host and device), the
    # adaptation clip's render targets, and the video's columns for both sentences.
    pixels = d.resolution**2
    need = 2 * frames * pixels * 5 + 2 * round(d.heldout_seconds * FPS) * 3 * pixels * 3 * 2
    require_memory(
        need,
        f"demo: {frames} frames at {d.resolution}x{d.resolution}",
        "lower demo.adapt_seconds, demo.heldout_seconds, demo.resolution or demo.views "
        "(--set demo.resolution=128)",
    )


def _make_outputs(stage, out_dir, model, config, person, priors, start, progress) -> dict:
    """Write every demo output into ``stage``; returns the metrics (paths as published)."""
    from ggtalker_jax.world.person import write_person

    timings: dict[str, float] = {}
    with _timed(timings, "world_s"):
        world = stage / "world"
        world.mkdir(exist_ok=True)
        write_text_atomic(
            world / _WORLD_MARK, json.dumps({"ggtalker": "demo world", "person": person}) + "\n"
        )
        specs = person_specs(config)
        clips = write_person(
            world, model, specs, config.demo.resolution, config.seed, PERSON, progress=progress
        )
    with _timed(timings, "adapt_s"):
        adaptation = _adapt(
            stage / "identity", clips[specs[0].name], config, priors, start, progress
        )
    with _timed(timings, "speak_s"):
        heldout = [clips[s.name] for s in specs[1:]]
        cases, spoken = _speak(stage / "identity", heldout, config, progress)
    with _timed(timings, "video_s"):
        video = {"path": str(out_dir / "demo.mp4"), **_write_video(stage / "demo.mp4", spoken)}
    with _timed(timings, "grid_s"):
        _write_grid(stage / "demo_grid.png", spoken, config.demo.grid_frames)
    timings["total_s"] = round(time.perf_counter() - start, 2)
    metrics = {
        "person": {
            "world": str(out_dir / "world"),
            "seed": config.seed,
            "identity": PERSON,
            "resolution": [config.demo.resolution] * 2,
            "clips": {s.name: dataclasses.asdict(s) for s in specs},
        },
        "identity": str(out_dir / "identity"),
        "adaptation": adaptation,
        "cases": cases,
        "video": video,
        "grid": str(out_dir / "demo_grid.png"),
        "budget_minutes": config.demo.minutes,
        "timings_s": timings,
        "config": config.name,
    }
    write_text_atomic(stage / "config.json", config.to_json() + "\n")
    text = json.dumps(metrics, indent=2, allow_nan=False) + "\n"
    write_text_atomic(stage / "metrics.json", text)
    return metrics


def _adapt(identity: Path, clip: Path, config: Config, priors, start: float, progress) -> dict:
    """Adapt (or resume, or keep a finished identity an interrupted run left) with what is
    left of the budget; returns adaptation's record for the metrics."""
    from ggtalker_jax.identity import INFO_NAME
    from ggtalker_jax.train.adapt import adapt_identity

    resumed = (identity / INFO_NAME).is_file()
    if not resumed:
        d = config.demo
        left = d.minutes - (time.perf_counter() - start) / 60.0 - d.reserve_minutes
        minutes = max(left, MIN_ADAPT_MINUTES)
        adapt_identity([clip], identity, config, priors, minutes, progress=progress)
    record = json.loads((identity / "metrics.json").read_text(encoding="utf-8"))
    return {
        "budget_minutes": round(record["minutes"], 3),
        "seconds": record["seconds"],
        "kept_from_an_interrupted_run": resumed,
        "phases": {
            name: {
                **{k: phase[k] for k in ("steps", "seconds", "stop")},
                "best": None if phase["best"] is None else round(phase["best"], 4),
            }
            for name, phase in record["phases"].items()
        },
    }


# -- speaking and scoring --------------------------------------------------------------------


@dataclasses.dataclass
class Spoken:
    """One held-out sentence said by the identity: the clip, and ``[T, H, W, 3]`` uint8
    frames of the ground truth, ours and ours from the novel camera (``T`` frames)."""

    name: str
    language: str
    audio: np.ndarray  # [T * samples per frame] float32, 16 kHz
    truth: np.ndarray
    ours: np.ndarray
    novel: np.ndarray
    novel_camera: str


SCORES = ("psnr", "ssim", "head_psnr", "head_ssim", "lip_vertex_error_mm", "opening_r")
SCORES += ("opening_mm", "true_opening_mm", "landmark_px", "frames")


def _plain_scores(scores: dict) -> dict:
    """The :data:`SCORES` of a case, rounded, ``None`` for a missing or non-finite value."""
    out = {}
    for k in SCORES:
        v = scores.get(k)
        v = None if v is None or not np.isfinite(v) else v
        out[k] = v if v is None or k == "frames" else round(float(v), 4)
    return out


def _speak(identity: Path, folders: list[Path], config: Config, progress: bool):
    """Each held-out clip said by the identity, from its camera and a novel one, scored;
    returns ``({case name: scores}, [Spoken])``."""
    import jax

    from ggtalker_jax.data.clip import read_clip
    from ggtalker_jax.eval.identity import case_name, drive_by_clip
    from ggtalker_jax.eval.talking import score_case
    from ggtalker_jax.infer import CameraSpec, TalkingHead
    from ggtalker_jax.types import FPS, SAMPLE_RATE

    head = TalkingHead.load(identity)
    model = head.head.template.model
    key = jax.random.key(config.seed)
    cases, spoken = {}, []
    for n, folder in enumerate(folders):
        clip = read_clip(folder)
        params, viewmat, K, idx, truth = drive_by_clip(head, clip, jax.random.fold_in(key, n))
        t = len(idx)
        ours = head.render(params, viewmat, K, idx, pose_from=clip, progress=progress)
        cases[case_name(clip, head.clip.meta, folder)] = _plain_scores(
            score_case(model, ours, params, truth, viewmat, K, clip.frames[:t], clip.head_mask[:t])
        )
        if clip.views:  # the clip's first extra camera: ground truth to score against
            view = clip.views[0]
            vm, vk = view.viewmat[:t], view.K[:t]
            novel = head.render(params, vm, vk, idx, pose_from=clip, progress=progress)
            cases[f"novel view {folder.name}"] = _plain_scores(
                score_case(model, novel, params, truth, vm, vk, view.frames[:t], view.head_mask[:t])
            )
            camera = f"{folder.name}/views/0"
        else:
            motion = {"expression": params.expression, "jaw_pose": params.jaw_pose}
            orbit = head.drive(motion, pose_from=clip, camera=CameraSpec(yaw=NOVEL_YAW))
            novel = head.render(*orbit, pose_from=clip, progress=progress)
            camera = f"main camera orbited by {NOVEL_YAW:g} degrees"
        per_frame = SAMPLE_RATE // FPS
        audio = np.zeros(t * per_frame, np.float32)
        audio[: min(len(clip.audio), len(audio))] = clip.audio[: len(audio)]
        language = str(clip.meta.get("language", "?"))
        spoken.append(Spoken(folder.name, language, audio, clip.frames[:t], ours, novel, camera))
    return cases, spoken


# -- pictures and video ----------------------------------------------------------------------


def _write_video(path: Path, spoken: list[Spoken]) -> dict:
    """:data:`COLUMNS` side by side, the sentences one after the other, with their sound."""
    from ggtalker_jax.data.video import probe_media
    from ggtalker_jax.eval.talking import side_by_side_video

    columns = [
        np.concatenate([s.truth for s in spoken]),
        np.concatenate([s.ours for s in spoken]),
        np.concatenate([s.novel for s in spoken]),
    ]
    audio = np.concatenate([s.audio for s in spoken])
    side_by_side_video(path, columns, audio, COLUMNS)
    probe = probe_media(path)
    return {
        "duration_s": round(probe["duration"], 2),
        "has_audio": bool(probe["audio"]),
        "columns": list(COLUMNS),
        "segments": [
            {"clip": s.name, "language": s.language, "frames": len(s.ours), "novel": s.novel_camera}
            for s in spoken
        ],
    }


def _write_grid(path: Path, spoken: list[Spoken], per_sentence: int) -> None:
    """Ground truth | ours | error at ``per_sentence`` instants of each sentence."""
    from ggtalker_jax.eval.talking import comparison_grid
    from ggtalker_jax.types import FPS

    truth, ours, labels = [], [], []
    for s in spoken:
        t = len(s.ours)
        picks = np.unique(np.linspace(0, t - 1, min(per_sentence, t)).round().astype(int))
        truth.append(s.truth[picks])
        ours.append(s.ours[picks])
        labels += [f"{s.language} {i / FPS:.1f} s" for i in picks]
    truth, ours = np.concatenate(truth), np.concatenate(ours)
    grid = comparison_grid(truth, ours, range(len(ours)), labels)
    with atomic_file(path) as tmp:
        grid.save(tmp, format="PNG")


def summary_lines(out_dir: str | Path, metrics: dict) -> list[str]:
    """A one-screen summary of a demo run (what the CLI prints)."""
    from ggtalker_jax.eval.talking import summary_table

    out_dir = Path(out_dir)
    person, adaptation, video = metrics["person"], metrics["adaptation"], metrics["video"]
    w, h = person["resolution"]
    clips = ", ".join(
        f"{name} {c['seconds']:g} s" + (f" +{c['views']} view(s)" if c["views"] else "")
        for name, c in person["clips"].items()
    )
    phases = ", ".join(f"{k} {p['steps']}" for k, p in adaptation["phases"].items())
    t = metrics["timings_s"]
    return [
        f"person        {out_dir / 'world'} ({w}x{h}: {clips})",
        f"identity      {out_dir / 'identity'} (adapted in {adaptation['seconds']:.0f} s on a "
        f"{adaptation['budget_minutes']:.1f} min budget; steps: {phases})",
        f"video         {out_dir / 'demo.mp4'} ({video['duration_s']:.2f} s: "
        f"{' | '.join(video['columns'])}; "
        f"{' then '.join(s['clip'] for s in video['segments'])}; with sound)",
        f"grid          {out_dir / 'demo_grid.png'} (ground truth | ours | error)",
        f"metrics       {out_dir / 'metrics.json'}",
        *summary_table(metrics),
        f"done in {t['total_s']:.0f} s (world {t['world_s']:.0f} s, adaptation "
        f"{t['adapt_s']:.0f} s, speaking and scoring {t['speak_s']:.0f} s) of a "
        f"{metrics['budget_minutes']:g} min budget",
        f"next          ggtalker infer --identity {out_dir / 'identity'} --text 'Hello there.' "
        "--out hello.mp4",
    ]
