"""Evaluate a run at several lengths, with extension methods, overflow policies or a
sliding window, and write results.json, results.csv, per_position.csv, plots and reports.

A record per (scheme, recipe, method, eval_len, mode), with at least ``scheme``, ``recipe``,
``method``, ``train_len``, ``eval_len``, ``mode``, ``loss`` (mean nats per token),
``loss_se`` (its standard error over spans), ``tokens`` (tokens scored), ``span_losses``
(each span's mean, for paired comparisons) and ``provenance``; a length that could not be
evaluated has ``loss: None`` and an ``error``. ``write_results`` adds each record's paired
``change_from`` (the same configuration at the shortest length) and ``vs_best`` (the
lowest loss at its length).
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data import (
    DataError,
    SyntheticTask,
    cached_tokens,
    default_cache_dir,
    open_source,
)
from ..files import atomic_write_text
from ..interop.hf_model import REMEDIES as HF_REMEDIES
from ..interop.hf_model import HFModel
from ..model import Transformer
from ..positional.learned import PositionOutOfRangeError
from ..provenance import count_parameters, environment
from ..runs import read_lineage, step_reached, tokens_trained
from .length import (
    LengthResult,
    adapt_model,
    eval_nonoverlap,
    eval_sliding,
    eval_task,
    forward_tokens,
    sliding_plan,
    sliding_window,
)
from .progress import Progress
from .reading import name
from .stats import add_comparisons
from .text import DEFAULT_SEED, EvalText, document_bounds

TASK_EXAMPLES = 128  # examples per length of a synthetic task
BOUNDS_MAX_TOKENS = 50_000_000  # past this, the files behind the spans are not recounted


def check_lengths(
    model: Transformer, lengths: list[int], method: str | None, overflow: str | None, mode: str
) -> None:
    """Raise the library's clear error when a length is past the table and nothing handles it."""
    limit = model.position_limit
    if limit is None or method or overflow or mode == "sliding":
        return
    too_long = [L for L in lengths if L > limit]
    if too_long:
        remedies = HF_REMEDIES if isinstance(model, HFModel) else None
        raise PositionOutOfRangeError(max(too_long) - 1, limit, remedies)


def eval_tokens(cfg, tokenizer, data: str | None, cache_dir: str | None = None):
    """Validation tokens (or the synthetic task) to evaluate on: ``data`` or the run's own source.

    The token cache is ``cache_dir`` when the caller gives one, else the user's cache
    (``$POSEMB_CACHE`` or ``~/.cache/posemb``). A ``data.cache_dir`` read from a run's
    config.json is used only when it *is* the user's cache: reading a run never writes
    where the run's author pointed it (a note says which cache is used instead).
    """
    source = open_source(data or cfg.data.source, val_fraction=cfg.data.val_fraction)
    if isinstance(source, SyntheticTask):
        return source
    if cache_dir is None and cfg.data.cache_dir:
        user = default_cache_dir()
        if Path(cfg.data.cache_dir).expanduser().resolve() != user.resolve():
            print(
                f"posemb: note: the run's data.cache_dir ({cfg.data.cache_dir}) is not your token "
                f"cache; using {user} ($POSEMB_CACHE) instead",
                file=sys.stderr,
            )
        cache_dir = str(user)
    return cached_tokens(source, "val", tokenizer, cache_dir)


@dataclass
class EvalTask:
    """A synthetic task evaluated on ``examples`` seeded examples per length."""

    task: SyntheticTask
    seed: int = DEFAULT_SEED
    examples: int = TASK_EXAMPLES

    def summary(self) -> str:
        return (
            f"{self.examples} examples per length of synthetic:{self.task.name} (seed {self.seed})"
        )

    def provenance(self) -> dict[str, Any]:
        return {
            "source": f"synthetic:{self.task.name}",
            "task": self.task.name,
            "seed": self.seed,
            "examples": self.examples,
            "standard_error_over": "examples",
            "fingerprint": self.task.fingerprint(),
        }


