"""Text sources for ``--data SRC``: where training and validation text comes from.

``open_source(spec)`` accepts:

- ``stdlib``: the Python standard library's own ``.py`` files (the built-in default; no
  download). Tests, ``idlelib``, ``lib2to3``, ``turtledemo``, ``ensurepip``, ``pydoc_data``,
  site-packages and the machine-specific ``_sysconfigdata*`` are left out (about 12 MB).
- a text file: train is the first 90% of its characters, validation the last 10% (as
  nanoGPT splits shakespeare_char).
- a directory: every text file below it (``.txt .md .rst .py`` ... see
  :data:`TEXT_SUFFIXES`); hidden folders and ``__pycache__`` skipped.
- a glob pattern (``data/**/*.txt``): every file it matches.
- ``hf:NAME[:CONFIG]``: a Hugging Face dataset through the optional ``datasets`` package,
  its ``text`` column, its ``train`` and ``validation`` splits (else the last 10% of the
  rows). ``hf:text:PATH_OR_GLOB`` (also ``json``, ``csv``, ``parquet``) reads local files
  with that builder, offline.
- ``synthetic:copy|reverse|sort|recall``: returns a :class:`~.synthetic.SyntheticTask`, not
  a :class:`TextSource` (the task generates its batches); :func:`is_synthetic` tells first.

Several files (stdlib, directory, glob) are split by file: a file is validation when
``sha1(relative path) mod 1000 < val_fraction * 1000``, so the split is stable when files
are added or removed. If that leaves one side empty (few files), the concatenated text is
split 90/10 by characters instead. Files are listed in sorted order and read as UTF-8: a
binary file (a NUL byte) or one that is not valid UTF-8 is a :class:`DataError` naming the
file and the fix (the built-in ``stdlib`` source alone reads with ``errors="replace"``).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import sysconfig
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..files import special_kind
from .errors import DataError
from .hf import HFSource
from .synthetic import TASKS, SyntheticTask
from .text import SPLITS, TextSource, check_split, split_chars

__all__ = [
    "DEFAULT_SOURCE",
    "SPLITS",
    "TEXT_SUFFIXES",
    "FileSource",
    "FilesSource",
    "TextSource",
    "check_split",
    "is_synthetic",
    "open_source",
    "split_chars",
    "stdlib_source",
]

DEFAULT_SOURCE = "stdlib"
_FORMAT_VERSION = "posemb-sources-1"  # bump when the split rules change: fingerprints follow
TEXT_SUFFIXES = frozenset(
    ".txt .text .md .markdown .rst .tex .py .pyi .c .h .cc .cpp .hpp .js .ts .java .go .rs "
    ".sh .toml .yaml .yml .json .jsonl .csv .tsv .html .htm .xml .ini .cfg".split()
)
_STDLIB_SKIP = frozenset(
    "site-packages dist-packages test tests idlelib lib2to3 turtledemo ensurepip pydoc_data "
    "__pycache__".split()
)
_ACCEPTED = (
    "'stdlib', a text file, a directory of text files, a glob pattern (e.g. 'data/*.txt'), "
    f"'synthetic:{'|'.join(TASKS)}', or 'hf:NAME[:CONFIG]' (e.g. 'hf:text:corpus.txt')"
)


class FileSource(TextSource):
    """One text file: the first ``1 - val_fraction`` of its characters train, the rest val."""

    def __init__(self, path: str | Path, *, val_fraction: float = 0.1) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self.val_fraction = val_fraction

    def texts(self, split: str) -> Iterator[str]:
        split = check_split(split)
        text = _read(self.path, strict=True)
        return split_chars(lambda: iter([text]), split, self.val_fraction, total=len(text))

    def fingerprint(self) -> str:
        return _hash(["file", self.val_fraction, _stat(self.path)])

    def names(self, split: str) -> list[str] | None:
        return [self.name]  # one document: this file's share of the split


class FilesSource(TextSource):
    """Many text files, split by a hash of each file's path relative to ``root``.

    Args:
        name: the source's name.
        root: the folder relative paths are taken from (the split depends on them).
        files: the files, any order (they are sorted by relative path).
        val_fraction: the share of files (in expectation) that go to validation.
    """

    def __init__(
        self,
        name: str,
        root: str | Path,
        files: Sequence[Path],
        *,
        val_fraction: float = 0.1,
        strict: bool = True,
    ) -> None:
        self.name = name
        self.strict = strict  # False: undecodable bytes become U+FFFD (the stdlib source)
        self.root = Path(root)
        self.val_fraction = val_fraction
        rel = sorted((_relpath(f, self.root), Path(f)) for f in files)
        self.files = [f for _, f in rel]
        self.relpaths = [r for r, _ in rel]
        self._is_val = [_hash_split(r, val_fraction) for r in self.relpaths]
        n_val = sum(self._is_val)
        # too few files for a per-file split: split the concatenated text by characters
        self.by_chars = val_fraction > 0 and (n_val == 0 or n_val == len(self.files))

    def texts(self, split: str) -> Iterator[str]:
        split = check_split(split)
        if self.by_chars:
            return split_chars(self._read_all, split, self.val_fraction)
        want_val = split == "val"
        return (_read(f, self.strict) for f, v in zip(self.files, self._is_val) if v == want_val)

    def names(self, split: str) -> list[str] | None:
        if self.by_chars:  # the split cuts the concatenation: documents are not whole files
            return None
        want_val = check_split(split) == "val"
        return [r for r, v in zip(self.relpaths, self._is_val) if v == want_val]

    def _read_all(self) -> Iterator[str]:
        return (_read(f, self.strict) for f in self.files)

    def fingerprint(self) -> str:
        stats = [[r, *_stat(f)[1:]] for r, f in zip(self.relpaths, self.files)]
        return _hash(["files", str(self.root.resolve()), self.val_fraction, stats])


def open_source(spec: str, *, val_fraction: float = 0.1) -> TextSource | SyntheticTask:
    """Open a data source by its ``--data`` spec (see the module docstring).

    Args:
        spec: ``stdlib``, a path, a glob, ``synthetic:TASK`` or ``hf:NAME[:CONFIG]``.
        val_fraction: the validation share, in ``[0, 1)``.

    Returns:
        A :class:`TextSource`, or a :class:`~.synthetic.SyntheticTask` for ``synthetic:``.

    Raises:
        DataError: the path does not exist, a folder or glob holds no text files, or a
            Hugging Face dataset cannot be loaded; the message says what is accepted.
        ValueError: unknown synthetic task (naming the closest).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if spec == "stdlib":
        return stdlib_source(val_fraction=val_fraction)
    if is_synthetic(spec):
        return SyntheticTask(spec[len("synthetic:") :])
    if spec.startswith("hf:"):
        return HFSource(spec, val_fraction=val_fraction)
    path = Path(os.path.expanduser(spec))
    if path.is_file():
        return FileSource(path, val_fraction=val_fraction)
    if path.is_dir():
        files = [f for f in _walk(path) if f.suffix.lower() in TEXT_SUFFIXES]
        special = next(((f, k) for f in files if (k := special_kind(f)) is not None), None)
        if special is not None:  # refused before anything opens it: a FIFO blocks forever
            raise DataError(
                f"{str(special[0])!r} in data folder {spec!r} is {special[1]}, not a text file; "
                "posemb reads only regular files: remove it or replace it with the file itself"
            )
        if not files:
            raise DataError(
                f"directory {spec!r} holds no text files (suffixes: "
                f"{' '.join(sorted(TEXT_SUFFIXES))}); pass a file or a glob instead"
            )
        return FilesSource(path.name or spec, path, files, val_fraction=val_fraction)
    if _has_magic(spec):
        pattern = os.path.expanduser(spec)
        files = [Path(f) for f in glob.glob(pattern, recursive=True) if os.path.isfile(f)]
        if not files:
            raise DataError(f"glob {spec!r} matches no files. --data accepts {_ACCEPTED}")
        return FilesSource(spec, _glob_root(pattern), files, val_fraction=val_fraction)
    kind = special_kind(path)
    if kind is not None:
        raise DataError(
            f"data source {spec!r} is {kind}, not a text file; posemb reads only regular files "
            f"(opening this one could block forever). --data accepts {_ACCEPTED}"
        )
    raise DataError(f"data source {spec!r}: no such file or directory. --data accepts {_ACCEPTED}")


