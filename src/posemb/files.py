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
- Only regular files are read (:func:`check_regular`): a FIFO, a device or a socket where a
  file is expected is refused in one line before it is opened (opening a FIFO blocks).
- Folders out (:func:`output_dir`): a command's whole output folder is built in a hidden
  sibling ``.NAME.<8 random characters>.tmp/`` and published by one atomic rename that never
  replaces what another process published meanwhile (:func:`rename_noreplace`), so of two
  writers to one destination exactly one succeeds and the other is refused ("already exists"); a
  failure, Ctrl-C or kill never leaves a half-written destination, and the next command
  writing the same destination removes a killed one's temporary folder. A disk error while
  filling or publishing it is an OSError naming the destination.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import re
import secrets
import shutil
import stat
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

    An OSError of a write (a full disk) names ``path``; the temporary file is removed.

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
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        if e.filename is None and e.errno is not None:  # a write: name the file (a full disk)
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise
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
    """Flush a file someone else wrote (``save_file``, ``write_text``) to the disk; an
    OSError (a full disk) names ``path``."""
    with open(path, "rb") as f:
        try:
            os.fsync(f.fileno())
        except OSError as e:
            raise OSError(e.errno, e.strerror, str(path)) from None


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


# -- regular files only --------------------------------------------------------------------------
class NotRegularFileError(ValueError):
    """A FIFO, a device or a socket where posemb expects a file (opening it may block)."""


_SPECIAL = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def special_kind(path: str | Path) -> str | None:
    """What ``path`` is when it is neither a regular file nor a folder ("a FIFO (named pipe)",
    "a character device", ...), following links; None otherwise (missing included)."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    return next((kind for test, kind in _SPECIAL if test(mode)), None)


def check_regular(path: str | Path) -> Path:
    """``path``, refused (:class:`NotRegularFileError`) when it is a FIFO, a device or a
    socket: posemb opens only regular files (a folder or a missing path passes: the caller
    says its own thing about those). Checked before any ``open``, which blocks on a FIFO."""
    kind = special_kind(path)
    if kind is not None:
        raise NotRegularFileError(
            f"{str(path)!r} is {kind}, not a regular file; posemb reads only regular files "
            "(opening this one could block forever): replace it with the file itself"
        )
    return Path(path)


# -- JSON ----------------------------------------------------------------------------------------
def read_json(path: str | Path) -> dict[str, Any]:
    """The JSON object in ``path``.

    Raises:
        FileNotFoundError: ``path`` is missing.
        IsADirectoryError: ``path`` is a folder.
        ValueError: not UTF-8, not JSON, or JSON that is not an object; names ``path``.
        NotRegularFileError: a FIFO, a device or a socket (never opened).
    """
    path = check_regular(path)
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
            a read inside the ``with`` block fails; a FIFO, a device or a socket (never
            opened: :class:`NotRegularFileError`).
    """
    path = check_regular(path)
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


# -- folders out ---------------------------------------------------------------------------------
# Errors of the disk rather than of a path: named after the destination being written.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG, errno.EIO})
_TOKEN = "abcdefghijklmnopqrstuvwxyz0123456789_"  # as tempfile's, so older leftovers match too
_AT_FDCWD, _RENAME_NOREPLACE = -100, 1

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock, no cleanup of leftovers
    fcntl = None  # type: ignore[assignment]


def leftover_pattern(name: str) -> re.Pattern[str]:
    """Names of the temporary folders (and a moved-aside old ``DST``) of a ``DST`` ``name``."""
    return re.compile(rf"\.{re.escape(name)}\.[{_TOKEN}]{{8}}\.tmp(\.old)?")


def _libc_renameat2() -> Any:
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError, TypeError):  # not glibc >= 2.28 (macOS, musl, Windows)
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_RENAMEAT2 = _libc_renameat2()


def rename_noreplace(src: str | Path, dst: str | Path) -> None:
    """Rename the folder ``src`` to ``dst`` unless ``dst`` exists: one atomic step.

    Linux: ``renameat2(RENAME_NOREPLACE)``. Where the call or the file system lacks it, an
    empty folder at ``dst`` is removed first and ``os.rename`` follows: it never replaces
    a non-empty folder, and a published folder is never empty, so of two processes
    publishing to one ``dst`` at most one succeeds either way.

    Raises:
        FileExistsError: ``dst`` exists (``filename`` is ``dst``).
    """
    src, dst = os.fsencode(src), os.fsencode(dst)
    if _RENAMEAT2 is not None:
        if _RENAMEAT2(_AT_FDCWD, src, _AT_FDCWD, dst, _RENAME_NOREPLACE) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            if code in (errno.EEXIST, errno.ENOTEMPTY):
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), os.fsdecode(dst))
            raise OSError(code, os.strerror(code), os.fsdecode(dst))
    if os.path.lexists(dst) and not (os.path.isdir(dst) and not os.path.islink(dst)):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), os.fsdecode(dst))
    try:
        os.rename(src, dst)
    except OSError as e:
        if e.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise FileExistsError(
                errno.EEXIST, os.strerror(errno.EEXIST), os.fsdecode(dst)
            ) from None
        raise


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


