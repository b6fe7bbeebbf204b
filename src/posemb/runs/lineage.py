"""A run's ``lineage``: the run it started from (a fine-tune, ``posemb train --init``).

A run started from another records it in its config.json::

    "lineage": {"source": "/abs/runs/a", "source_step": 600, "source_sha256": "…",
                "source_tokens": 614400, "source_trained_positions": 64,
                "method": "interpolate", "from_positions": 64, "positions": 256,
                "source_lineage": null}

``source_tokens`` counts the tokens the source (and the runs it started from) trained on,
so the tokens behind any run of a chain are known (:func:`tokens_trained`);
``source_trained_positions`` how many leading positions they trained
(:func:`trained_positions`). The record is written by the trainer
(``posemb.train.lineage``) and read here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..files import read_json
from .config import RunConfig
from .layout import settings_file


def read_lineage(run_dir: str | Path) -> dict[str, Any] | None:
    """The ``lineage`` record of a run's config.json (a run started with ``--init``), or None."""
    try:
        lineage = read_json(settings_file(run_dir)).get("lineage")
    except (OSError, ValueError):  # UnsafePathError is a ValueError
        return None
    return lineage if isinstance(lineage, dict) else None


def tokens_trained(
    cfg: RunConfig, step: int | None, lineage: dict[str, Any] | None = None
) -> int | None:
    """Tokens a run has trained on at ``step``: its own steps x batch x length, plus those
    of the runs it started from (``lineage``); None when its step is unknown."""
    if step is None:
        return None
    own = step * cfg.train.batch_size * cfg.train.seq_len
    before = (lineage or {}).get("source_tokens")
    return own + (before if isinstance(before, int) else 0)


def trained_positions(cfg: RunConfig, lineage: dict[str, Any] | None = None) -> int:
    """How many leading positions (``0 .. n-1``) the run's training sequences reached, with
    those of the runs it started from.

    Every position of a training sequence has a target (posemb.train.stream), so under
    ``train.positions=start`` the run trained positions ``0 .. train.seq_len - 1``; the other
    recipes (``random``, ``offset``, ``stretch``) draw positions from the whole table.
    """
    tc = cfg.train
    own = tc.seq_len if tc.positions == "start" else max(cfg.model.max_positions, tc.seq_len)
    before = (lineage or {}).get("source_trained_positions")
    return max(own, before) if isinstance(before, int) else own
