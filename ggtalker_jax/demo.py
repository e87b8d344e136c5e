"""``ggtalker demo``: the main job on the embedded default, as a library function.

Builds a one-clip synthetic world (speech → visemes → FLAME → textured-mesh frames from the main
camera and novel views), then writes what people open: ``demo.mp4`` (the cameras side by side,
with the speech), ``demo_grid.png`` (a contact sheet), ``head_preview.png`` (the FLAME head under
expressions and poses) and ``metrics.json`` (facts measured on what was made).
"""

from __future__ import annotations

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
OUTPUTS = ("world", "config.json", "head_preview.png", "demo_grid.png", "demo.mp4", "metrics.json")
STAGE = "demo.partial"
_STAGE_MARK = "stage.json"


def _timed(timings: dict, name: str):
    class _Timer:
        def __enter__(self):
            self.start = time.perf_counter()

        def __exit__(self, *exc):
            timings[name] = round(time.perf_counter() - self.start, 2)

    return _Timer()


def _is_own_output(path: Path) -> bool:
    """Whether an existing ``DIR/<output name>`` is something a demo writes (and so may be
    replaced): a file for the file names; for ``world``, a ggtalker world holding nothing
    else (:func:`~ggtalker_jax.world.folder.is_world`)."""
    from ggtalker_jax.world.folder import is_world

    if path.is_symlink():
        return False
    if path.name == "world":
        return is_world(path)
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
    ``demo.mp4``, a ``world`` that is not a ggtalker world) is refused, ``force`` or not.
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


def _open_stage(stage: Path, world_stamp: str) -> None:
    """Create the staging folder, keeping a world there that an interrupted run of the same
    settings left (it resumes); everything else in it is rebuilt."""
    from ggtalker_jax.world.folder import STAMP

    stage.mkdir(parents=True, exist_ok=True)
    write_text_atomic(stage / _STAGE_MARK, json.dumps({"ggtalker": "demo staging"}) + "\n")
    world = stage / "world"
    keep = world.is_dir() and (world / STAMP).is_file()
    keep = keep and (world / STAMP).read_text(encoding="utf-8").strip() == world_stamp
    for entry in stage.iterdir():
        if entry.name != _STAGE_MARK and not (keep and entry.name == "world"):
            remove_path(entry)


