"""What a hostile new user tries at the command line: every mistake is one line with exit
status 2, and nothing outside a command's own outputs changes, ``--force`` or not.

Each case runs in a scratch folder that also holds a user's files (``src/main.c``, a
``notes.txt``); a snapshot of every file before and after proves they survive.
"""

import contextlib
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from ggtalker_jax.cli import main


def snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under ``root``: relative path -> sha256 (``"dir"`` for folders)."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            found[rel] = f"link to {os.readlink(path)}"
        elif path.is_dir():
            found[rel] = "dir"
        else:
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    """A working directory holding a user's files, made the current directory."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.c").write_text("int main(void) { return 0; }\n")
    (tmp_path / "notes.txt").write_text("mine\n")
    (tmp_path / "a_file").write_text("a file, not a folder\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def refuse(capsys, args: list[str], message: str) -> str:
    """Run the CLI, expect exit 2 and one ``ggtalker: error:`` line holding ``message``."""
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ggtalker: error:") and "\n" not in err, err
    assert message in err, err
    return err


def read_only_dir(tmp_path: Path) -> Path:
    """A folder no file can be created in: for root, whom permission bits do not stop, a
    folder of sysfs; for others a folder without write permission."""
    if os.geteuid() == 0:
        return Path("/sys/kernel")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    return locked


# Each command that writes, with every output path a hostile user might give it.
DATA_LOSS = [
    (["world", "--out", "", "--force"], "--out '': empty path"),
    (["world", "--out", ".", "--force"], "which ggtalker did not write"),
    (["world", "--out", "src", "--force"], "src: holds demo.partial and 1 more, which ggtalker"),
    (["world", "--out", "a_file", "--force"], "a_file: is a file, not a folder"),
    (["world", "--out", "a_file/w", "--force"], "a_file is a file, not a folder"),
    (["demo", "--out", "", "--force"], "--out '': empty path"),
    (["demo", "--out", "src", "--force"], "src/demo.partial: exists but is not a ggtalker"),
    (["demo", "--out", "a_file"], "a_file: is a file, not a folder"),
    (["flame", "preview", "--out", "", "--force"], "--out '': empty path"),
    (["flame", "preview", "--out", "src", "--force"], "expected a .png file name"),
    (["flame", "preview", "--out", "notes.txt", "--force"], "expected a .png file name"),
    (["flame", "preview", "--out", "a_file/x.png"], "a_file is a file, not a folder"),
    (["flame", "convert", "m.npz", "notes.txt", "--force"], "expected a .npz file name"),
    (["flame", "convert", "m.npz", "src", "--force"], "expected a .npz file name"),
    (["flame", "convert", "m.npz", "out", "--force"], "expected a .npz file name, e.g. out.npz"),
]


@pytest.mark.parametrize("args,message", DATA_LOSS)
def test_force_never_removes_what_ggtalker_did_not_write(user_dir, capsys, args, message):
    (user_dir / "src" / "demo.partial").mkdir()  # a user's folder with the demo's stage name
    (user_dir / "src" / "demo.partial" / "draft.txt").write_text("mine\n")
    (user_dir / "m.npz").write_bytes(b"")
    before = snapshot(user_dir)
    refuse(capsys, args, message)
    assert snapshot(user_dir) == before


def test_demo_refuses_outputs_it_did_not_write(user_dir, capsys):
    """A user's folder named ``world``, ``identity`` or ``demo.mp4`` in the demo's --out is not
    replaced, nor an identity folder holding a user's file beside adaptation's."""
    out = user_dir / "out"
    (out / "world").mkdir(parents=True)
    (out / "world" / "mine.txt").write_text("mine\n")
    before = snapshot(user_dir)
    refuse(capsys, ["demo", "--out", "out", "--force"], "out/world: is not a ggtalker demo output")
    (out / "world" / "mine.txt").unlink()
    (out / "world").rmdir()
    (out / "demo.mp4").mkdir()
    refuse(capsys, ["demo", "--out", "out", "--force"], "out/demo.mp4: is not a ggtalker demo")
    (out / "demo.mp4").rmdir()
    (out / "identity").mkdir()
    (out / "identity" / "identity.json").write_text('{"kind": "ggtalker-identity"}')
    (out / "identity" / "mine.txt").write_text("mine\n")
    refuse(capsys, ["demo", "--out", "out", "--force"], "out/identity: is not a ggtalker demo")
    for name in ("identity.json", "mine.txt"):
        (out / "identity" / name).unlink()
    (out / "identity").rmdir()
    (out / "world").mkdir()
    (out / "world" / "mine.txt").write_text("mine\n")
    assert snapshot(user_dir) == before


def fake_demo_outputs(stage, out_dir, model, config, person, priors, start, progress):
    """What ``demo._make_outputs`` leaves in the stage, without the work (stand-in files)."""
    from ggtalker_jax import demo

    (stage / "world" / "adapt_en").mkdir(parents=True, exist_ok=True)
    mark = {"ggtalker": "demo world", "person": person}
    (stage / "world" / demo._WORLD_MARK).write_text(json.dumps(mark))
    (stage / "world" / "adapt_en" / "meta.json").write_text("{}")
    (stage / "identity").mkdir(exist_ok=True)
    (stage / "identity" / "identity.json").write_text('{"kind": "ggtalker-identity"}')
    for name in ("config.json", "demo_grid.png", "demo.mp4"):
        (stage / name).write_text(f"made at {start}")
    (stage / "metrics.json").write_text("{}")
    return {}


def test_demo_force_replaces_only_its_own_outputs(user_dir, capsys, monkeypatch):
    """A finished demo is refused without --force; with it, the demo's outputs (its world and
    identity folders included) are replaced and a user's file beside them survives."""
    from ggtalker_jax import demo

    monkeypatch.setattr(demo, "_make_outputs", fake_demo_outputs)
    monkeypatch.setattr(demo, "summary_lines", lambda out, metrics: ["done"])
    assert main(["demo", "--out", "out"]) == 0
    first = (user_dir / "out" / "demo.mp4").read_text()
    (user_dir / "out" / "notes.txt").write_text("mine\n")
    refuse(capsys, ["demo", "--out", "out"], "out/demo.mp4: already exists; pass --force")
    assert main(["demo", "--out", "out", "--force"]) == 0
    out = user_dir / "out"
    assert (out / "demo.mp4").read_text() != first and (out / "notes.txt").read_text() == "mine\n"
    assert sorted(p.name for p in out.iterdir()) == sorted([*demo.OUTPUTS, "notes.txt"])


def test_unwritable_locations_are_one_line(user_dir, capsys):
    locked = read_only_dir(user_dir)
    refuse(capsys, ["world", "--out", str(locked / "w")], "choose a writable location")
    refuse(capsys, ["demo", "--out", str(locked / "d")], "choose a writable location")
    refuse(
        capsys,
        ["flame", "preview", "--out", str(locked / "x.png")],
        "choose a writable location",
    )
    assert not (locked / "w").exists() and not (locked / "d").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--identities", "1000000000"], "identities=1000000000 is invalid; expected 1 to"),
        (["--clips-per-identity", "20000"], "clips_per_identity=20000 is invalid"),
        (["--identities", "100000", "--clips-per-identity", "100"], "at most 1000000 clips"),
        (["--resolution", "100000"], "resolution=100000 is invalid; expected an even number"),
        (["--seconds", "1e9"], "seconds=1000000000.0 is invalid"),
        (["--seconds", "nan"], "seconds=nan is invalid"),
        (["--seed", "-1"], "seed=-1 is invalid; expected an integer from 0 to"),
        (["--seed", str(2**40)], "is invalid; expected an integer from 0 to"),
        (
            ["--seconds", "600", "--views", "8", "--resolution", "2048"],
            "GiB of memory, but",
        ),
    ],
)
def test_world_sizes_are_bounded_before_any_work(user_dir, capsys, args, message):
    before = snapshot(user_dir)
    refuse(capsys, ["world", "--out", "w", *args], message)
    assert snapshot(user_dir) == before  # nothing written, not even the folder


@pytest.mark.parametrize(
    "args,message",
    [
        (["--set", "demo.resolution=100000"], "demo.resolution=100000 is invalid"),
        (["--set", "seed=-3"], "config: seed=-3 is invalid"),
        (["--set", "demo=3"], "'demo' is a section, not a value; set one of its fields"),
        (["--set", "preview.cell_size=100000"], "preview.cell_size=100000 is invalid"),
        (["--set", "preview=1"], "'preview' is a section"),
        (["--set", "demo.adapt_seconds=inf"], "not a valid finite number"),
        (["--set", "demo.views=two"], "not a valid integer"),
        (["--set", "demo.adapt_seconds"], "expected key=value"),
        (["--set", "demo.nope=1"], "unknown key 'nope'"),
        (["--set", "demo.adapt_seconds.x=1"], "'adapt_seconds' has no sub-keys"),
        (["--set", "demo.minutes=0"], "demo.minutes=0.0 is invalid"),
        (["--set", "demo.heldout_seconds=0.1"], "demo.heldout_seconds=0.1 is invalid"),
        (["--set", "demo.other_language=qq"], "unknown espeak voice 'qq'"),
        (
            ["--set", "demo.adapt_seconds=120", "--set", "demo.resolution=2048"],
            "GiB of memory, but",
        ),
    ],
)
def test_demo_config_mistakes_are_one_line(user_dir, capsys, args, message):
    before = snapshot(user_dir)
    refuse(capsys, ["demo", "--out", "d", *args], message)
    assert snapshot(user_dir) == before


def test_flame_convert_writes_exactly_the_named_file(user_dir, capsys, rng):
    """``flame convert`` to NAME.npz writes NAME.npz (never NAME.npz.npz), refuses to overwrite
    it without --force, and leaves no temporary file behind."""
    from ggtalker_jax.flame import load_flame

    model = load_flame()
    np.savez(user_dir / "m.npz", **model.to_arrays())
    name = f"head{rng.integers(1000)}.npz"
    assert main(["flame", "convert", "m.npz", name]) == 0
    assert f"wrote {name}:" in capsys.readouterr().out
    first = (user_dir / name).read_bytes()
    refuse(capsys, ["flame", "convert", "m.npz", name], f"{name}: already exists; pass --force")
    assert main(["flame", "convert", "m.npz", name, "--force"]) == 0
    assert (user_dir / name).read_bytes() == first
    assert sorted(p.name for p in user_dir.glob("head*")) == [name]


def test_preview_is_written_whole_or_not_at_all(user_dir, capsys, monkeypatch):
    """A preview whose encoder fails leaves neither the PNG nor its temporary file."""
    from PIL import Image

    def broken_save(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"\x89PNG half")
        raise OSError(28, "No space left on device", str(fp))

    monkeypatch.setattr(Image.Image, "save", broken_save)
    before = snapshot(user_dir)
    args = ["flame", "preview", "--out", "head.png", "--set", "preview.cell_size=32"]
    refuse(capsys, args, ".partial.png: No space left on device (while writing the outputs")
    assert snapshot(user_dir) == before


def test_one_error_family_at_the_cli():
    """Input errors of the package and of the kernels, and file-system failures a user can
    fix, print one line; anything else is a bug and keeps its traceback."""
    import errno

    from ggtalker_jax.cli import user_mistake
    from ggtalker_jax.errors import InputError
    from ggtalker_jax.kernels.splat import SplatInputError

    assert user_mistake(InputError("a.npz: no such file")) == "a.npz: no such file"
    assert user_mistake(SplatInputError("capacity=0: pass an int >= 1")).startswith("capacity=0")
    full = OSError(errno.ENOSPC, "No space left on device", "out/demo.mp4")
    assert user_mistake(full).startswith("out/demo.mp4: No space left on device")
    assert user_mistake(RuntimeError("a bug")) is None
    assert user_mistake(ValueError("a bug")) is None


def test_demo_force_keeps_a_world_that_holds_user_files(user_dir, capsys):
    """``out/world`` with a valid world.json but a user's notes in it is not the demo's."""
    assert main(["world", "--out", "out/world", *TINY_WORLD]) == 0
    capsys.readouterr()
    (user_dir / "out" / "world" / "NOTES.txt").write_text("mine\n")
    before = snapshot(user_dir)
    refuse(capsys, ["demo", "--out", "out", "--force"], "out/world: is not a ggtalker demo output")
    assert snapshot(user_dir) == before


TINY_WORLD = ["--identities", "1", "--clips-per-identity", "1", "--seconds", "0.6", "--no-video"]


