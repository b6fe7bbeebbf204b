"""Evaluate a run at several lengths, with extension methods, overflow policies or a
sliding window, and write results.json, results.csv, per_position.csv, plots and reports.

A record per (scheme, recipe, method, eval_len, mode), with at least ``scheme``, ``recipe``,
``method``, ``train_len``, ``eval_len``, ``mode``, ``loss`` (mean nats per token) and
``tokens``; a length that could not be evaluated has ``loss: None`` and an ``error``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from pathlib import Path

from ..data import (
    SyntheticTask,
    atomic_write_text,
    cached_tokens,
    default_cache_dir,
    open_source,
)
from ..model import Transformer
from ..positional.learned import PositionOutOfRangeError
from .length import LengthResult, adapt_model, eval_nonoverlap, eval_sliding, eval_task
from .plots import plot_loss_vs_length, plot_per_position
from .report import Report


def check_lengths(
    model: Transformer, lengths: list[int], method: str | None, overflow: str | None, mode: str
) -> None:
    """Raise the library's clear error when a length is past the table and nothing handles it."""
    limit = model.position_limit
    if limit is None or method or overflow or mode == "sliding":
        return
    too_long = [L for L in lengths if L > limit]
    if too_long:
        raise PositionOutOfRangeError(max(too_long) - 1, limit)


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