@contextlib.contextmanager
def output_dir(
    dst: str | Path,
    *,
    force: bool,
    src: str | Path | None = None,
    what: str = "DST",
    under_src: bool = False,
) -> Iterator[Path]:
    """A fresh hidden folder to fill; it is published as ``dst`` when the block ends cleanly.

    Args:
        dst: the folder to create. An existing empty folder is fine; an existing file or
            non-empty folder is refused unless ``force``.
        force: replace an existing ``dst``, only once the new folder is complete and only if
            it is still the one found at the start (a link is replaced itself, never what it
            points to).
        src: the source folder: ``dst`` may not be it or hold it, nor (unless ``under_src``)
            lie inside it.
        what: the destination's name in messages (``"DST"``, ``"--out"``).

    Raises:
        FileExistsError: ``dst`` exists, at the start or when publishing (another process
            published it meanwhile); nothing is written then.
        OSError: a disk error (full, read-only) while filling or publishing, naming ``dst``.
    """
    dst = Path(dst)
    target = _target(dst)
    if src is not None:
        _check_overlap(dst, target, Path(src), what, under_src)
    _check_parent(dst, target, what)
    found = _identity(target)
    if found is not None and not force and not _is_empty_dir(target):
        raise _exists(dst, what)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(target.parent, target.name)
        tmp, lock = _new_folder(target.parent, target.name)
    except OSError as e:
        raise _named(e, dst) from None
    try:
        yield tmp
        _publish(tmp, target, dst, found if force else None, what)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _named(e, dst) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if lock is not None:
            os.close(lock)


def _named(e: OSError, dst: Path) -> OSError:
    """A disk error while writing ``dst``'s temporary folder, as one about ``dst``."""
    if e.errno in DISK_ERRNOS:
        return OSError(e.errno, os.strerror(e.errno), str(dst))
    return e


def _exists(dst: Path, what: str, meanwhile: bool = False) -> FileExistsError:
    when = " (another process wrote it while this one ran)" if meanwhile else ""
    return FileExistsError(
        f"{str(dst)!r} already exists and is not empty{when}; choose another {what} or pass "
        "--force to replace it"
    )


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _is_empty_dir(path: Path) -> bool:
    try:
        return not path.is_symlink() and path.is_dir() and not any(path.iterdir())
    except OSError:
        return False


def _target(dst: Path) -> Path:
    """``dst`` with its folder resolved but not its last part (a link there is replaced)."""
    if dst.name in ("", ".", ".."):
        return dst.resolve()
    return dst.parent.resolve() / dst.name


def _check_overlap(dst: Path, target: Path, src: Path, what: str, under_src: bool) -> None:
    source = src.resolve()
    for t in (target, dst.resolve()):
        if _inside(source, t) or (not under_src and _inside(t, source)):
            where = "that does not hold it" if under_src else "outside it"
            name = "SRC" if what == "DST" else "the source"
            raise ValueError(
                f"{what} {str(dst)!r} overlaps {name} {str(src)!r}; the source is never "
                f"modified: choose a {what} {where}"
            )


def _check_parent(dst: Path, target: Path, what: str) -> None:
    """Refuse a ``dst`` under a file (``FILE/sub``) in one line, before any ``mkdir``."""
    for folder in target.parents:
        if folder.exists():
            if not folder.is_dir():
                raise NotADirectoryError(
                    f"cannot create {what} {str(dst)!r}: {str(folder)!r} is a file, not a "
                    f"folder; choose a {what} whose parent is a folder"
                )
            return


def _publish(tmp: Path, target: Path, dst: Path, replaces: tuple | None, what: str) -> None:
    """Rename ``tmp`` to ``target`` without replacing anything but ``replaces`` (the
    identity of what ``--force`` found at the start), moved aside first and removed after."""
    old = None
    if replaces is not None and _identity(target) is not None:
        old = target.parent / f"{tmp.name}.old"
        os.rename(target, old)
        if _identity(old) != replaces:  # another process published here meanwhile
            with contextlib.suppress(OSError):
                rename_noreplace(old, target)
            raise _exists(dst, what, meanwhile=True)
    elif _is_empty_dir(target):
        with contextlib.suppress(OSError):  # gone, or filled meanwhile: the rename decides
            target.rmdir()
    try:
        rename_noreplace(tmp, target)
    except FileExistsError:
        raise _exists(dst, what, meanwhile=True) from None
    finally:
        if old is not None:
            _remove(old)
    _fsync_dir(target.parent)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


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
    """Remove the unlocked temporary folders a killed command left for ``parent/name`` (and
    an old ``DST`` a killed ``--force`` had moved aside). A folder whose lock another (live)
    process holds is kept. Returns the names removed."""
    if fcntl is None:  # pragma: no cover
        return []
    pattern = leftover_pattern(name)
    removed = []
    for entry in sorted(parent.iterdir()):
        if not pattern.fullmatch(entry.name):
            continue
        if entry.is_symlink() or not entry.is_dir():
            if entry.name.endswith(".old"):  # a moved-aside link or file
                _remove(entry)
                removed.append(entry.name)
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
