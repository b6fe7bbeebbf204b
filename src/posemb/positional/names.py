"""Kept for modules that still import the did-you-mean helpers from here; their home is
:mod:`posemb.positional.checks`."""

from .checks import ALIASES, closest, unknown

__all__ = ["ALIASES", "closest", "unknown"]
