"""``ggtalker demo``: the main job on the embedded default, as a library function.

Builds a one-clip synthetic world (speech → visemes → FLAME → textured-mesh frames from the main
camera and novel views), then writes what people open: ``demo.mp4`` (the cameras side by side,
with the speech), ``demo_grid.png`` (a contact sheet), ``head_preview.png`` (the FLAME head under
expressions and poses) and ``metrics.json`` (facts measured on what was made).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

from ggtalker_jax.config import Config
from ggtalker_jax.errors import InputError

OUTPUTS = ("demo.mp4", "demo_grid.png", "head_preview.png", "metrics.json", "config.json", "world")


def _timed(timings: dict, name: str):
    class _Timer:
        def __enter__(self):
            self.start = time.perf_counter()

        def __exit__(self, *exc):
            timings[name] = round(time.perf_counter() - self.start, 2)

    return _Timer()


def run_demo(out_dir: str | Path, config: Config, force: bool = False, progress: bool = True):
    """Build the demo world under ``out_dir/world`` and write the demo outputs.

    Args:
      out_dir: output folder (created); an existing output is refused unless ``force``.
      config: the resolved config (``config.demo`` sizes the world, ``config.preview`` the
        head preview).
      force: replace existing outputs.
      progress: show the world's progress bar.

    Returns:
      The metrics dict (also written to ``out_dir/metrics.json``).

    Raises:
      InputError: an output exists and ``force`` is not set; an unknown voice.
    """
    from ggtalker_jax.audio.speech import check_voice
    from ggtalker_jax.data.clip import FPS, read_clip
    from ggtalker_jax.data.video import probe_media, write_mp4
    from ggtalker_jax.data.world import WorldConfig, clip_name, write_world
    from ggtalker_jax.eval import inner_lip_distance, landmarks_on_mask, lip_energy_report
    from ggtalker_jax.flame import flame_forward, load_flame
    from ggtalker_jax.render.preview import default_cells, render_preview_grid
    from ggtalker_jax.render.sheets import contact_sheet

    out_dir = Path(out_dir)
    existing = [name for name in OUTPUTS if (out_dir / name).exists()]
    if existing and not force:
        raise InputError(
            f"{out_dir / existing[0]}: already exists; pass --force to overwrite the demo "
            f"outputs, or choose another --out"
        )
    demo = config.demo
    check_voice(demo.language)
    timings: dict[str, float] = {}
    start = time.perf_counter()
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
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in existing:  # force: start clean
        path = out_dir / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()

    with _timed(timings, "world_s"):
        write_world(out_dir / "world", model, world, force=force, progress=progress)
    clip_dir = out_dir / "world" / clip_name(0, 0)
    with _timed(timings, "read_back_s"):
        clip = read_clip(clip_dir)  # validates what was written

    with _timed(timings, "video_s"):
        cameras = [clip.frames, *(v.frames for v in clip.views)]
        side_by_side = np.concatenate(cameras, axis=2)
        write_mp4(out_dir / "demo.mp4", side_by_side, FPS, audio_path=clip_dir / "audio.wav")

    with _timed(timings, "grid_s"):
        t = clip.n_frames
        picks = np.linspace(0, t - 1, demo.grid_frames).round().astype(int)
        names = ["main view"] + [f"novel view {k + 1}" for k in range(len(clip.views))]
        sheet = contact_sheet(
            [cam[picks] for cam in cameras],
            row_labels=names,
            col_labels=[f"t={i / FPS:.2f} s" for i in picks],
        )
        sheet.save(out_dir / "demo_grid.png")

    with _timed(timings, "head_preview_s"):
        cells = default_cells(model, config.preview.expression_strength)
        render_preview_grid(model, cells, config.preview.cell_size).save(
            out_dir / "head_preview.png"
        )

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
        video = probe_media(out_dir / "demo.mp4")
        wav = probe_media(clip_dir / "audio.wav")
    timings["total_s"] = round(time.perf_counter() - start, 2)

    metrics = {
        "clip": str(clip_dir),
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
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (out_dir / "config.json").write_text(config.to_json() + "\n")
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
