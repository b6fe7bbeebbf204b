"""The rules of an evaluation request: which options go together, and which fit the run.

``posemb eval`` checks its options with these before any model work (and before any output
is written); a library caller of :func:`posemb.eval.runner.evaluate_run` may do the same.
A broken rule is an :class:`EvalRequestError` (a ValueError: the CLI exits 2 with its one
line); a length past a learned table that nothing handles is the library's
:class:`~posemb.positional.PositionOutOfRangeError`.
"""

from __future__ import annotations

from pathlib import Path

from ..model import Transformer
from ..runs.config import RunConfig
from ..runs.lineage import trained_positions
from .runner import check_lengths


class EvalRequestError(ValueError):
    """Evaluation options that conflict, or that do not apply to the run's model."""


def check_eval_options(
    *,
    extend: str | None,
    overflow: str | None,
    mode: str,
    stride: int | None,
    out: str | Path | None = None,
) -> None:
    """Option combinations that would not act, and an ``out`` that is a file.

    Args:
        extend: a table extension method, or None.
        overflow: an overflow policy (``clamp`` or ``wrap``), or None.
        mode: ``nonoverlap`` or ``sliding``.
        stride: tokens between sliding windows, or None.
        out: the output folder, if any.
    """
    if extend and overflow:
        raise EvalRequestError("choose --extend or --overflow, not both")
    if mode == "sliding" and (extend or overflow):
        raise EvalRequestError(
            "--mode sliding keeps the table as it is; drop --extend/--overflow or use "
            "--mode nonoverlap"
        )
    if stride is not None and mode != "sliding":
        raise EvalRequestError(
            "--stride applies to --mode sliding only; add --mode sliding or drop --stride"
        )
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise EvalRequestError(
            f"--out {str(out)!r} is a file, not a directory; choose a directory for the results"
        )


def check_eval_model(
    model: Transformer,
    lengths: list[int],
    *,
    extend: str | None,
    overflow: str | None,
    mode: str,
    stride: int | None,
) -> None:
    """What the run's model allows: a table to extend, a stride within the sliding window,
    and every length within the table unless something handles the ones past it."""
    if (extend or overflow) and model.position_table() is None:
        raise EvalRequestError(
            f"--extend/--overflow act on a learned table; this run uses {model.config.position}, "
            "which has none (drop the option: it evaluates at any length)"
        )
    window = model.position_limit
    if stride is not None and window is not None and stride >= window:
        raise EvalRequestError(
            f"--stride {stride} must be smaller than the sliding window ({window} tokens, the "
            f"table's positions): choose --stride between 1 and {window - 1}"
        )
    check_lengths(model, lengths, extend, overflow, mode)


def untrained_note(
    cfg: RunConfig, lineage: dict | None, lengths: list[int], run: str | Path
) -> str | None:
    """One line when an evaluation length reaches positions the run never trained (its
    settings and lineage say which it did: :func:`posemb.runs.trained_positions`), else None.

    Example: ``runs/py trained positions 0–31 (train.seq_len=32); length 256 also scores
    positions 32–255, which it never trained (rows 32–255 of its table are untrained)``.
    """
    n, longest = trained_positions(cfg, lineage), max(lengths)
    if longest <= n:
        return None
    past = sorted(L for L in lengths if L > n)
    which = f"length {past[0]}" if len(past) == 1 else f"lengths {', '.join(map(str, past))}"
    line = (
        f"{run} trained positions 0–{n - 1} (train.seq_len={cfg.train.seq_len}); {which} also "
        f"score{'s' if len(past) == 1 else ''} positions {n}–{longest - 1}, which it never trained"
    )
    table = cfg.model.max_positions if cfg.model.has_position_table else None
    if table is not None and table > n:
        line += f" (rows {n}–{min(table, longest) - 1} of its table are untrained)"
    return line
