"""The splatting tools' case arguments: valid cases parse, bad ones stop with one line."""

import subprocess
import sys
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[2] / "tools"


@pytest.mark.parametrize("tool", ["bench_splat.py", "profile_splat.py"])
@pytest.mark.parametrize("bad", ["abc", "512x100000", "512x0x8", "512x-1x8", "512x1e5x1"])
def test_bad_case_is_refused_in_one_line(tool, bad):
    proc = subprocess.run(
        [sys.executable, str(TOOLS / tool), "--cases", f"512x100000x1,{bad}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert f"case {bad!r}: expected SIZExNxBATCH" in last and "Traceback" not in proc.stderr


def test_cases_parse_in_order():
    sys.path.insert(0, str(TOOLS))
    try:
        from bench_splat import case_name, parse_cases
    finally:
        sys.path.remove(str(TOOLS))
    cases = parse_cases("512x100000x1, 1024x300000x8")
    assert cases == [(512, 100000, 1), (1024, 300000, 8)]
    assert [case_name(*c) for c in cases] == ["512x100000x1", "1024x300000x8"]


def test_cpu_bench_cases_parse_and_bad_ones_stop_in_one_line():
    sys.path.insert(0, str(TOOLS))
    try:
        from bench_splat_cpu import parse_cases
    finally:
        sys.path.remove(str(TOOLS))
    assert parse_cases("128x5000, 256x58000") == [(128, 5000), (256, 58000)]
    proc = subprocess.run(
        [sys.executable, str(TOOLS / "bench_splat_cpu.py"), "--cases", "128x5000,12x"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "case '12x': expected SIZExN" in proc.stderr