def load_eval_text(
    cfg,
    tokenizer,
    data: str | None,
    lengths: list[int],
    *,
    n_spans: int | None = None,
    n_tokens: int | None = None,
    seed: int = DEFAULT_SEED,
) -> EvalText | EvalTask:
    """The text every length and method will score: seeded spans from across the validation
    split of ``data`` (default: the run's own source), or a synthetic task.

    Raises:
        DataError: the split is shorter than the longest length (checked before any model
            work, naming the length, the tokens available and the fix).
    """
    spec = data or cfg.data.source
    tokens = eval_tokens(cfg, tokenizer, data)
    if isinstance(tokens, SyntheticTask):
        if min(lengths) < tokens.min_seq_len:
            raise DataError(
                f"length {min(lengths)} is too short for {spec}: a problem needs at least "
                f"{tokens.min_seq_len} tokens; use --lengths of {tokens.min_seq_len} or more"
            )
        return EvalTask(tokens, seed)
    longest = max(lengths)
    if len(tokens) < longest:
        raise DataError(
            f"length {longest} is longer than the evaluation text: the validation split of "
            f"{spec!r} has {len(tokens)} tokens, fewer than one window of {longest}; evaluate "
            f"at lengths up to {len(tokens)} (--lengths) or on more text (--data FILE|DIR)"
        )
    names = bounds = None
    if not spec.startswith("hf:") and len(tokens) <= BOUNDS_MAX_TOKENS:
        source = open_source(spec, val_fraction=cfg.data.val_fraction)
        names, bounds = document_bounds(source, tokenizer, "val", len(tokens))
    info = {"source": spec, "split": "val", "tokenizer": tokenizer.kind}
    return EvalText.draw(
        tokens,
        lengths,
        n_spans=n_spans,
        n_tokens=n_tokens,
        seed=seed,
        source=info,
        names=names,
        bounds=bounds,
    )


def model_provenance(run_dir: str | Path, model: Transformer, cfg) -> dict[str, Any]:
    """Parameters, training steps and tokens seen of the run behind a record (a run started
    from another, ``train.init``: its ``lineage``, and the tokens of the whole chain)."""
    steps = step_reached(run_dir)
    tc = cfg.train
    lineage = read_lineage(run_dir)
    return {
        "run": str(run_dir),
        "parameters": count_parameters(model),
        "steps": steps,
        "tokens_seen": tokens_trained(cfg, steps, lineage),
        "lineage": lineage,
        "train_len": tc.seq_len,
        "positions": tc.positions,
        "max_positions": cfg.model.max_positions,
        "seed": tc.seed,
    }


