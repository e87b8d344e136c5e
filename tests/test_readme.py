"""Every python block of README.md runs, in order, in a scratch folder, and prints what the
README shows after it: the README cannot drift from the code.

The blocks read the world that the README's own ``ggtalker world --out worlds/w0 ...`` line
makes, so that line is taken from the README and run first.
"""

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from ggtalker_jax.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_blocks() -> list[tuple[str, str, str | None]]:
    """``(name, code, expected output or None)`` for each python block, in order. The output
    is the plain fenced block right after a python block, if there is one."""
    fences = re.findall(r"```(\w*)\n(.*?)```", README.read_text(), re.S)
    found = []
    for i, (lang, body) in enumerate(fences):
        if lang == "python":
            after = fences[i + 1] if i + 1 < len(fences) else None
            expected = after[1] if after and after[0] == "" else None
            found.append((f"README python block {len(found) + 1}", body, expected))
    return found


def world_command() -> list[str]:
    match = re.search(
        r"^\$ (?:time )?\.venv/bin/ggtalker (world --out worlds/w0 .*)$", README.read_text(), re.M
    )
    assert match, "README.md shows no `ggtalker world --out worlds/w0` command"
    return shlex.split(match.group(1))


def test_readme_has_python_blocks_with_output():
    blocks = readme_blocks()
    assert len(blocks) >= 4 and sum(expected is not None for _, _, expected in blocks) >= 3


@pytest.mark.slow
def test_readme_python_blocks_print_what_the_readme_shows(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(world_command()) == 0
    for name, code, expected in readme_blocks():
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, name, "exec"), {"__name__": "__readme__"})
        if expected is None:
            continue
        want = expected.strip().splitlines()
        got = printed.getvalue().strip().splitlines()
        # Libraries may print first (TFDS announces the dataset it builds): the README shows
        # the block's own lines, which come last.
        assert got[-len(want) :] == want, f"{name} printed:\n{printed.getvalue()}"
