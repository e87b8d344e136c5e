"""Safe outputs: every command writes through these helpers, so the rules hold everywhere.

1. **Checked before any work.** :func:`output_file` and :func:`output_dir` refuse, with one
   line, an empty path, a path under a file or a broken symbolic link, a path of the wrong
   kind (a folder where a file goes, or the reverse), a wrong suffix, a name the file system
   rejects, and a location that cannot be written (probed by creating and removing a
   temporary file, which also catches read-only mounts for root, for whom permission bits
   mean nothing).
2. **Complete or absent.** :func:`atomic_file` yields a fresh hidden temporary name beside
   the target (``.NAME.<random>.partial.SUFFIX``: unique, so never a user's file, with the
   suffix kept because ffmpeg, Pillow and ``np.savez`` pick the format from it) and renames
   it over the target only when the ``with`` block succeeds; a kill leaves at most that
   hidden file, never a target that looks finished. On POSIX the rename is atomic.
3. **``--force`` removes only what the project wrote.** A file target is the command's own
   output name; a folder is removed only through :func:`remove_owned`, which takes the
   entries its caller recognises as its own and refuses, naming it, anything else.
4. **One writer per folder.** :func:`exclusive` holds an advisory lock on an output folder,
   so two commands writing the same place is one line, not a mix of both.

Time and memory are checked up front too (:func:`require_memory`): a request that cannot fit
says so in one line instead of swapping for an hour and dying.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from ggtalker_jax.errors import InputError

PARTIAL = ".partial"


def _nonempty(path: str | os.PathLike, what: str) -> Path:
    if not str(path).strip():
        raise InputError(f"{what} {str(path)!r}: empty path; name a file or folder")
    return Path(path)


def _dangling(path: Path) -> bool:
    """A symbolic link whose target is missing (or a link loop): writing through it would
    create or replace something elsewhere."""
    return path.is_symlink() and not path.exists()


def _refuse_dangling(path: Path, what: str) -> None:
    if _dangling(path):
        raise InputError(
            f"{what} {path}: is a symbolic link to nothing ({os.readlink(path)}); remove it or "
            "choose another path"
        )


def _probe_writable(path: Path, what: str) -> None:
    """Refuse ``path`` if it lies under a file or a broken link, or its nearest existing
    folder is not writable. Nothing is created except a probe file, removed at once."""
    ancestor = path.parent if path.name else path
    while not ancestor.exists() and ancestor != ancestor.parent:
        _refuse_dangling(ancestor, what)
        ancestor = ancestor.parent
    ancestor = ancestor if str(ancestor) else Path(".")
    if not ancestor.is_dir():
        raise InputError(
            f"{what} {path}: {ancestor} is a file, not a folder; choose a path outside it"
        )
    try:
        fd, probe = tempfile.mkstemp(dir=ancestor, prefix=".ggtalker-probe-")
    except OSError as e:
        raise InputError(
            f"{what} {path}: cannot write in {ancestor} ({e.strerror}); choose a writable "
            "location"
        ) from None
    os.close(fd)
    os.unlink(probe)


def _checked(check):
    """Run a path check; a file-system error there (a name too long, a link loop) is the
    path's fault, so it becomes one line."""

    @functools.wraps(check)
    def run(path, *args, **kwargs):
        try:
            return check(path, *args, **kwargs)
        except OSError as e:
            what = kwargs.get("what", inspect.signature(check).parameters["what"].default)
            raise InputError(f"{what} {str(path)[:120]}: {e.strerror}") from None

    return run


@_checked
def output_file(
    path: str | os.PathLike,
    force: bool,
    *,
    what: str = "output",
    suffixes: tuple[str, ...] = (),
) -> Path:
    """Check a single-file output before any work.

    Args:
      path: the target file.
      force: an existing file may be replaced (it is the command's own output name).
      what: how the message names the argument (``--out``, ``out.npz``, ...).
      suffixes: allowed suffixes, exactly (lower case, with the dot); empty allows any.

    Returns:
      ``path`` as a :class:`Path`.

    Raises:
      InputError: empty path, wrong suffix, a folder or a broken link at ``path``, an
        existing file without ``force``, a path under a file, or a location that cannot be
        written.
    """
    path = _nonempty(path, what)
    if suffixes and (path.suffix not in suffixes or not path.stem):
        want = " or ".join(suffixes)
        stem = path.stem if path.stem and not path.stem.startswith(".") else "out"
        raise InputError(
            f"{what} {path}: expected a {want} file name, e.g. "
            f"{path.with_name(stem + suffixes[0])}"
        )
    _refuse_dangling(path, what)
    if path.is_dir():
        raise InputError(f"{what} {path}: is a folder; name a file")
    if path.exists() and not force:
        raise InputError(f"{path}: already exists; pass --force to overwrite it")
    _probe_writable(path, what)
    return path