def is_synthetic(spec: str) -> bool:
    """True for ``synthetic:TASK`` specs, which :func:`open_source` opens as a task."""
    return spec.startswith("synthetic:")


def stdlib_source(*, val_fraction: float = 0.1) -> FilesSource:
    """The Python standard library's ``.py`` files (see the module docstring)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = [
        f
        for f in _walk(root, _STDLIB_SKIP, "config-")  # config-3.x-*: build files
        if f.suffix == ".py" and not f.name.startswith("_sysconfigdata")
    ]
    if not files:
        raise DataError(f"found no .py files in the standard library folder {str(root)!r}")
    return FilesSource("stdlib", root, files, val_fraction=val_fraction, strict=False)


def _walk(
    root: Path, skip: frozenset[str] = frozenset({"__pycache__"}), skip_prefix: str = "."
) -> Iterator[Path]:
    """Files below ``root``, skipping folders named in ``skip`` or starting ``skip_prefix``."""
    prefixes = (".", skip_prefix)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in skip and not d.startswith(prefixes)]
        for name in filenames:
            if not name.startswith("."):
                yield Path(dirpath) / name


def _has_magic(spec: str) -> bool:
    return any(c in spec for c in "*?[")


def _glob_root(pattern: str) -> Path:
    """The folder before the first wildcard: relative paths (and so the split) hang off it."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts[:-1]:
        if _has_magic(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def _relpath(path: Path, root: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def _hash_split(relpath: str, val_fraction: float) -> bool:
    """True when the file at ``relpath`` belongs to validation."""
    h = int(hashlib.sha1(relpath.encode("utf-8")).hexdigest(), 16)
    return h % 1000 < round(val_fraction * 1000)


def _read(path: Path, strict: bool = True) -> str:
    """The file's text. ``strict``: a binary or non-UTF-8 file is a ``DataError`` (training on
    its bytes decoded as U+FFFD would silently learn garbage)."""
    if not strict:
        return path.read_text(encoding="utf-8", errors="replace")
    data = path.read_bytes()
    if b"\x00" in data:
        raise DataError(
            f"{str(path)!r} is a binary file (it holds NUL bytes), not text; pass text files only "
            "(for a directory, move the file out or use a glob such as 'DIR/**/*.txt')"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{str(path)!r} is not UTF-8 text ({e.reason} at byte {e.start}); convert it, e.g. "
            "iconv -f latin1 -t utf-8 FILE > FILE.utf8"
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")  # universal newlines, as read_text


def _stat(path: Path) -> list:
    st = path.stat()
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


def _hash(obj: object) -> str:
    text = json.dumps([_FORMAT_VERSION, obj], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
