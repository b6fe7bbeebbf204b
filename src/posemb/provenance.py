"""Provenance: what a number was measured with (versions, command, data, model size, steps).

A run's ``config.json`` and every evaluation record carry a ``provenance`` object, so a
result can be traced to the code, the command and the text behind it::

    {"posemb": "0.1.0", "torch": "2.13.0+cpu", "python": "3.11.9",
     "command": "posemb sweep --budget quick --out runs/sweep",
     "data": {"source": "stdlib", "fingerprint": "..."}, "parameters": 421632, ...}

The command is the one this process runs: ``posemb`` records its own argument list at
start (:func:`set_command`); a script that calls the library gets ``sys.argv``.
This module imports nothing of posemb but :mod:`posemb.data` (lazily).
"""

from __future__ import annotations

import hashlib
import platform
import shlex
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

_COMMAND: list[str] | None = None


def set_command(argv: Sequence[str]) -> None:
    """Record the command line of this process (``["posemb", "eval", ...]``)."""
    global _COMMAND
    _COMMAND = [str(a) for a in argv]


def command() -> str:
    """The command line of this process, shell-quoted."""
    return shlex.join(_COMMAND if _COMMAND is not None else [str(a) for a in sys.argv])


def versions() -> dict[str, str]:
    """posemb, torch, numpy and Python versions."""
    import torch

    from . import __version__

    return {
        "posemb": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def environment() -> dict[str, str]:
    """Versions and the command line: what every provenance object starts with."""
    return {**versions(), "command": command()}


def count_parameters(model) -> int:
    """Trainable and frozen parameters of ``model``, tied weights counted once."""
    return sum(p.numel() for p in model.parameters())


def fingerprint_tokens(arrays: Iterable[np.ndarray], extra: object = None) -> str:
    """``sha256:`` of token ids (as little-endian int64, whatever their stored dtype) and ``extra``.

    The same ids give the same fingerprint on every machine and from every cache layout.
    """
    h = hashlib.sha256(repr(extra).encode("utf-8"))
    for a in arrays:
        h.update(np.ascontiguousarray(a, dtype="<i8").tobytes())
    return "sha256:" + h.hexdigest()


def source_provenance(spec: str, val_fraction: float) -> dict[str, Any]:
    """The data source of a run: its spec, name and content fingerprint (cheap: file stats).

    Raises whatever :func:`posemb.data.open_source` raises for a source that cannot be opened.
    """
    from .data import open_source

    source = open_source(spec, val_fraction=val_fraction)
    return {
        "source": spec,
        "name": getattr(source, "name", spec),
        "val_fraction": val_fraction,
        "fingerprint": source.fingerprint(),
    }


def run_provenance(cfg, model) -> dict[str, Any]:
    """What ``config.json`` records about how a run was made (see the module docstring)."""
    out: dict[str, Any] = environment()
    try:
        out["data"] = source_provenance(cfg.data.source, cfg.data.val_fraction)
    except (OSError, ValueError, ImportError) as e:  # weights made without their data (imports)
        out["data"] = {"source": cfg.data.source, "fingerprint": None, "note": str(e)[:200]}
    out["parameters"] = count_parameters(model)
    return out