@_checked
def output_dir(path: str | os.PathLike, *, what: str = "--out") -> Path:
    """Check a folder output before any work: not empty, not a file or a broken link, not
    under a file, writable. Whether its contents may be replaced is the caller's question.

    Raises:
      InputError: as :func:`output_file`, for folders.
    """
    path = _nonempty(path, what)
    _refuse_dangling(path, what)
    if path.exists() and not path.is_dir():
        raise InputError(f"{what} {path}: is a file, not a folder; choose another path")
    _probe_writable(path / "x" if path.is_dir() else path, what)
    return path


def is_partial(path: Path) -> bool:
    """Whether ``path`` is a temporary name of :func:`atomic_file` or a ``*.partial``
    folder (something unfinished that ggtalker wrote)."""
    return path.name.endswith(PARTIAL) or (path.name.startswith(".") and PARTIAL + "." in path.name)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Write ``path`` completely or not at all.

    Yields a fresh temporary path beside ``path`` (``.NAME.<random>.partial.SUFFIX``: hidden,
    unique, so it can never be a user's file, and with the suffix kept for writers that pick
    the format from it, such as ffmpeg, Pillow and ``np.savez``). When the block ends
    without an exception the temporary file replaces ``path`` in one rename (atomic on
    POSIX); otherwise it is removed. A kill leaves at most the hidden temporary file.

    >>> with atomic_file("out/demo.mp4") as tmp:   # doctest: +SKIP
    ...     write_mp4(tmp, frames)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.stem}.", suffix=f"{PARTIAL}{path.suffix}"
    )
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise RuntimeError(f"{tmp}: the writer produced no file")
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual mode
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def exclusive(folder: Path, what: str) -> Iterator[None]:
    """Hold an advisory lock on ``folder`` (created if missing) for the block, so two
    commands never write one output folder at once.

    Raises:
      InputError: another process holds it.
    """
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(
                f"{folder}: another ggtalker {what} is writing here; wait for it to finish or "
                "choose another --out"
            ) from None
        yield
    finally:
        os.close(fd)  # closing releases the lock


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write a UTF-8 text file through :func:`atomic_file`."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def remove_path(path: Path) -> None:
    """Remove a file or folder the caller has established as its own."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def foreign_entries(folder: Path, owned: Callable[[Path], bool]) -> list[Path]:
    """Entries of ``folder`` that ``owned`` does not recognise, sorted."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if not owned(p))


def refuse_foreign(folder: Path, owned: Callable[[Path], bool], what: str) -> None:
    """Refuse, ``--force`` or not, a folder holding anything the project did not write.

    Raises:
      InputError: naming the first foreign entry and how many there are.
    """
    foreign = foreign_entries(folder, owned)
    if foreign:
        more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        raise InputError(
            f"{folder}: holds {foreign[0].name}{more}, which ggtalker did not write; it "
            f"replaces only {what}, even with --force; choose another --out or empty it yourself"
        )


def remove_owned(folder: Path, owned: Callable[[Path], bool], what: str) -> None:
    """Remove the entries of ``folder`` that ``owned`` recognises, after checking that
    nothing else is there. ``folder`` itself stays (it may be the working directory)."""
    refuse_foreign(folder, owned, what)
    for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
        remove_path(entry)


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (``MemAvailable``), or ``None``."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def require_memory(need: int, what: str, fix: str, fraction: float = 0.8) -> None:
    """Refuse a request whose working set would not fit in ``fraction`` of free memory.

    Args:
      need: estimated peak bytes.
      what: the request, for the message (e.g. ``"one clip of 100 frames x 3 cameras at
        2048x2048"``).
      fix: what to lower.

    Raises:
      InputError: ``need`` exceeds the budget.
    """
    free = available_memory()
    if free is not None and need > fraction * free:
        raise InputError(
            f"{what} needs about {need / 2**30:.1f} GiB of memory, but {free / 2**30:.1f} GiB "
            f"is available; {fix}"
        )
