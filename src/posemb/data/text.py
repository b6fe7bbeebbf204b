"""A text corpus with a train and a validation split (:class:`TextSource`), and the split
helpers every source shares. Sources: :mod:`.sources` (files, folders, globs, the standard
library) and :mod:`.hf` (Hugging Face datasets)."""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator

from .errors import DataError

SPLITS: tuple[str, ...] = ("train", "val")
SEPARATOR = "\n\n"  # joins documents in the token stream


class TextSource(abc.ABC):
    """A corpus with a train and a validation split, iterated as documents (strings).

    Attributes:
        name: a short human-readable name (``stdlib``, a file name, ``hf:...``).
        separator: the text placed between documents in the token stream.
    """

    name: str = "text"
    separator: str = SEPARATOR

    def train_texts(self) -> Iterator[str]:
        """The training documents, in a fixed order."""
        return self.texts("train")

    def val_texts(self) -> Iterator[str]:
        """The validation documents, in a fixed order."""
        return self.texts("val")

    @abc.abstractmethod
    def texts(self, split: str) -> Iterator[str]:
        """The documents of ``split`` (``train`` or ``val``)."""

    @abc.abstractmethod
    def fingerprint(self) -> str:
        """A cheap hash that changes when the content or the split changes (a cache key)."""

    def names(self, split: str) -> list[str] | None:
        """The name of each document ``texts(split)`` yields (file paths), or None if unnamed."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def check_split(split: str) -> str:
    """``train`` or ``val`` (``validation`` is accepted for ``val``); else ``DataError``."""
    if split == "validation":
        return "val"
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}: use 'train' or 'val'")
    return split


def split_chars(
    docs: Callable[[], Iterator[str]], split: str, val_fraction: float, *, total: int | None = None
) -> Iterator[str]:
    """Split a document stream by characters: train is the first ``1 - val_fraction``.

    Args:
        docs: makes a fresh iterator over the documents (called twice when ``total`` is None).
        split: ``train`` or ``val``.
        val_fraction: the validation share.
        total: the total number of characters, if known.

    Yields:
        The documents of the split; the one the cut falls in is cut in two.
    """
    if total is None:
        total = sum(len(d) for d in docs())
    cut = int(total * (1 - val_fraction))
    offset = 0
    for doc in docs():
        start, offset = offset, offset + len(doc)
        if split == "train":
            if start >= cut:
                return
            piece = doc[: cut - start]
        else:
            if offset <= cut:
                continue
            piece = doc[max(0, cut - start) :]
        if piece:
            yield piece
