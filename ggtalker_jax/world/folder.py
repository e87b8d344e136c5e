"""A world on disk: the clip-format folder ``ggtalker world`` writes, and the rules that keep
it safe to resume, replace and never confuse with a user's folder.

A world folder holds ``world.json`` (its stamp: the settings and the model) and
``idNNN/clipMMM/`` clip folders, each built in ``clipMMM.partial/`` and renamed when complete.
:func:`write_world` resumes the same world, restarts one with no finished clip, replaces
another only with ``force``, and refuses (``force`` or not) any folder holding something it
did not write; one process writes a folder at a time.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from pathlib import Path

from ggtalker_jax.config import WorldConfig
from ggtalker_jax.data.clip import holds_only_clip_files, write_clip
from ggtalker_jax.errors import InputError
from ggtalker_jax.flame.model import FlameModel
from ggtalker_jax.outputs import (
    exclusive,
    foreign_entries,
    is_partial,
    output_dir,
    refuse_foreign,
    remove_owned,
    write_text_atomic,
)
from ggtalker_jax.world.generate import check_world_inputs, clip_name, iter_world

STAMP = "world.json"

_ID_DIR = re.compile(r"id\d{3,}")
_CLIP_DIR = re.compile(r"clip\d{3,}(\.partial)?")
_WORLD_PARTS = "a world (world.json and its idNNN/clipMMM folders)"


def _owned_by_world(entry: Path) -> bool:
    """Whether ``entry`` (a child of a world folder) is something :func:`write_world` writes."""
    if entry.name == STAMP or (is_partial(entry) and entry.name.startswith(".world.")):
        return entry.is_file() and not entry.is_symlink()
    if _ID_DIR.fullmatch(entry.name) and entry.is_dir() and not entry.is_symlink():
        return all(
            _CLIP_DIR.fullmatch(c.name)
            and c.is_dir()
            and not c.is_symlink()
            and holds_only_clip_files(c)
            for c in entry.iterdir()
        )
    return False


def world_stamp_text(model: FlameModel, config: WorldConfig) -> str:
    """The text of ``world.json`` for this world: what makes two worlds the same."""
    return json.dumps({"config": dataclasses.asdict(config), "model": model.source}, sort_keys=True)


def is_world(folder: Path) -> bool:
    """Whether ``folder`` is a world ggtalker wrote and nothing else: its ``world.json`` is
    ggtalker's and every entry is one :func:`write_world` writes (so replacing it loses
    nothing of a user's)."""
    return (
        folder.is_dir()
        and not folder.is_symlink()
        and read_world_stamp(folder) is not None
        and not foreign_entries(folder, _owned_by_world)
    )


def enclosing_world(path: Path) -> Path | None:
    """The world folder that ``path`` lies strictly inside, if any (writing there would
    make that world hold files ggtalker's world does not)."""
    for parent in Path(os.path.abspath(path)).parents:
        if read_world_stamp(parent) is not None:
            return parent
    return None


def read_world_stamp(out: Path) -> dict | None:
    """The ``world.json`` of a world folder as a dict, or ``None`` if there is none or it is
    not one ggtalker wrote (not UTF-8 JSON with ``config`` and ``model``)."""
    try:
        stamp = json.loads((out / STAMP).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) and {"config", "model"} <= set(stamp) else None


def _prepare_out(out: Path, stamp_text: str, force: bool) -> None:
    """Make ``out`` ready: new, empty, or a world (resumed when it is this same world).

    A folder is a world when its ``world.json`` is ggtalker's and it holds nothing else that
    ggtalker did not write; anything else is refused, ``--force`` or not, so ``--force`` can
    never delete a user's files. Another world is replaced only with ``--force``, unless it
    has no finished clip yet: then a corrected rerun after a failure simply starts over.
    """
    stamp = out / STAMP
    # A first run killed while writing its stamp leaves only the stamp's temporary file.
    only_stamp_temp = out.is_dir() and all(
        _owned_by_world(p) and is_partial(p) for p in out.iterdir()
    )
    if out.is_dir() and any(out.iterdir()) and not only_stamp_temp:
        if read_world_stamp(out) is None:
            refuse_foreign(out, lambda p: False, _WORLD_PARTS)
        refuse_foreign(out, _owned_by_world, _WORLD_PARTS)
        same = stamp.read_text(encoding="utf-8").strip() == stamp_text
        finished = any(
            p.is_file() and not p.parent.name.endswith(".partial")
            for p in out.glob("id*/clip*/meta.json")
        )
        if force or (not same and not finished):
            remove_owned(out, _owned_by_world, _WORLD_PARTS)
        elif not same:
            raise InputError(
                f"{out}: already holds a different world (other settings or model); pass "
                "--force to replace it, or choose another --out"
            )
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(stamp, stamp_text + "\n")
    for partial in sorted(out.glob("id*/clip*.partial"), reverse=True):
        shutil.rmtree(partial, ignore_errors=True)


def write_world(
    out: str | os.PathLike,
    model: FlameModel,
    config: WorldConfig,
    force: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Write every clip of the world under ``out`` in the clip format (``idNNN/clipMMM/``).

    Safe to interrupt and rerun: each clip is built in ``clipMMM.partial`` and renamed when
    complete, so finished clips are kept and a partial one is redone. ``out`` must be new,
    empty, or a world ggtalker wrote: this same world is resumed, another one is replaced only
    with ``force`` (unless none of its clips was finished). A folder holding anything else is
    refused with one line, ``force`` or not: ``force`` removes only what ggtalker wrote.

    Returns:
      the clip folders written by this call (not those kept).

    Raises:
      InputError: ``out`` cannot be written, lies inside another world, holds something else,
        is being written by another process, or the request is too large.
    """
    out = output_dir(out)
    inside = enclosing_world(out)
    if inside is not None:
        raise InputError(f"{out}: lies inside the world {inside}; choose an --out outside it")
    check_world_inputs(config)
    with exclusive(out, "world"):
        _prepare_out(out, world_stamp_text(model, config), force)
        return _write_clips(out, model, config, progress)


def _write_clips(out: Path, model: FlameModel, config: WorldConfig, progress: bool) -> list[Path]:
    """Every clip of ``out`` that is not finished yet, with a progress bar."""
    from tqdm import tqdm

    done = lambda name: (out / name / "meta.json").is_file()
    names = [
        clip_name(i, j) for i in range(config.identities) for j in range(config.clips_per_identity)
    ]
    bar = tqdm(
        total=len(names),
        initial=sum(map(done, names)),
        desc=f"world {out}",
        unit="clip",
        disable=not progress,
    )
    written = []
    with bar:
        for name, clip in iter_world(model, config, skip=done):
            # A folder without meta.json is an unfinished leftover: replace it.
            written.append(write_clip(out / name, clip, force=True))
            bar.update(1)
    return written
