"""Claiming the folder a run is written into: locked, checked, left clean if the run never
started.

:func:`work_folder` claims the folder of a job that writes several runs (sweep, demo)
the same way: one writer, and a failed start leaves nothing behind.

Rank 0 holds the run folder's writer lock (:mod:`.lock`) from the first check of the
folder to the end: a second writer is refused naming this process. A new run's ``--out``
must be new, empty, or hold a run that stopped before its first checkpoint (which is
cleared and started anew); a new run that fails before its first checkpoint removes what
it wrote, so the same ``--out`` works again. ``--resume`` first completes a checkpoint a
kill interrupted (:mod:`.checkpoint`).
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..files import read_json
from .checkpoint import STALE_TEMPORARY, complete_pending, remove_stale_temporaries
from .layout import (
    CONFIG_FILE,
    JOURNAL,
    LOCK_FILE,
    METRICS_FILE,
    MODEL_FILE,
    RUN_SETTINGS_FILE,
    STATE_FILE,
    TOKENIZER_FILE,
)
from .lock import RunLock

# what a run holds before its first checkpoint (config.json, or a Hugging Face model's
# posemb_run.json, is written last of them; the latter lists the model's other start files)
_START_FILES = (CONFIG_FILE, RUN_SETTINGS_FILE, TOKENIZER_FILE, METRICS_FILE, "tb", LOCK_FILE)


@dataclass
class RunFolder:
    """The run folder of one training process.

    Attributes:
        path: the folder.
        resume: continuing the run there (else a new run).
        checkpoints: how many checkpoints this process has committed.
    """

    path: Path
    resume: bool
    checkpoints: int = 0


@contextlib.contextmanager
def open_run(run_dir: Path, resume: bool, main: bool) -> Iterator[RunFolder]:
    """Claim ``run_dir`` (rank 0: lock and check it) for the ``with`` block.

    A new run that fails inside the block before its first checkpoint removes what it wrote
    (and the folder, if it created it); the lock is released however the block ends.
    """
    folder = RunFolder(Path(run_dir), resume)
    lock, created = _claim(folder.path, resume) if main else (None, False)
    try:
        yield folder
    except BaseException:
        if main and not resume and folder.checkpoints == 0:
            remove_unstarted(folder.path, created)  # nothing worth keeping: do not block --out
        raise
    finally:
        if lock is not None:
            lock.release()


def _claim(run_dir: Path, resume: bool) -> tuple[RunLock, bool]:
    """Lock the run folder (creating a new one); return the lock and whether it was created."""
    if resume:
        lock = RunLock(run_dir).acquire()
        try:
            complete_pending(run_dir)  # finish a checkpoint a kill interrupted (holding the lock)
            remove_stale_temporaries(run_dir)  # and drop the temporary files it left
        except BaseException:
            lock.release()
            raise
        return lock, False
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(
            f"--out {str(run_dir)!r} is a file, not a directory; choose a new directory for the run"
        )
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = RunLock(run_dir).acquire()
    try:
        _check_fresh_out(run_dir)
    except BaseException:
        lock.release()
        if created:
            with contextlib.suppress(OSError):
                run_dir.rmdir()
        raise
    return lock, created


def _start_files(run_dir: Path) -> tuple[str, ...]:
    """_START_FILES, and the files a Hugging Face model's run listed in its posemb_run.json
    (its config.json, tokenizer files, ...)."""
    try:
        listed = read_json(run_dir / RUN_SETTINGS_FILE).get("start_files")
    except (OSError, ValueError):
        listed = None
    names = [n for n in listed or [] if isinstance(n, str) and "/" not in n and n != ".."]
    return (*_START_FILES, *names)


def _is_start_file(name: str, start: tuple[str, ...] = _START_FILES) -> bool:
    """A file of a run start: one of ``start``, a ``.next`` file of an uncommitted
    checkpoint, or the temporary file of an atomic write a kill interrupted."""
    if name in start or name.endswith(".next") or STALE_TEMPORARY.fullmatch(name):
        return True
    inner = name[1:].rsplit(".", 2)[0] if name.startswith(".") and name.endswith(".tmp") else ""
    return inner in (*start, JOURNAL)


def _check_fresh_out(run_dir: Path) -> None:
    """Refuse an --out that holds a run or other files; clear a run that never checkpointed."""
    if (run_dir / STATE_FILE).exists() or (run_dir / JOURNAL).exists():
        raise ValueError(
            f"{str(run_dir)!r} already holds a run; continue it with --resume {run_dir} "
            "or choose another --out"
        )
    if (run_dir / MODEL_FILE).exists():
        raise ValueError(
            f"{str(run_dir)!r} holds weights (model.safetensors) but no trainer state; "
            "delete it or choose another --out"
        )
    names = {p.name for p in run_dir.iterdir()}
    start = _start_files(run_dir)
    foreign = sorted(n for n in names if not _is_start_file(n, start))
    if foreign:
        raise ValueError(
            f"{str(run_dir)!r} is not empty and is not a posemb run (it holds {foreign[0]!r}); "
            "choose a new or empty directory for --out"
        )
    if CONFIG_FILE in names or RUN_SETTINGS_FILE in names:
        note(
            f"{run_dir} held a run that stopped before its first checkpoint (no weights saved); "
            "starting it anew"
        )
    remove_unstarted(run_dir, created=False)


def remove_unstarted(run_dir: Path, created: bool) -> None:
    """Remove what a run writes before its first checkpoint (and the folder, if ours)."""
    with contextlib.suppress(OSError):
        start = _start_files(run_dir)
        for p in list(run_dir.iterdir()):
            if not _is_start_file(p.name, start) or p.name == LOCK_FILE:
                continue  # not ours; or the lock, still held: RunLock.release removes it
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink(missing_ok=True)
        if created:
            (run_dir / LOCK_FILE).unlink(missing_ok=True)
            run_dir.rmdir()


@contextlib.contextmanager
def work_folder(folder: Path, keep: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """``folder`` (created if missing) written by this process alone for the ``with`` block.

    The folder of a job that trains runs for minutes and writes beside them (``posemb sweep``,
    which a rerun resumes, and ``posemb demo``) is not built aside and renamed: it holds the
    writer lock of a run (``run.lock``, :mod:`.lock`), so a second writer is refused naming
    this one. When the block fails (an error, Ctrl-C) and ``keep(folder)`` is false (None:
    never keep), what the block added is removed, and the folder too if this call made it:
    a failed start leaves nothing behind. A kill leaves the folder as it was; the next run
    of the same command resumes (sweep) or replaces (demo) it.
    """
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    lock = RunLock(folder).acquire()
    before = {p.name for p in folder.iterdir()} - {LOCK_FILE}
    try:
        yield folder
    except BaseException:
        if keep is None or not keep(folder):
            with contextlib.suppress(OSError):
                for p in folder.iterdir():
                    if p.name not in before and p.name != LOCK_FILE:
                        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
                if created:
                    lock.release()
                    folder.rmdir()
        raise
    finally:
        lock.release()


def note(text: str) -> None:
    """``posemb: note: TEXT`` on stderr."""
    print(f"posemb: note: {text}", file=sys.stderr)
