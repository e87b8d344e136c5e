"""tools/bench_scaling.py's arguments: bad ones stop with one line before any data is made."""

import subprocess
import sys
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "bench_scaling.py"


def run_tool(*args):
    return subprocess.run(
        [sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--curves", "5"], "--curves compares the same batches on every device count: add"),
        (["--repeats", "0"], "--repeats 0: expected 1 or more"),
        (["--strong", "--curves", "-1"], "--curves -1: expected 0 or more"),
        (
            ["--strong", "--priors", "e2v", "--devices", "1,3"],
            "--strong: e2v.batch_size 8 does not split over 3 devices",
        ),
        (["--priors", "e2v,x"], "--priors: unknown prior 'x'"),
    ],
)
def test_bad_arguments_stop_in_one_line(args, message):
    proc = run_tool("--config", "tiny", *args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr.strip().splitlines()[-1] and "Traceback" not in proc.stderr