@pytest.mark.parametrize(
    "setup,args,message",
    [
        # A user's file with the temporary name's old pattern is never touched.
        (
            lambda d: (d / "pp.partial.png").write_text("mine"),
            ["flame", "preview", "--out", "pp.partial.png"],
            "already exists",
        ),
        (
            lambda d: os.symlink("/nowhere/video.mp4", d / "dl.png"),
            ["flame", "preview", "--out", "dl.png", "--force"],
            "is a symbolic link to nothing",
        ),
        (
            lambda d: os.symlink("/nonexistent", d / "dang"),
            ["world", "--out", "dang"],
            "dang: is a symbolic link to nothing",
        ),
        (
            lambda d: os.symlink("loop", d / "loop"),
            ["world", "--out", "loop/w"],
            "loop: is a symbolic link to nothing",
        ),
        (
            lambda d: (d / "out").mkdir() or os.symlink("/nowhere/v.mp4", d / "out" / "demo.mp4"),
            ["demo", "--out", "out", "--force"],
            "out/demo.mp4: is not a ggtalker demo output",
        ),
        (lambda d: None, ["world", "--out", "a" * 300], "File name too long"),
        (lambda d: None, ["flame", "convert", "m.npz", "hd.NPZ"], "expected a .npz file name"),
        (lambda d: None, ["flame", "preview", "--out", ".png"], "e.g. out.png"),
        (lambda d: None, ["world", "--out", "w", "--seed", "1.5"], "world: argument --seed"),
        (lambda d: None, ["world", "--out", "w", "--set", "seed=5"], "takes its seed from"),
        (lambda d: None, ["nope"], "invalid choice: 'nope'"),
    ],
)
def test_links_long_names_suffixes_and_flags_are_one_line(user_dir, capsys, setup, args, message):
    (user_dir / "m.npz").write_bytes(b"")
    setup(user_dir)
    before = snapshot(user_dir) if not (user_dir / "loop").is_symlink() else None
    with (
        pytest.raises(SystemExit) if args == ["nope"] or "1.5" in args else contextlib.nullcontext()
    ):
        refuse(capsys, args, message)
    if args == ["nope"] or "1.5" in args:  # argparse exits itself, with the same one line
        err = capsys.readouterr().err.strip()
        assert err.startswith("ggtalker: error:") and "\n" not in err and message in err
    if before is not None:
        assert snapshot(user_dir) == before


def test_demo_and_world_refuse_to_write_inside_a_world(user_dir, capsys):
    assert main(["world", "--out", "w", *TINY_WORLD]) == 0
    capsys.readouterr()
    before = snapshot(user_dir)
    refuse(capsys, ["demo", "--out", "w"], "is or lies inside the world")
    refuse(capsys, ["demo", "--out", "w/id000/clip000"], "is or lies inside the world")
    refuse(capsys, ["world", "--out", "w/id000", *TINY_WORLD], "lies inside the world")
    assert snapshot(user_dir) == before


def test_one_writer_per_output_folder(tmp_path):
    from ggtalker_jax.errors import InputError
    from ggtalker_jax.outputs import exclusive

    with exclusive(tmp_path / "out", "demo"):
        with pytest.raises(InputError, match="another ggtalker demo is writing here"):
            with exclusive(tmp_path / "out", "demo"):
                pass
    with exclusive(tmp_path / "out", "demo"):  # released
        pass


def test_an_empty_stage_or_a_half_published_demo_reruns_without_force(tmp_path, monkeypatch):
    """A run stopped right after creating demo.partial/, or killed while publishing over an
    earlier demo, leaves a state the same command carries on from."""
    from ggtalker_jax import demo

    out = tmp_path / "out"
    (out / demo.STAGE).mkdir(parents=True)
    assert demo._claim(out, force=False) == out / demo.STAGE
    # An earlier finished demo, and a new one staged and half published when the kill came.
    for name in ("demo.mp4", "demo_grid.png", "config.json", "metrics.json"):
        (out / name).write_text("old")
        (out / demo.STAGE / name).write_text("new")
    (out / demo.STAGE / demo._STAGE_MARK).write_text("{}")
    for folder in ("world", "identity"):
        (out / demo.STAGE / folder).mkdir()
    (out / demo.STAGE / "world" / "world.json").write_text('{"config": {}, "model": "m"}')
    (out / demo.STAGE / "identity" / "identity.json").write_text('{"kind": "ggtalker-identity"}')
    moved = []

    def replace_then_die(src, dst):
        if moved:
            raise KeyboardInterrupt  # the kill, after the first file
        moved.append(dst)
        os.rename(src, dst)

    monkeypatch.setattr(demo.os, "replace", replace_then_die)
    with pytest.raises(KeyboardInterrupt):
        demo._publish(out / demo.STAGE, out)
    assert not (out / "metrics.json").exists()  # no old marker beside new outputs
    assert demo._claim(out, force=False) == out / demo.STAGE  # the rerun may go on
