"""SIGKILL at a random point: what is left is either absent, clearly partial, or complete,
and rerunning the same command (no ``--force``) finishes the job.

The kill time is drawn from the run's seed (printed in the header), uniformly over the
length of an uninterrupted run measured first, so across runs the kills land in every phase:
start-up, speech, rendering, encoding, the final renames.
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
}
WORLD = ["world", "--identities", "2", "--clips-per-identity", "1", "--seconds", "1.2"]
WORLD += ["--resolution", "64", "--views", "1", "--seed", "3"]
DEMO = ["demo", "--set", "demo.resolution=64", "--set", "demo.seconds=1.2"]
DEMO += ["--set", "demo.views=1", "--set", "demo.grid_frames=3", "--set", "preview.cell_size=32"]


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


def check_demo_outputs(out: Path) -> None:
    """Every demo output present in ``out`` is complete; metrics.json means all are there."""
    from ggtalker_jax.data.video import read_mp4

    if (out / "demo.mp4").exists():
        frames, _ = read_mp4(out / "demo.mp4")
        assert frames.shape == (30, 64, 128, 3)
    if (out / "demo_grid.png").exists():
        assert np.asarray(Image.open(out / "demo_grid.png")).shape == (2 * 64 + 2, 3 * 64 + 4, 3)
    if (out / "head_preview.png").exists():
        assert np.asarray(Image.open(out / "head_preview.png")).shape == (6 * 32, 4 * 32, 3)
    if (out / "config.json").exists():
        assert json.loads((out / "config.json").read_text())["demo"]["resolution"] == 64
    if (out / "world").exists():
        for clip in finished_clips(out / "world"):
            read_clip(clip)
    if (out / "metrics.json").exists():
        assert json.loads((out / "metrics.json").read_text())["frames"] == 30
        for name in ("demo.mp4", "demo_grid.png", "head_preview.png", "config.json", "world"):
            assert (out / name).exists(), name
        assert not (out / "demo.partial").exists()


@pytest.mark.slow
def test_killed_demo_leaves_nothing_that_looks_finished_and_reruns(tmp_path, rng):
    _, full = ggtalker([*DEMO, "--out", "ref"], tmp_path)
    delay = float(rng.uniform(0.2, 1.0) * full)
    kill_after([*DEMO, "--out", "run"], tmp_path, delay)
    out = tmp_path / "run"
    check_demo_outputs(out)
    if (out / "metrics.json").exists():  # the kill came after the demo finished
        return
    done, _ = ggtalker([*DEMO, "--out", "run"], tmp_path)  # no --force needed
    assert "demo.mp4" in done.stdout, f"rerun after a kill at {delay:.1f} s"
    check_demo_outputs(out)
    assert (out / "metrics.json").exists()
    ref_frames = files(tmp_path / "ref" / "world")
    assert files(out / "world") == ref_frames  # the world the demo shows is the same
