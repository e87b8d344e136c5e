"""The ggtalker command line: help, preview, demo, convert, and one-line errors."""

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
    for command in ("flame", "demo"):
        assert command in out.stdout
    sub = run_cli("flame", "--help")
    assert "convert" in sub.stdout and "preview" in sub.stdout
    # Every registered command appears in the top-level help with a one-line description.
    choices = build_parser()._subparsers._group_actions[0].choices
    assert set(choices) == {"flame", "demo"}


def test_demo_writes_preview_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--set", "preview.cell_size=64"]) == 0
    image = np.asarray(Image.open(out / "head_preview.png"))
    assert image.shape == (6 * 64, 4 * 64, 3)
    # The head is drawn: each cell has skin-coloured pixels distinct from the background.
    assert (np.abs(image.astype(int) - [24, 26, 32]).sum(-1) > 60).mean() > 0.1
    assert (out / "config.json").exists()
    capsys.readouterr()
    assert main(["demo", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ggtalker: error:") and "pass --force" in err and "\n" not in err
    assert main(["demo", "--out", str(out), "--force", "--set", "preview.cell_size=64"]) == 0


@pytest.mark.parametrize(
    "args,message",
    [
        (["flame", "preview", "--model", "nope.pkl", "--out", "x.png"], "nope.pkl: no such file"),
        (["flame", "convert", "nope.pkl", "x.npz"], "nope.pkl: no such file"),
        (["demo", "--config", "huge"], "unknown config 'huge'"),
        (["demo", "--set", "preview.cell_size=1"], "preview.cell_size=1 is invalid"),
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
