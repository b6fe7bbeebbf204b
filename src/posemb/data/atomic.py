"""Atomic file writes: a temporary file in the same folder, flush, fsync, ``os.replace``.

A crash or kill at any moment leaves either the old file or the complete new one, never a
torn one; the temporary file (``.NAME.*.tmp``) is removed when the write fails.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file that replaces ``path`` when the ``with`` block ends cleanly.

    Args:
        path: the final path; its folder is created if missing.
        mode: ``"wb"`` or ``"w"`` (text mode writes UTF-8).

    Example:
        >>> with atomic_open(out / "tokens.bin") as f:
        ...     f.write(chunk.tobytes())
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, file_mode())  # mkstemp makes 0600; give the file a normal file's mode
        encoding = "utf-8" if mode == "w" else None
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return the path."""
    with atomic_open(path, "w") as f:
        f.write(text)
    return Path(path)


def _fsync_dir(directory: Path) -> None:
    """Persist the rename itself (best effort: not every platform opens folders)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def file_mode() -> int:
    """A new file's usual mode: 0666 less the process's umask (0644 under umask 022)."""
    return 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