def evaluate_run(
    model: Transformer,
    cfg,
    tokens_or_task,
    lengths: list[int],
    *,
    method: str | None = None,
    overflow: str | None = None,
    mode: str = "nonoverlap",
    stride: int | None = None,
    max_windows: int = 32,
    byte_level: bool = False,
    recipe: str | None = None,
) -> list[dict]:
    """One record per length. Errors for one length are recorded, not raised.

    ``max_windows`` counts sequences of the longest length; shorter lengths score the same
    tokens in more, shorter windows.
    """
    records = []
    longest = max(lengths)
    for L in lengths:
        # every length scores the same stretch of text (max_windows sequences of the longest
        # length): differences between lengths come from context, not from different text
        windows = max(1, max_windows * longest // L)
        # each length gets the table extended to exactly that length (a table that already
        # covers L is used as it is): what a user evaluating at L would do
        m = adapt_model(model, new_max=L, method=method, overflow=overflow)
        rec = {
            "scheme": cfg.model.position,
            "recipe": recipe or cfg.train.positions,
            "method": method or overflow or "none",
            "train_len": cfg.train.seq_len,
            "eval_len": L,
            "mode": mode,
        }
        try:
            if isinstance(tokens_or_task, SyntheticTask):
                res = eval_task(m, tokens_or_task, L)
            elif mode == "sliding":
                res = eval_sliding(m, tokens_or_task, L, stride=stride, max_windows=windows)
            else:
                res = eval_nonoverlap(m, tokens_or_task, L, max_windows=windows)
        except (PositionOutOfRangeError, ValueError) as e:
            res = LengthResult(L, mode, None, 0, error=" ".join(str(e).split()))
        rec.update(loss=res.loss, tokens=res.tokens, perplexity=res.perplexity)
        if byte_level and res.loss is not None:
            rec["bits_per_byte"] = res.loss / math.log(2)
        if res.accuracy is not None:
            rec["accuracy"] = res.accuracy
        if res.error:
            rec["error"] = res.error
        rec["per_position"] = res.per_position
        records.append(rec)
    return records


SCALARS = (
    "scheme",
    "recipe",
    "method",
    "train_len",
    "eval_len",
    "mode",
    "loss",
    "perplexity",
    "bits_per_byte",
    "accuracy",
    "tokens",
    "error",
)


def write_results(out_dir: Path, records: list[dict]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "results.json", json.dumps(records, indent=1) + "\n")
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(SCALARS)
    for r in records:
        w.writerow([r.get(k) for k in SCALARS])
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
            w.writerow(
                [
                    i + 1,
                    *[
                        (f"{r['per_position'][i]:.6f}" if i < len(r["per_position"]) else "")
                        for r in curves
                    ],
                ]
            )
        atomic_write_text(out_dir / "per_position.csv", buf.getvalue())


def results_table(records: list[dict]) -> tuple[list[str], list[list[object]]]:
    """Rows: (scheme, recipe, method, mode); columns: each evaluation length."""
    lengths = sorted({r["eval_len"] for r in records})
    keyed: dict[tuple, dict[int, dict]] = {}
    for r in records:
        keyed.setdefault((r["scheme"], r["recipe"], r["method"], r["mode"]), {})[r["eval_len"]] = r
    metric = "accuracy" if any("accuracy" in r for r in records) else "loss"
    header = ["scheme", "recipe", "method", "mode", *[f"{metric} @{L}" for L in lengths]]
    rows = []
    for key, by_len in keyed.items():
        rows.append(
            [
                *key,
                *[
                    (
                        by_len[L].get(metric)
                        if L in by_len and by_len[L].get("loss") is not None
                        else ("n/a" if L in by_len else None)
                    )
                    for L in lengths
                ],
            ]
        )
    return header, rows


def write_eval_report(
    out_dir: Path, records: list[dict], title: str, intro: str, reading: list[str]
) -> tuple[Path, Path]:
    report = Report(title, intro, reading)
    header, rows = results_table(records)
    report.table(
        "Mean loss (nats per token) by evaluation length"
        if "loss @" in header[-1]
        else "Exact match",
        header,
        rows,
    )
    report.image(
        "Loss against evaluation length",
        plot_loss_vs_length(records, out_dir / "loss_vs_length.png"),
    )
    if any(r.get("per_position") for r in records):
        report.image(
            "Loss at each position (longest length per curve)",
            plot_per_position(records, out_dir / "per_position.png"),
        )
    errors = sorted({r["error"] for r in records if r.get("error")})
    report.notes += [f"not evaluated: {e}" for e in errors]
    return report.write(out_dir)


def describe(records: list[dict]) -> list[str]:
    """Two plain sentences about a set of records."""
    ok = [r for r in records if r.get("loss") is not None]
    if not ok:
        return ["No length could be evaluated."]
    train_len = ok[0]["train_len"]
    at_train = [r for r in ok if r["eval_len"] == train_len]
    where = f"At the training length ({train_len} tokens)"
    if not at_train:
        shortest = min(r["eval_len"] for r in ok)
        at_train = [r for r in ok if r["eval_len"] == shortest]
        where = f"At {shortest} tokens, the shortest length evaluated (trained at {train_len}),"
    longest = max(r["eval_len"] for r in ok)
    return [
        f"{where} {_spread(at_train)}.",
        f"At {longest} tokens {_spread([r for r in ok if r['eval_len'] == longest])}.",
    ]


def _spread(records: list[dict]) -> str:
    """'the loss is 2.46' or 'the best configuration is X (2.39) and the worst Y (3.13)'."""
    best = min(records, key=lambda r: r["loss"])
    worst = max(records, key=lambda r: r["loss"])
    if len({_name(r) for r in records}) == 1 or worst["loss"] == best["loss"]:
        return f"the loss is {best['loss']:.3f} nats per token"
    return (
        f"the best configuration is {_name(best)} ({best['loss']:.3f} nats per token) "
        f"and the worst {_name(worst)} ({worst['loss']:.3f})"
    )


def _name(r: dict) -> str:
    method = r["method"]
    extra = [
        f"{r['recipe']} positions" if r["recipe"] != "start" else None,
        None
        if method == "none"
        else (f"overflow={method}" if method in ("clamp", "wrap") else f"extended by {method}"),
        "sliding window" if r["mode"] == "sliding" else None,
    ]
    extra = [x for x in extra if x]
    return r["scheme"] + (f" ({', '.join(extra)})" if extra else "")
