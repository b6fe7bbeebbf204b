"""Checks of values at the boundary, and errors that name the closest valid choice.

The one home of two kinds of knowledge every layer needs:

- what counts as an integer or a number here: Python's ``True`` is an ``int``, so
  ``isinstance(v, int)`` alone lets ``max_positions=True`` through; :func:`is_int` and
  :func:`is_number` never accept a bool;
- the "did you mean" message for an unknown name (:func:`unknown`), with the other names
  people use for the schemes (``rotary`` -> ``rope``) suggested, never silently accepted.

It lives in ``positional/``, on the ground floor (docs/DESIGN.md, "Layers": ``positional/``
imports nothing of posemb outside itself), so that every layer above can import it; it
imports nothing of posemb itself.

Example::

    check_int("offset", offset, minimum=0)   # ValueError: offset must be an integer >= 0, got True
    raise unknown("positional scheme", "rotary", SCHEMES)   # ... Did you mean 'rope'? Valid: ...
"""

from __future__ import annotations

import difflib
import math
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


# -- values ---------------------------------------------------------------------------------------
def is_int(value: object) -> bool:
    """An ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """An ``int`` or ``float`` that is not a ``bool`` (nan and inf included: see
    :func:`is_finite_number`)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_finite_number(value: object) -> bool:
    """A number that is neither nan nor infinite."""
    return is_number(value) and math.isfinite(value)


def check_int(name: str, value: object, *, minimum: int) -> int:
    """``value`` if it is an integer ``>= minimum``; else ``ValueError`` naming ``name``."""
    if not is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_bool(name: str, value: object, words: str = "True or False") -> bool:
    """``value`` if it is a bool; else ``ValueError`` (``words``: how the caller's users
    spell the two values, ``"true or false"`` in settings files)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be {words}, got {value!r}")
    return value


def check_positive_int(name: str, value: object) -> int:
    """``value`` if it is an integer ``> 0``; else ``ValueError`` naming ``name``."""
    if not is_int(value) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_finite(name: str, value: object, low: float, high: float = math.inf) -> float:
    """``value`` if it is a finite number in ``[low, high)``; else ``ValueError``.

    The message shows ``low`` and ``high`` as given (``0`` or ``0.0``).
    """
    if not is_finite_number(value) or not low <= value < high:
        where = f">= {low}" if high == math.inf else f"in [{low}, {high})"
        raise ValueError(f"{name} must be a finite number {where}, got {value!r}")
    return value


# -- names ----------------------------------------------------------------------------------------
def closest(name: str, choices: Iterable[str]) -> str | None:
    """The valid choice closest to ``name`` (an alias first, then by ``difflib`` ratio), or
    None when nothing is close."""
    choices = list(choices)
    alias = ALIASES.get(str(name).lower())
    if alias in choices:
        return alias
    found = difflib.get_close_matches(str(name), choices, n=1, cutoff=0.5)
    return found[0] if found else None


def unknown(
    kind: str, name: str, choices: Iterable[str], error: type[ValueError] = ValueError
) -> ValueError:
    """The error for an unknown ``kind`` called ``name``: the closest choice, then all.

    Example:
        ``unknown("tokenizer kind", "bytes", ["byte", "char", "bpe"])`` is a ValueError
        ``"unknown tokenizer kind 'bytes'. Did you mean 'byte'? Valid: byte, char, bpe."``
    """
    choices = list(choices)
    near = closest(name, choices)
    hint = f" Did you mean {near!r}?" if near else ""
    return error(f"unknown {kind} {name!r}.{hint} Valid: {', '.join(choices)}.")
