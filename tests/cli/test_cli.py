"""The ggtalker command line: help, preview, demo, convert, and one-line errors."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from ggtalker_jax.cli import build_parser, main


def run_cli(*args):
    """Run the console entry point in a subprocess (as a user would)."""
    return subprocess.run(
        [sys.executable, "-m", "ggtalker_jax.cli", *args],
        capture_output=True,
        text=True,
        env={"JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin"},
    )


def test_help_lists_every_command():
    out = run_cli("--help")
    assert out.returncode == 0
    for command in ("flame", "world", "e2v", "a2e", "demo"):
        assert command in out.stdout
    sub = run_cli("flame", "--help")
    assert "convert" in sub.stdout and "preview" in sub.stdout
    world = run_cli("world", "--help")
    for option in ("--identities", "--languages", "--views", "--no-video", "--force"):
        assert option in world.stdout
    # Every registered command appears in the top-level help with a one-line description.
    choices = build_parser()._subparsers._group_actions[0].choices
    assert set(choices) == {"flame", "world", "e2v", "a2e", "demo"}


TINY_DEMO = [
    "--set",
    "demo.resolution=64",
    "--set",
    "demo.seconds=1.2",
    "--set",
    "demo.views=1",
    "--set",
    "demo.grid_frames=3",
    "--set",
    "preview.cell_size=64",
]


def test_demo_writes_video_grid_metrics_and_refuses_to_overwrite(tmp_path, capsys):
    from ggtalker_jax.data.video import probe_media, read_mp4

    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), *TINY_DEMO]) == 0
    printed = capsys.readouterr().out
    assert "demo.mp4" in printed and "lips vs sound r =" in printed
    # demo.mp4: main and novel view side by side, with the speech muxed in.
    video = probe_media(out / "demo.mp4")
    assert video["video"] and video["audio"] and video["fps"] == 25
    frames, _ = read_mp4(out / "demo.mp4")
    assert frames.shape == (30, 64, 128, 3)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["frames"] == 30 and metrics["resolution"] == [64, 64]
    assert metrics["cameras"] == 2 and metrics["demo_mp4_has_audio"]
    durations = metrics["duration_s"]
    assert abs(durations["demo_mp4"] - durations["audio_wav"]) <= 1 / 25
    assert -1 <= metrics["lips"]["mouth_energy_r"] <= 1
    assert min(metrics["landmarks_on_head_mask"].values()) > 0.8
    assert metrics["timings_s"]["total_s"] > 0
    # The contact sheet: one row per camera, grid_frames columns.
    grid = np.asarray(Image.open(out / "demo_grid.png"))
    assert grid.shape == (2 * 64 + 2, 3 * 64 + 2 * 2, 3)
    image = np.asarray(Image.open(out / "head_preview.png"))
    assert image.shape == (6 * 64, 4 * 64, 3)
    # The head is drawn: each cell has skin-coloured pixels distinct from the background.
    assert (np.abs(image.astype(int) - [24, 26, 32]).sum(-1) > 60).mean() > 0.1
    assert json.loads((out / "config.json").read_text())["demo"]["resolution"] == 64
    assert (out / "world" / "id000" / "clip000" / "frames.mp4").is_file()
    assert (out / "world" / "id000" / "clip000" / "views" / "0" / "frames.mp4").is_file()
    # Never overwritten without --force; with it, everything is made again.
    before = (out / "demo.mp4").stat().st_mtime_ns
    assert main(["demo", "--out", str(out), *TINY_DEMO]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ggtalker: error:") and "pass --force" in err and "\n" not in err
    assert (out / "demo.mp4").stat().st_mtime_ns == before
    assert main(["demo", "--out", str(out), "--force", *TINY_DEMO]) == 0
    assert json.loads((out / "metrics.json").read_text())["frames"] == 30


@pytest.mark.parametrize(
    "args,message",
    [
        (["flame", "preview", "--model", "nope.pkl", "--out", "x.png"], "nope.pkl: no such file"),
        (["flame", "convert", "nope.pkl", "x.npz"], "nope.pkl: no such file"),
        (["demo", "--config", "huge"], "unknown config 'huge'"),
        (["demo", "--set", "preview.cell_size=1"], "preview.cell_size=1 is invalid"),
        (["demo", "--set", "demo.resolution=63"], "demo.resolution=63 is invalid"),
        (["demo", "--set", "demo.language=zz"], "unknown espeak voice 'zz'"),
        (["world", "--out", "w", "--languages", "qq"], "unknown espeak voice 'qq'"),
    ],
)
def test_user_mistakes_are_one_line(tmp_path, args, message):
    out = subprocess.run(
        [sys.executable, "-m", "ggtalker_jax.cli", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"JAX_PLATFORMS": "cpu"},
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr
