"""Files in and out: atomic writes, JSON objects and safetensors weights, with one-line errors.

The one home of posemb's file reading and writing; every layer (data, train, eval,
analysis, interop) uses it, and it imports nothing of posemb.

- Writes are atomic (:func:`atomic_open`, :func:`atomic_write_text`, :func:`write_json`): a
  temporary file in the same folder, flush, fsync, ``os.replace``. A crash or kill at any
  moment leaves either the old file or the complete new one, never a torn one; the
  temporary file (``.NAME.*.tmp``) is removed when the write fails. New files get the mode
  of any new file (:func:`file_mode`: 0666 less the umask), safetensors files included.
- :func:`read_json` reads a JSON object; a missing file, a folder, text that is not JSON
  or JSON that is not an object is one line naming the file.
- Weights are safetensors only: nothing is ever unpickled. :func:`open_safetensors` (and
  :func:`read_safetensors`, :func:`tensor_shapes`, :func:`read_tensor` on top of it) turn a
  missing, non-regular or damaged file into one line naming it; :func:`write_safetensors`
  writes one, fsynced, an I/O error naming the path.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

# what to do about a damaged weights file, unless the caller knows better
REFETCH = "download or copy it again"


# -- atomic writes -------------------------------------------------------------------------------
@contextlib.contextmanager
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


def write_json(path: str | Path, data: Any) -> Path:
    """``data`` as indented JSON (UTF-8, not ASCII-escaped), written atomically."""
    return atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def fsync_file(path: str | Path) -> None:
    """Flush a file someone else wrote (``save_file``, ``write_text``) to the disk."""
    with open(path, "rb") as f:
        os.fsync(f.fileno())


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


# -- JSON ----------------------------------------------------------------------------------------
def read_json(path: str | Path) -> dict[str, Any]:
    """The JSON object in ``path``.

    Raises:
        FileNotFoundError: ``path`` is missing.
        IsADirectoryError: ``path`` is a folder.
        ValueError: not UTF-8, not JSON, or JSON that is not an object; names ``path``.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory, not a JSON file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing") from None
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
        raise ValueError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


# -- safetensors ---------------------------------------------------------------------------------
@contextlib.contextmanager
def open_safetensors(path: str | Path, fix: str = REFETCH) -> Iterator[Any]:
    """``safe_open(path)``, its failures as one line naming ``path``.

    Args:
        path: a ``.safetensors`` file.
        fix: what the user should do about a damaged file (ends the message).

    Raises:
        FileNotFoundError: ``path`` is missing.
        IsADirectoryError: ``path`` is a folder.
        ValueError: the header or the data cannot be read (damaged or truncated), also when
            a read inside the ``with`` block fails.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory, not a safetensors weights file")
    try:
        with safe_open(str(path), framework="pt") as f:
            yield f
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing") from None
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ValueError(
            f"{path} is not a readable safetensors file ({str(e).splitlines()[0]}): the file is "
            f"corrupted (damaged or truncated); {fix}"
        ) from None


def read_safetensors(
    path: str | Path, fix: str = REFETCH
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Every tensor of one safetensors file, and its header metadata (see open_safetensors)."""
    with open_safetensors(path, fix) as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})


def tensor_shapes(path: str | Path, fix: str = REFETCH) -> dict[str, tuple[int, ...]]:
    """``{name: shape}`` of a safetensors file, read from its header only."""
    with open_safetensors(path, fix) as f:
        return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}


def read_tensor(path: str | Path, key: str, fix: str = REFETCH) -> torch.Tensor:
    """One tensor of a safetensors file, as stored (a missing ``key`` is a ValueError)."""
    with open_safetensors(path, fix) as f:
        tensor = f.get_tensor(key) if key in f.keys() else None
    if tensor is None:  # raised here, not inside the block: that would call the file damaged
        raise ValueError(f"{path} has no tensor {key!r}")
    return tensor


def write_safetensors(
    path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    """A safetensors file of contiguous CPU copies, fsynced, with a normal file's mode.

    The metadata gets ``format=pt`` (transformers requires it). safetensors alone writes a
    0600 file; it gets 0666 less the umask like every other file posemb writes. An I/O error
    (a full disk, a read-only folder) is an OSError naming ``path``.
    """
    path = Path(path)
    out = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        save_file(out, str(path), metadata={"format": "pt", **(metadata or {})})
    except SafetensorError as e:
        code = re.search(r"os error (\d+)", str(e))
        if code is None:
            raise
        raise OSError(int(code[1]), os.strerror(int(code[1])), str(path)) from None
    os.chmod(path, file_mode())
    fsync_file(path)
