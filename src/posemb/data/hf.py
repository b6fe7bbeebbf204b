"""``hf:NAME[:CONFIG]`` sources through the optional Hugging Face ``datasets`` package.

- ``hf:NAME`` / ``hf:NAME:CONFIG``: ``datasets.load_dataset(NAME, CONFIG)`` (the Hub, or the
  local Hugging Face cache when offline).
- ``hf:BUILDER:PATH_OR_GLOB`` for the file builders ``text``, ``json``, ``csv`` and
  ``parquet``: ``datasets.load_dataset(BUILDER, data_files=PATH_OR_GLOB)``, which needs no
  network. The ``text`` builder gives one row per line, so its rows are joined by ``"\\n"``
  and the token stream reads like the file.

The text is the ``text`` column (or the only string column). Validation is the
``validation`` (or ``valid``/``val``) split when the dataset has one, else the last
``val_fraction`` of the training rows (by characters when there are too few rows).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from typing import Any

from .errors import DataError
from .text import TextSource, check_split, split_chars

FILE_BUILDERS = ("text", "json", "csv", "parquet")
_VAL_SPLITS = ("validation", "valid", "val")
_MISSING = "{spec} needs the optional 'datasets' package: pip install 'posemb[data]'"


class HFSource(TextSource):
    """A Hugging Face dataset as a :class:`TextSource`.

    Args:
        spec: ``hf:NAME[:CONFIG]`` or ``hf:BUILDER:PATH_OR_GLOB``.
        val_fraction: the validation share when the dataset has no validation split.

    Raises:
        DataError: ``datasets`` is missing, the dataset cannot be loaded, it has no train
            split, or no text column.
    """

    def __init__(self, spec: str, *, val_fraction: float = 0.1) -> None:
        try:
            import datasets
        except ImportError:
            raise DataError(_MISSING.format(spec=spec)) from None
        self.name = spec
        self.val_fraction = val_fraction
        name, _, config = spec[len("hf:") :].partition(":")
        if not name:
            raise DataError(f"{spec!r} names no dataset: use hf:NAME[:CONFIG], e.g. hf:text:a.txt")
        if name in FILE_BUILDERS and not config:  # else load_dataset fails deep inside with no hint
            raise DataError(
                f"{spec!r} names no files: use hf:{name}:PATH_OR_GLOB (e.g. hf:text:corpus.txt)"
            )
        try:
            if name in FILE_BUILDERS and config:
                files = os.path.abspath(os.path.expanduser(config))
                dd = datasets.load_dataset(name, data_files=files)
            else:
                dd = datasets.load_dataset(name, config or None)
        except Exception as err:  # datasets raises many types; report them as bad input
            raise DataError(f"could not load {spec!r}: {type(err).__name__}: {err}") from None
        if name == "text":
            self.separator = "\n"
        if "train" not in dd:
            raise DataError(f"{spec!r} has no 'train' split (splits: {', '.join(dd)})")
        self.train = dd["train"]
        self.val = next((dd[s] for s in _VAL_SPLITS if s in dd), None)
        self.column = _text_column(spec, self.train)
        n = len(self.train)
        self.cut = n if self.val is not None else int(n * (1 - val_fraction))
        # too few rows to split by rows: split the train rows' text by characters
        self.by_chars = self.val is None and val_fraction > 0 and self.cut in (0, n) and n > 0

    def texts(self, split: str) -> Iterator[str]:
        split = check_split(split)
        if self.by_chars:
            return split_chars(
                lambda: self._rows(self.train, 0, len(self.train)), split, self.val_fraction
            )
        if split == "val" and self.val is not None:
            return self._rows(self.val, 0, len(self.val))
        if split == "train":
            return self._rows(self.train, 0, self.cut)
        return self._rows(self.train, self.cut, len(self.train))

    def _rows(self, ds: Any, start: int, stop: int, chunk: int = 1024) -> Iterator[str]:
        for i in range(start, stop, chunk):
            for text in ds[i : min(i + chunk, stop)][self.column]:
                yield text if text is not None else ""

    def fingerprint(self) -> str:
        parts = [self.name, self.val_fraction, self.column]
        for ds in (self.train, self.val):
            if ds is None:
                parts.append(None)
                continue
            fp = getattr(ds, "_fingerprint", None)  # content hash datasets keeps per table
            files = [f.get("filename") for f in getattr(ds, "cache_files", [])]
            parts.append([fp, len(ds), files])
        text = json.dumps(["posemb-hf-1", parts], sort_keys=True, default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _text_column(spec: str, ds: Any) -> str:
    """``text`` if present, else the only string column; else ``DataError``."""
    columns = list(ds.column_names)
    if "text" in columns:
        return "text"
    strings = [
        c for c, f in ds.features.items() if getattr(f, "dtype", None) in ("string", "large_string")
    ]
    if len(strings) == 1:
        return strings[0]
    raise DataError(
        f"{spec!r} has no 'text' column and not exactly one string column "
        f"(columns: {', '.join(columns)})"
    )
