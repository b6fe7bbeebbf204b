"""Directories out: every interop command writes a whole folder, atomically.

The folder is built in a hidden sibling ``.DST.<random>.tmp/`` and published at the end by
:func:`posemb.files.output_dir` (the one home of output folders, used by every command
that writes one): a failure or a kill never leaves a half-written ``DST``, an existing
``DST`` is only replaced with ``--force`` (once the new folder is complete), and of two
commands writing one ``DST`` at once one is refused. The source is never written to.

Crash leftovers: while a process fills its temporary folder it holds an OS lock
(``fcntl.flock``) on that folder. A kill releases the lock and leaves the folder behind;
the next command writing the same ``DST`` removes every such leftover it can lock, and
never one a live process still holds. (Where ``fcntl`` does not exist, leftovers are left
alone.)

This module adds what the interop commands copy from a source folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..data.paths import inside
from ..files import leftover_pattern, output_dir, remove_leftovers

__all__ = ["copy_file", "files_to_copy", "leftover_pattern", "output_dir", "remove_leftovers"]


def files_to_copy(src: Path, skip: set[str]) -> tuple[list[Path], list[str]]:
    """``src``'s top-level files except ``skip``, and the folders that will not be copied.

    Checked before anything is written: a link to a file outside ``src`` is refused
    (:func:`posemb.data.inside`), so nothing outside the source ever reaches ``dst``; a link
    that stays inside is copied as the file it points to; a FIFO, a device or a socket is
    refused (copying it would block). Folders (and links to folders) are never read.
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
