"""One writer per run folder: an OS file lock held while a process writes the run.

Two ``posemb train --out R`` at once, or ``--resume R`` while R trains, would interleave
their metrics and delete each other's half-written checkpoint files. The writer holds
``fcntl.flock`` on ``R/run.lock`` for as long as it writes; the lock file's content names
the holder (pid, host, start time, command) for the message the second writer gets. The
operating system releases the lock when the holder exits, however it exits (``kill -9``
included), so a stale lock never blocks anyone: the stale file's content is just text.
Readers (``posemb.load``, generate, eval) never take the lock.

The holder removes the lock file when it is done. A process that opened the file just
before its removal may lock the removed file: after locking, :class:`RunLock` checks that
the path still names the file it locked, and retries when it does not.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

from .layout import LOCK_FILE


class RunLockedError(ValueError):
    """Another process is writing this run."""


def _holder_text() -> str:
    return json.dumps(
        {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "command": " ".join(sys.argv) or sys.executable,
        }
    )


def _describe_holder(text: str) -> str:
    try:
        info = json.loads(text)
        return (
            f"pid {info['pid']} on {info['host']} since {info['started']} "
            f"(command: {info['command']})"
        )
    except (ValueError, KeyError, TypeError):
        return "another process"


class RunLock:
    """``with RunLock(run_dir):`` holds the run's writer lock (the folder must exist).

    Raises:
        RunLockedError: another process holds it; the message names that process.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - no flock on this platform: no lock
            return self
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _describe_holder(os.read(fd, 4096).decode("utf-8", "replace"))
                os.close(fd)
                run = str(self.path.parent)
                raise RunLockedError(
                    f"{run!r} is being written by {holder}; wait for it to finish (or stop it), "
                    "then run this again, or choose another --out"
                ) from None
            except BaseException:
                os.close(fd)
                raise
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # we locked a file its last holder had just removed: try again
        os.ftruncate(fd, 0)
        os.write(fd, _holder_text().encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)  # before unlocking: see the module docstring
        os.close(self._fd)  # closing releases the lock
        self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
