"""Atomic file writes, kept importable here for interop/ until it imports them from their
home, :mod:`posemb.files` (then this module goes)."""

from __future__ import annotations

from ..files import _umask, atomic_open, atomic_write_text, file_mode

__all__ = ["_umask", "atomic_open", "atomic_write_text", "file_mode"]
