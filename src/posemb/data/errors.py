"""Errors of the data layer, and the "did you mean" helper their messages use."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class DataError(ValueError):
    """Bad input data: a missing path, an unreadable source, a corpus too short for a window.

    A subclass of ``ValueError`` so callers that validate input catch it with the rest; the
    message always names the offending value and what to do instead.
    """


def closest(name: str, choices: Iterable[str]) -> str | None:
    """The valid choice closest to ``name`` by ``difflib`` ratio, or None if none is close."""
    found = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.5)
    return found[0] if found else None


def unknown_name(what: str, name: str, choices: Iterable[str]) -> str:
    """The message for an unknown ``what`` called ``name``: the closest choice, then all.

    Example:
        ``unknown_name("tokenizer kind", "bytes", ["byte", "char", "bpe"])`` gives
        ``"unknown tokenizer kind 'bytes'. Did you mean 'byte'? Valid: byte, char, bpe."``
    """
    choices = list(choices)
    near = closest(name, choices)
    hint = f" Did you mean {near!r}?" if near else ""
    return f"unknown {what} {name!r}.{hint} Valid: {', '.join(choices)}."
