"""SIGKILL at a random point: what is left is either absent, clearly partial, or complete,
and rerunning the same command (no ``--force``) finishes the job.

The world's kill time is drawn from the run's seed (printed in the header), uniformly over the
length of an uninterrupted run measured first. The demo, which the suite can afford to run
only once, is killed at a random moment after a random milestone of its run (start-up, a clip
written, the world done, an adaptation phase done or under way, the identity written, the
outputs being written), so across runs the kills land in every phase; the rerun that finishes
it is the suite's end-to-end run of ``ggtalker demo``, and its outputs are checked in full.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ggtalker_jax.data.clip import read_clip

ROOT = Path(__file__).resolve().parents[2]
ENV = {
    **os.environ,
    "JAX_PLATFORMS": "cpu",
    "JAX_COMPILATION_CACHE_DIR": str(ROOT / ".jax_cache"),
    # The rerun after a kill compiles what the killed run compiled: cache all of it.
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.2",
}
WORLD = ["world", "--identities", "2", "--clips-per-identity", "1", "--seconds", "1.2"]
WORLD += ["--resolution", "64", "--views", "1", "--seed", "3"]


def ggtalker(args, cwd) -> tuple[subprocess.CompletedProcess, float]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "ggtalker_jax.cli", *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return done, time.perf_counter() - start


def kill_after(args, cwd, delay: float) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ggtalker_jax.cli", *args],
        cwd=cwd,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def finished_clips(world: Path) -> list[Path]:
    return sorted(p for p in world.glob("id*/clip*") if not p.name.endswith(".partial"))


@pytest.mark.slow
def test_killed_world_leaves_only_complete_clips_and_resumes(tmp_path, rng):
    _, full = ggtalker([*WORLD, "--out", "ref"], tmp_path)
    reference = files(tmp_path / "ref")
    delay = float(rng.uniform(0.2, 1.0) * full)
    kill_after([*WORLD, "--out", "run"], tmp_path, delay)
    world = tmp_path / "run"
    for clip in finished_clips(world):  # anything named like a clip is the whole clip
        name = clip.relative_to(world).as_posix()
        expected = {k: v for k, v in reference.items() if k.startswith(name + "/")}
        got = {f"{name}/{k}": v for k, v in files(clip).items()}
        assert got == expected, f"{name} incomplete after a kill at {delay:.1f} s"
        read_clip(clip)
    done, _ = ggtalker([*WORLD, "--out", "run"], tmp_path)
    assert "2 clips" in done.stdout
    assert files(world) == reference, f"resumed world differs (kill at {delay:.1f} s)"


# The demo at test size: a 4 s adaptation clip and two 1.2 s sentences at 64², adaptation
# bounded by steps (the budget is ample), so the run costs little more than its compiles.
DEMO = ["demo", "--set", "demo.resolution=64", "--set", "demo.adapt_seconds=4"]
DEMO += ["--set", "demo.heldout_seconds=1.2", "--set", "demo.grid_frames=2"]
DEMO += ["--set", "demo.minutes=6", "--set", "demo.reserve_minutes=0"]
DEMO += ["--set", "adapt.steps=20,10,5,2", "--set", "adapt.eval_every=10"]
FRAMES = 30  # per sentence
CASES = {"self-driven heldout_en (en)", "novel view heldout_en", "cross-language heldout_de (de)"}
# Paths inside demo.partial/ whose appearance marks a point of the run (None: start-up).
MILESTONES = (
    None,
    "world/adapt_en/meta.json",
    "world/heldout_de/meta.json",
    "identity/phases/head/result.json",
    "identity/phases/joint",
    "identity/identity.json",
    "demo_grid.png",
)


def kill_after_milestone(args, cwd, milestone: str | None, delay: float) -> str | None:
    """Start ``args``, wait for ``cwd/<out>/demo.partial/<milestone>``, then ``delay`` more
    seconds, and SIGKILL it; returns its stdout if it finished first, else ``None``."""
    with open(cwd / "killed.out", "w+") as stdout:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ggtalker_jax.cli", *args],
            cwd=cwd,
            env=ENV,
            stdout=stdout,
            stderr=subprocess.DEVNULL,
        )
        stage = cwd / args[args.index("--out") + 1] / "demo.partial"
        try:
            while milestone and proc.poll() is None and not (stage / milestone).exists():
                time.sleep(0.05)
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return None
        assert proc.returncode == 0, f"the demo failed before the kill (status {proc.returncode})"
        stdout.seek(0)
        return stdout.read()


def check_demo_outputs(out: Path) -> None:
    """Every demo output present in ``out`` is complete; metrics.json means all are there."""
    from ggtalker_jax.data.video import read_mp4
    from ggtalker_jax.identity import read_identity_info

    if (out / "demo.mp4").exists():
        frames, _ = read_mp4(out / "demo.mp4")
        assert frames.shape == (2 * FRAMES, 64, 3 * 64, 3)  # two sentences, three columns
    if (out / "demo_grid.png").exists():  # 3 rows, 2 sentences x 2 instants
        assert np.asarray(Image.open(out / "demo_grid.png")).shape == (3 * 66 - 2, 4 * 66 - 2, 3)
    if (out / "config.json").exists():
        assert json.loads((out / "config.json").read_text())["demo"]["resolution"] == 64
    if (out / "world").exists():
        for clip in (out / "world").iterdir():
            if clip.is_dir() and not clip.name.endswith(".partial"):
                read_clip(clip)
    if (out / "identity").exists():
        read_identity_info(out / "identity")  # finished, or not moved in at all
    if (out / "metrics.json").exists():
        for name in ("demo.mp4", "demo_grid.png", "config.json", "world", "identity"):
            assert (out / name).exists(), name
        assert not (out / "demo.partial").exists()


@pytest.mark.slow
def test_killed_demo_reruns_to_complete_outputs(tmp_path, rng, capsys):
    """The suite's end-to-end demo: killed somewhere, rerun without --force, then every
    output checked, and a third run refused (nothing overwritten without --force)."""
    from ggtalker_jax.cli import main
    from ggtalker_jax.data.video import probe_media

    milestone = MILESTONES[int(rng.integers(len(MILESTONES)))]
    delay = float(rng.uniform(0.0, 3.0))
    where = f"a kill {delay:.1f} s after {milestone or 'the start'}"
    printed = kill_after_milestone([*DEMO, "--out", "run"], tmp_path, milestone, delay)
    out, stage = tmp_path / "run", tmp_path / "run" / "demo.partial"
    check_demo_outputs(out)
    kept_clip = stage / "world" / "adapt_en" / "meta.json"
    kept_clip = kept_clip.stat().st_mtime_ns if kept_clip.is_file() else None
    kept_identity = (stage / "identity" / "identity.json").is_file()
    if printed is None:  # killed: the same command carries on, no --force needed
        printed = ggtalker([*DEMO, "--out", "run"], tmp_path)[0].stdout
    check_demo_outputs(out)
    assert (out / "metrics.json").exists(), where
    for line in ("run/demo.mp4", "run/identity", "head PSNR", "self-driven heldout_en"):
        assert line in printed, f"{line!r} not printed after {where}:\n{printed}"
    if kept_clip is not None:  # the finished clips of the killed run were kept, not redone
        assert (out / "world" / "adapt_en" / "meta.json").stat().st_mtime_ns == kept_clip
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["adaptation"]["kept_from_an_interrupted_run"] == kept_identity, where

    # demo.mp4: ground truth | ours | novel camera, both sentences, with their sound.
    video = probe_media(out / "demo.mp4")
    assert video["video"] and video["audio"] and video["fps"] == 25
    assert abs(video["duration"] - 2 * FRAMES / 25) <= 2 / 25
    assert metrics["video"]["has_audio"] and metrics["video"]["columns"][0] == "ground truth"
    assert [s["clip"] for s in metrics["video"]["segments"]] == ["heldout_en", "heldout_de"]
    # The cases are scored against ground truth the identity never saw.
    assert set(metrics["cases"]) == CASES
    for name, case in metrics["cases"].items():
        assert case["frames"] == FRAMES, name
        assert 8 < case["psnr"] < 60 and 8 < case["head_psnr"] < 60, (name, case)
        assert 0 < case["ssim"] <= 1 and -1 <= case["opening_r"] <= 1, (name, case)
        assert 0 <= case["lip_vertex_error_mm"] < 50 and 0 <= case["landmark_px"] < 64, name
    phases = metrics["adaptation"]["phases"]
    assert list(phases) == ["head", "joint", "inpainter", "a2e"]
    assert phases["head"]["steps"] >= 1 and phases["head"]["best"] > 8
    assert phases["a2e"]["stop"] == "skipped"  # 4 s hold out no A2E window
    assert metrics["timings_s"]["total_s"] > 0 and metrics["budget_minutes"] == 6
    assert (out / "world" / "heldout_en" / "views" / "0" / "frames.mp4").is_file()
    assert (out / "identity" / "psnr_curve.png").is_file()

    # Never overwritten without --force (one line, before any work).
    before = (out / "demo.mp4").stat().st_mtime_ns
    assert main([*DEMO, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ggtalker: error:") and "pass --force" in err and "\n" not in err
    assert (out / "demo.mp4").stat().st_mtime_ns == before


def test_stage_keeps_the_world_and_identity_of_the_same_settings_only(tmp_path):
    """A rerun keeps what the killed run finished only when it would make the same: the
    world for the same person, the identity also for the same config and priors."""
    from ggtalker_jax import demo

    def staged(person, adaptation):
        stage = tmp_path / demo.STAGE
        (stage / "world").mkdir(parents=True, exist_ok=True)
        (stage / "identity").mkdir(exist_ok=True)
        (stage / "demo.mp4").write_text("old")
        mark = {"ggtalker": "demo world", "person": {"seed": 0}}  # what the killed run made
        (stage / "world" / demo._WORLD_MARK).write_text(json.dumps(mark))
        demo._open_stage(stage, person, adaptation)
        return {p.name for p in stage.iterdir()}

    person, adaptation = {"seed": 0}, {"config": "{}", "priors": None}
    assert staged(person, adaptation) == {demo._STAGE_MARK, "world"}  # no stage mark before
    assert staged(person, adaptation) == {demo._STAGE_MARK, "identity", "world"}
    other = {"config": '{"x": 1}', "priors": None}
    assert staged(person, other) == {demo._STAGE_MARK, "world"}  # another config
    assert staged({"seed": 1}, other) == {demo._STAGE_MARK}  # another person