def _publish(stage: Path, out_dir: Path) -> None:
    """Move the finished outputs from ``stage`` into ``out_dir``, ``metrics.json`` last, then
    remove ``stage``. Files are replaced by one rename each; the world folder by two.

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


def run_demo(out_dir: str | Path, config: Config, force: bool = False, progress: bool = True):
    """Build the demo world and write the demo outputs into ``out_dir``.

    Everything is made in ``out_dir/demo.partial/`` and moved into ``out_dir`` when complete,
    so a killed demo leaves no output that looks finished, and its rerun (same command, no
    ``--force``) carries on: a world the killed run finished is kept.

    Args:
      out_dir: output folder (created); an existing output is refused unless ``force``.
      config: the resolved config (``config.demo`` sizes the world, ``config.preview`` the
        head preview).
      force: replace existing outputs (only the demo's own: see :func:`_claim`).
      progress: show the world's progress bar.

    Returns:
      The metrics dict (also written to ``out_dir/metrics.json``).

    Raises:
      InputError: an output exists and ``force`` is not set, an output path holds something
        the demo did not write, an unwritable ``out_dir``, an unknown voice, or a demo too
        large for the free memory; another demo writing the same ``out_dir``.
    """
    from ggtalker_jax.config import WorldConfig
    from ggtalker_jax.flame import load_flame
    from ggtalker_jax.world.speech import check_voice

    # Everything that can be refused is refused before the lock creates the folder.
    out_dir = output_dir(out_dir)
    _claim(out_dir, force)
    demo = config.demo
    check_voice(demo.language)
    model = load_flame(config.flame_model or None)
    world = WorldConfig(
        identities=1,
        clips_per_identity=1,
        seconds=demo.seconds,
        resolution=demo.resolution,
        seed=config.seed,
        languages=(demo.language,),
        views=demo.views,
    )
    _check_demo_memory(world)
    with exclusive(out_dir, "demo"):
        return _run_demo(out_dir, model, world, config, force, progress)


def _run_demo(out_dir: Path, model, world, config: Config, force: bool, progress: bool) -> dict:
    """Stage, make and publish the outputs (under the folder's lock)."""
    from ggtalker_jax.world.folder import world_stamp_text

    stage = _claim(out_dir, force)  # again: another run may have finished meanwhile
    _open_stage(stage, world_stamp_text(model, world))
    metrics = _make_outputs(stage, out_dir, model, world, config, progress)
    _publish(stage, out_dir)
    return metrics


def _check_demo_memory(world) -> None:
    from ggtalker_jax.world.generate import clip_memory_bytes

    # The world's clip, read back, plus the side-by-side video frames.
    cameras = 1 + world.views
    need = clip_memory_bytes(world) + cameras * world.n_frames * world.resolution**2 * 8
    require_memory(
        need,
        f"demo: {world.n_frames} frames x {cameras} cameras at "
        f"{world.resolution}x{world.resolution}",
        "lower demo.seconds, demo.resolution or demo.views (--set demo.resolution=256)",
    )


def _make_outputs(stage: Path, out_dir: Path, model, world, config: Config, progress: bool):
    """Write every demo output into ``stage``; returns the metrics (paths as published)."""
    from ggtalker_jax.data.clip import read_clip
    from ggtalker_jax.data.video import probe_media, write_mp4
    from ggtalker_jax.eval import inner_lip_distance, landmarks_on_mask, lip_energy_report
    from ggtalker_jax.eval.report import contact_sheet
    from ggtalker_jax.flame import flame_forward
    from ggtalker_jax.render.preview import default_cells, render_preview_grid
    from ggtalker_jax.types import FPS
    from ggtalker_jax.world.folder import write_world
    from ggtalker_jax.world.generate import clip_name

    demo = config.demo
    timings: dict[str, float] = {}
    start = time.perf_counter()
    with _timed(timings, "world_s"):
        write_world(stage / "world", model, world, progress=progress)
    clip_dir = stage / "world" / clip_name(0, 0)
    with _timed(timings, "read_back_s"):
        clip = read_clip(clip_dir)  # validates what was written

    with _timed(timings, "video_s"):
        cameras = [clip.frames, *(v.frames for v in clip.views)]
        side_by_side = np.concatenate(cameras, axis=2)
        with atomic_file(stage / "demo.mp4") as tmp:
            write_mp4(tmp, side_by_side, FPS, audio_path=clip_dir / "audio.wav")
        del side_by_side

    with _timed(timings, "grid_s"):
        t = clip.n_frames
        picks = np.linspace(0, t - 1, demo.grid_frames).round().astype(int)
        names = ["main view"] + [f"novel view {k + 1}" for k in range(len(clip.views))]
        sheet = contact_sheet(
            [cam[picks] for cam in cameras],
            row_labels=names,
            col_labels=[f"t={i / FPS:.2f} s" for i in picks],
        )
        with atomic_file(stage / "demo_grid.png") as tmp:
            sheet.save(tmp)

    with _timed(timings, "head_preview_s"):
        cells = default_cells(model, config.preview.expression_strength)
        with atomic_file(stage / "head_preview.png") as tmp:
            render_preview_grid(model, cells, config.preview.cell_size).save(tmp)

    with _timed(timings, "metrics_s"):
        landmarks = np.asarray(flame_forward(model, clip.flame).landmarks)
        lips = lip_energy_report(inner_lip_distance(landmarks), clip.audio)
        on_head = {
            "main": float(landmarks_on_mask(landmarks, clip.viewmat, clip.K, clip.head_mask).mean())
        }
        for k, view in enumerate(clip.views):
            on_head[f"view{k + 1}"] = float(
                landmarks_on_mask(landmarks, view.viewmat, view.K, view.head_mask).mean()
            )
        video = probe_media(stage / "demo.mp4")
        wav = probe_media(clip_dir / "audio.wav")
    timings["total_s"] = round(time.perf_counter() - start, 2)

    metrics = {
        "clip": str(out_dir / "world" / clip_name(0, 0)),
        "identity": clip.meta["identity"],
        "language": clip.meta["language"],
        "frames": t,
        "fps": FPS,
        "resolution": [int(clip.frames.shape[2]), int(clip.frames.shape[1])],
        "cameras": len(cameras),
        "duration_s": {
            "demo_mp4": video["duration"],
            "audio_wav": wav["duration"],
            "frames": t / FPS,
        },
        "demo_mp4_has_audio": bool(video["audio"]),
        "lips": {
            "mouth_energy_r": round(lips["r"], 4),
            "opening_speech_mm": round(lips["speech_mm"], 2),
            "opening_silence_mm": round(lips["silence_mm"], 2),
            "silent_frames": lips["silent_frames"],
        },
        "landmarks_on_head_mask": {k: round(v, 4) for k, v in on_head.items()},
        "phonemes": len(clip.meta.get("phonemes", [])),
        "model": {
            "source": model.source,
            "vertices": model.n_vertices,
            "faces": int(model.faces.shape[0]),
        },
        "timings_s": timings,
        "config": config.name,
    }
    write_text_atomic(stage / "config.json", config.to_json() + "\n")
    write_text_atomic(stage / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics


def summary_lines(out_dir: str | Path, metrics: dict) -> list[str]:
    """A one-screen summary of a demo run (what the CLI prints)."""
    out_dir = Path(out_dir)
    lips, dur = metrics["lips"], metrics["duration_s"]
    w, h = metrics["resolution"]
    on_head = ", ".join(f"{k} {v:.0%}" for k, v in metrics["landmarks_on_head_mask"].items())
    return [
        f"world         {metrics['clip']} ({metrics['identity']}, {metrics['language']}, "
        f"{metrics['frames']} frames at {w}x{h}, {metrics['cameras']} cameras)",
        f"video         {out_dir / 'demo.mp4'} ({dur['demo_mp4']:.2f} s, audio "
        f"{dur['audio_wav']:.2f} s, cameras side by side, with sound)",
        f"contact sheet {out_dir / 'demo_grid.png'}",
        f"head preview  {out_dir / 'head_preview.png'}",
        f"metrics       {out_dir / 'metrics.json'}",
        f"lips vs sound r = {lips['mouth_energy_r']:.2f}; mouth opening "
        f"{lips['opening_speech_mm']:.1f} mm in loud frames, "
        f"{lips['opening_silence_mm']:.1f} mm in silence",
        f"landmarks on the head mask: {on_head}",
        f"done in {metrics['timings_s']['total_s']:.1f} s "
        f"(world {metrics['timings_s']['world_s']:.1f} s)",
    ]
