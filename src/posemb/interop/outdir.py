"""Directories out: every interop command writes a whole folder, atomically.

The folder is built in a hidden sibling ``.DST.<random>.tmp/`` and renamed into place at
the end, so a failure or a kill never leaves a half-written ``DST``, and an existing
``DST`` is only replaced with ``--force``. The source is never written to.

Crash leftovers: while a process fills its temporary folder it holds an OS lock
(``fcntl.flock``) on that folder. A kill releases the lock and leaves the folder behind;
the next command writing the same ``DST`` removes every such leftover it can lock, and
never one a live process still holds. (Where ``fcntl`` does not exist, leftovers are left
alone.)
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from ..data.paths import inside

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock, no cleanup
    fcntl = None  # type: ignore[assignment]

_TOKEN = "abcdefghijklmnopqrstuvwxyz0123456789_"  # as tempfile's, so older leftovers match too


def leftover_pattern(name: str) -> re.Pattern[str]:
    """Names of the temporary folders (and moved-aside old ``DST``) of a ``DST`` called ``name``."""
    return re.compile(rf"\.{re.escape(name)}\.[{_TOKEN}]{{8}}\.tmp(\.old)?")


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


@contextlib.contextmanager
def output_dir(dst: str | Path, *, force: bool, src: str | Path | None = None) -> Iterator[Path]:
    """A fresh folder to fill; it becomes ``dst`` when the ``with`` block ends cleanly.

    Args:
        dst: the directory to create. An existing empty directory is fine; an existing
            file or non-empty directory is refused unless ``force`` (then it is replaced;
            a link is replaced itself, never what it points to).
        force: replace an existing ``dst``.
        src: the source directory; ``dst`` may not be it, inside it, or hold it.
    """
    dst = Path(dst)
    target = _target(dst)
    if src is not None:
        source = Path(src).resolve()
        if any(_inside(t, source) or _inside(source, t) for t in (target, dst.resolve())):
            raise ValueError(
                f"DST {str(dst)!r} overlaps SRC {str(src)!r}; the source is never modified: choose "
                "a DST outside it"
            )
    _check_parent(dst, target)
    occupied = dst.is_file() or dst.is_symlink() or (dst.is_dir() and any(dst.iterdir()))
    if occupied and not force:
        raise FileExistsError(
            f"{str(dst)!r} already exists and is not empty; choose another DST or pass --force"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target.parent, target.name)
    tmp, lock = _new_folder(target.parent, target.name)
    try:
        yield tmp
        _move_into_place(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if lock is not None:
            os.close(lock)


def _target(dst: Path) -> Path:
    """``dst`` with its folder resolved but not its last part (a link there is replaced)."""
    if dst.name in ("", ".", ".."):
        return dst.resolve()
    return dst.parent.resolve() / dst.name


def _check_parent(dst: Path, target: Path) -> None:
    """Refuse a ``dst`` under a file (``FILE/sub``) in one line, before any ``mkdir``."""
    for folder in target.parents:
        if folder.exists():
            if not folder.is_dir():
                raise NotADirectoryError(
                    f"cannot create DST {str(dst)!r}: {str(folder)!r} is a file, not a folder; "
                    "choose a DST whose parent is a folder"
                )
            return


def _move_into_place(tmp: Path, target: Path) -> None:
    old = None
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        old = target.parent / f"{tmp.name}.old"
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _new_folder(parent: Path, name: str) -> tuple[Path, int | None]:
    """A new ``.NAME.<random>.tmp`` folder in ``parent`` and the fd holding its lock.

    A concurrent :func:`remove_leftovers` may lock and remove the folder between its
    ``mkdir`` and our lock; then the folder at that name is gone (or another one), which
    the inode comparison notices, and a new name is tried.
    """
    while True:
        tmp = parent / f".{name}.{''.join(secrets.choice(_TOKEN) for _ in range(8))}.tmp"
        try:
            os.mkdir(tmp, 0o777)  # a normal folder's mode (0777 & ~umask)
        except FileExistsError:
            continue
        if fcntl is None:  # pragma: no cover
            return tmp, None
        fd = os.open(tmp, os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits only while a cleaner removes it
        try:
            same = os.stat(tmp, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return tmp, fd
        os.close(fd)


def remove_leftovers(parent: Path, name: str) -> list[str]:
    """Remove the unlocked temporary folders a killed command left for ``parent/name``.

    A folder whose lock another (live) process holds is kept. Returns the names removed.
    """
    if fcntl is None:  # pragma: no cover
        return []
    pattern = leftover_pattern(name)
    removed = []
    for entry in sorted(parent.iterdir()):
        if not pattern.fullmatch(entry.name) or entry.is_symlink() or not entry.is_dir():
            continue
        try:
            fd = os.open(entry, os.O_RDONLY)
        except OSError:  # gone meanwhile (renamed into place by its owner)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a live process is filling it
            os.close(fd)
            continue
        try:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
        finally:
            os.close(fd)
    return removed


def files_to_copy(src: Path, skip: set[str]) -> tuple[list[Path], list[str]]:
    """``src``'s top-level files except ``skip``, and the folders that will not be copied.

    Checked before anything is written: a link to a file outside ``src`` is refused
    (:func:`posemb.data.inside`), so nothing outside the source ever reaches ``dst``; a link
    that stays inside is copied as the file it points to. Folders (and links to folders)
    are never read.
    """
    files, skipped_dirs = [], []
    for entry in sorted(Path(src).iterdir()):
        if entry.name in skip:
            continue
        if entry.is_dir():
            if not entry.name.startswith("."):
                skipped_dirs.append(entry.name)
            continue
        path = inside(src, entry.name)
        if path.is_file():
            files.append(path)
    return files, skipped_dirs


def copy_file(source: Path, target: Path) -> None:
    """A byte-for-byte copy with a new file's mode (0666 & ~umask, as every file written):
    ``copyfile``, not ``copy2``, which would carry over a source's 0600."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
