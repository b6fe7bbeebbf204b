"""Helpers for errors that name the closest valid choice."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# Other names people use for the schemes (suggested, never silently accepted).
ALIASES = {
    "rotary": "rope",
    "absolute": "learned",
    "learnt": "learned",
    "none": "nope",
    "no": "nope",
    "relative": "shaw",
    "t5_bias": "t5",
    "t5-bias": "t5",
    "sin": "sinusoidal",
    "sincos": "sinusoidal",
}


def closest(name: str, choices: Iterable[str]) -> str | None:
    """The valid choice closest to ``name`` (or None if nothing is close)."""
    choices = list(choices)
    alias = ALIASES.get(str(name).lower())
    if alias in choices:
        return alias
    found = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.5)
    return found[0] if found else None


def unknown(kind: str, name: str, choices: Iterable[str]) -> ValueError:
    """A ValueError for an unknown ``kind`` named ``name``, suggesting the closest choice."""
    choices = list(choices)
    near = closest(name, choices)
    hint = f" Did you mean {near!r}?" if near else ""
    return ValueError(f"unknown {kind} {name!r}.{hint} Valid: {', '.join(choices)}.")
