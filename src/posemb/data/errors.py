"""The error of the data layer (its "did you mean" messages come from positional.checks)."""

from __future__ import annotations


class DataError(ValueError):
    """Bad input data: a missing path, an unreadable source, a corpus too short for a window.

    A subclass of ``ValueError`` so callers that validate input catch it with the rest; the
    message always names the offending value and what to do instead.
    """
