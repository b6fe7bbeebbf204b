"""File names read from files are hostile: each must stay inside the folder it belongs to.

A shard index, a config or a tokenizer file may name other files, and a downloaded model
folder may hold symbolic links. posemb reads a file of a folder only through
:func:`inside`: the name must be a relative path without ``..`` and, once every link is
followed, the file must still be inside the folder. Anything else (an absolute path,
``../x``, a link to ``../secret.txt`` or ``/etc``) is refused with :class:`UnsafePathError`,
one line naming the file, the name and the folder. A link that stays inside the folder
(``model.safetensors -> blobs/abc``) is followed. A FIFO, a device or a socket is refused
too (:class:`posemb.files.NotRegularFileError`), before anything opens it: opening a FIFO
blocks forever.

Example:
    >>> inside(Path("models/gpt2"), "model-00001-of-00002.safetensors", named_by=index)
    PosixPath('models/gpt2/model-00001-of-00002.safetensors')
    >>> inside(Path("models/gpt2"), "../x.safetensors", named_by=index)
    UnsafePathError: models/gpt2/model.safetensors.index.json names '../x.safetensors', ...
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath

from ..files import check_regular


class UnsafePathError(ValueError):
    """A file name leaves the folder it belongs to (absolute, ``..`` or a link out)."""


def inside(folder: str | Path, name: object, *, named_by: str | Path | None = None) -> Path:
    """``folder / name``, refused unless it stays inside ``folder`` after following links.

    Args:
        folder: the folder the file belongs to (a model or run directory).
        name: the file's name relative to ``folder``, e.g. a shard name from an index.
        named_by: the file that gave ``name`` (for the message); None for a name posemb
            itself chose (``config.json``), where only a link can leave the folder.

    Returns:
        ``folder / name``, not resolved (opening it follows only links that stay inside).

    Raises:
        UnsafePathError: ``name`` is not a non-empty string, is absolute, has a ``..``
            part, or resolves (through links) outside ``folder``.
        NotRegularFileError: it is a FIFO, a device or a socket.
    """
    folder = Path(folder)
    source = f"{str(named_by)!r}" if named_by is not None else "posemb"
    if not isinstance(name, str) or not name or "\x00" in name:
        raise UnsafePathError(
            f"{source} names {name!r} as a file of {str(folder)!r}: not a file name"
        )
    windows = PureWindowsPath(name)
    if PurePosixPath(name).is_absolute() or windows.is_absolute() or windows.drive:
        raise UnsafePathError(
            f"{source} names {name!r}, an absolute path; a file of {str(folder)!r} must be named "
            "relative to that folder"
        )
    if ".." in PurePosixPath(name).parts or ".." in windows.parts:
        raise UnsafePathError(
            f"{source} names {name!r}, which leaves {str(folder)!r} ('..'); a file of a folder "
            "must lie inside it"
        )
    path = folder / name
    try:
        base, real = folder.resolve(), path.resolve()
    except (OSError, RuntimeError) as e:  # a link loop (Python < 3.13)
        raise UnsafePathError(f"{str(path)!r} cannot be resolved ({e})") from None
    if real.is_symlink():  # Python >= 3.13 stops at a loop instead of raising
        raise UnsafePathError(f"{str(path)!r} is a loop of links")
    if not real.is_relative_to(base):
        raise UnsafePathError(
            f"{str(path)!r} leads through a link to {str(real)!r}, outside {str(folder)!r}; "
            "posemb never follows a link out of the folder it reads: replace the link by a copy "
            "of the file (cp -L)"
        )
    return check_regular(path)  # a FIFO or a device: refused before anything opens it
