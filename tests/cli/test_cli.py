"""The ggtalker command line: help, preview, demo, convert, and one-line errors.

The demo's end-to-end run is in test_kill.py (killed, then rerun to completion: the suite
affords one run); its refusals are in test_safety.py.
"""

import subprocess
import sys

import pytest

from ggtalker_jax.cli import build_parser


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
    commands = {"flame", "world", "e2v", "a2e", "inpainter", "adapt", "infer", "eval", "demo"}
    for command in commands:
        assert command in out.stdout
    sub = run_cli("flame", "--help")
    assert "convert" in sub.stdout and "preview" in sub.stdout
    world = run_cli("world", "--help")
    for option in ("--identities", "--languages", "--views", "--no-video", "--force"):
        assert option in world.stdout
    # Every registered command appears in the top-level help with a one-line description.
    choices = build_parser()._subparsers._group_actions[0].choices
    assert set(choices) == commands


@pytest.mark.parametrize(
    "args,message",
    [
        (["flame", "preview", "--model", "nope.pkl", "--out", "x.png"], "nope.pkl: no such file"),
        (["flame", "convert", "nope.pkl", "x.npz"], "nope.pkl: no such file"),
        (["demo", "--config", "huge"], "unknown config 'huge'"),
        (["demo", "--set", "preview.cell_size=1"], "preview.cell_size=1 is invalid"),
        (["demo", "--set", "demo.resolution=63"], "demo.resolution=63 is invalid"),
        (["demo", "--set", "demo.language=zz"], "unknown espeak voice 'zz'"),
        (["demo", "--set", "demo.other_language=en"], "demo.other_language='en' is demo.lang"),
        (["demo", "--set", "demo.resolution=100"], "expected a multiple of 16 from 64"),
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