def record_provenance(text_provenance: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
    """A record's ``provenance``: versions and command, the scored text (``text.provenance()``,
    computed once per text) and the model (:func:`model_provenance`)."""
    return {**environment(), "data": text_provenance, "model": model}


def eval_cost(
    limit: int | None,
    text: EvalText | EvalTask,
    lengths: list[int],
    mode: str = "nonoverlap",
    stride: int | None = None,
) -> int:
    """Tokens :func:`evaluate_run` runs through the model (the progress bar's total)."""
    if isinstance(text, EvalTask):
        return sum(text.examples * L for L in lengths)
    return sum(forward_tokens(limit, text.n_spans, text.span_len, L, mode, stride) for L in lengths)


def evaluate_run(
    model: Transformer,
    cfg,
    text: EvalText | EvalTask,
    lengths: list[int],
    *,
    method: str | None = None,
    overflow: str | None = None,
    mode: str = "nonoverlap",
    stride: int | None = None,
    byte_level: bool = False,
    recipe: str | None = None,
    provenance: dict[str, Any] | None = None,
    progress: Progress | None = None,
    memo: dict | None = None,
    scheme: str | None = None,
) -> list[dict]:
    """One record per length, all scored on ``text``. Errors for one length are recorded,
    not raised. ``memo`` (a dict shared between calls on one model) reuses a length's
    result where another method runs the very same computation (no extension needed).
    ``scheme`` names the model in the records (default its positional scheme; a Hugging
    Face model: its ``model_type``)."""
    records = []
    for L in lengths:
        # each length gets the table extended to exactly that length (a table that already
        # covers L is used as it is): what a user evaluating at L would do
        m = adapt_model(model, new_max=L, method=method, overflow=overflow)
        rec = {
            "scheme": scheme or cfg.model.position,
            "recipe": recipe or cfg.train.positions,
            "method": method or overflow or "none",
            "train_len": cfg.train.seq_len,
            "eval_len": L,
            "mode": mode,
        }
        if mode == "sliding" and not isinstance(text, EvalTask):
            rec["window"], rec["stride"] = sliding_window(m.position_limit, L, None, stride)
        if progress is not None:
            progress.stage(f"{name(rec)} @{L}")
        res = _evaluate_length(m, model, text, L, mode, stride, progress, memo)
        rec.update(loss=res.loss, loss_se=res.loss_se, tokens=res.tokens)
        rec["perplexity"] = res.perplexity
        if byte_level and res.loss is not None:
            rec["bits_per_byte"] = res.loss / math.log(2)
        if res.accuracy is not None:
            rec.update(accuracy=res.accuracy, accuracy_se=res.accuracy_se)
        if res.error:
            rec["error"] = res.error
        if res.units:  # span_losses (text) or example_losses (task): for paired comparisons
            key = "span_losses" if res.unit == "spans" else "example_losses"
            rec[key] = [round(u, 6) for u in res.units]
        rec["per_position"] = [round(v, 5) for v in res.per_position]
        if res.per_position_bins:
            rec["per_position_bins"] = res.per_position_bins
        rec["provenance"] = provenance or {}
        records.append(rec)
    return records


def _evaluate_length(m, model, text, L, mode, stride, progress, memo) -> LengthResult:
    advance = progress.advance if progress is not None else None
    limit = m.position_limit
    plan = sliding_plan(limit, L, None, stride) if mode == "sliding" else None
    # a sliding window as long as L is one pass: the same computation as nonoverlap
    key = (L, "full" if plan is None or plan == [(0, L, 1)] else ("sliding", stride))
    if memo is not None and m is model and key in memo:
        if advance is not None and not isinstance(text, EvalTask):
            advance(forward_tokens(limit, text.n_spans, text.span_len, L, mode, stride))
        return memo[key]
    try:
        if isinstance(text, EvalTask):
            res = eval_task(m, text.task, L, n=text.examples, seed=text.seed, advance=advance)
        elif mode == "sliding":
            res = eval_sliding(m, text, L, stride=stride, advance=advance)
        else:
            res = eval_nonoverlap(m, text, L, advance=advance)
    except (PositionOutOfRangeError, ValueError) as e:
        return LengthResult(L, mode, None, 0, error=" ".join(str(e).split()))
    if memo is not None and m is model:
        memo[key] = res
    return res


SCALARS = (
    "scheme",
    "recipe",
    "method",
    "train_len",
    "eval_len",
    "mode",
    "loss",
    "loss_se",
    "perplexity",
    "bits_per_byte",
    "accuracy",
    "accuracy_se",
    "tokens",
    "change_from_len",
    "change",
    "change_se",
    "vs_best",
    "diff_from_best",
    "diff_from_best_se",
    "tie_with_best",
    "error",
)


def _csv_row(r: dict) -> list[object]:
    c, b = r.get("change_from") or {}, r.get("vs_best") or {}
    flat = {
        **r,
        "change_from_len": c.get("eval_len"),
        "change": c.get("diff"),
        "change_se": c.get("diff_se"),
        "vs_best": b.get("name"),
        "diff_from_best": b.get("diff"),
        "diff_from_best_se": b.get("diff_se"),
        "tie_with_best": b.get("tie"),
    }
    return [flat.get(k) for k in SCALARS]


def write_results(out_dir: Path, records: list[dict]) -> None:
    """results.json (with paired comparisons added), results.csv and per_position.csv."""
    out_dir.mkdir(parents=True, exist_ok=True)
    add_comparisons(records, name)
    atomic_write_text(out_dir / "results.json", json.dumps(records, indent=1) + "\n")
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(SCALARS)
    for r in records:
        w.writerow(_csv_row(r))
    atomic_write_text(out_dir / "results.csv", buf.getvalue())
    curves = [r for r in records if r.get("per_position")]
    if curves:
        buf = io.StringIO()
        w = csv.writer(buf)
        names = [
            f"{r['scheme']}|{r['recipe']}|{r['method']}|{r['mode']}|{r['eval_len']}" for r in curves
        ]
        w.writerow(["position", *names])
        for i in range(max(len(r["per_position"]) for r in curves)):
            cells = [
                (f"{r['per_position'][i]:.5f}" if i < len(r["per_position"]) else "")
                for r in curves
            ]
            w.writerow([i + 1, *cells])
        atomic_write_text(out_dir / "per_position.csv", buf.getvalue())
