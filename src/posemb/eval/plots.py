"""Plots of length-generalisation results (matplotlib, Agg backend: no screen needed)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def label(r: dict) -> str:
    parts = [r["scheme"]]
    if r.get("recipe") not in (None, "start"):
        parts.append(r["recipe"])
    if r.get("method") not in (None, "none"):
        parts.append(r["method"])
    if r.get("mode") == "sliding":
        parts.append("sliding")
    return " / ".join(parts)


def plot_loss_vs_length(records: list[dict], path: Path, title: str = "Loss against evaluation length") -> Path:
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    train_lens = set()
    for r in records:
        train_lens.add(r["train_len"])
        if r.get("loss") is not None:
            series[label(r)].append((r["eval_len"], r["loss"]))
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, pts in sorted(series.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
    ax.set_xscale("log", base=2)
    return _finish(fig, ax, path, train_lens, "evaluation length (tokens); dashed: training length",
                   "loss (nats / token)", title)


def plot_per_position(records: list[dict], path: Path, title: str = "Loss at each position") -> Path:
    """Per-position loss curves for each record's longest evaluation length."""
    longest: dict[str, dict] = {}
    for r in records:
        if r.get("per_position") and (label(r) not in longest or r["eval_len"] > longest[label(r)]["eval_len"]):
            longest[label(r)] = r
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, r in sorted(longest.items()):
        y = r["per_position"]
        k = max(1, len(y) // 256)  # smooth long curves for display
        ys = [sum(y[i : i + k]) / len(y[i : i + k]) for i in range(0, len(y), k)]
        xs = [i + 1 for i in range(0, len(y), k)]
        ax.plot(xs, ys, label=f"{name} (L={r['eval_len']})", lw=1)
    return _finish(fig, ax, path, {r["train_len"] for r in records},
                   "position of the predicted token; dashed: training length", "mean loss (nats)", title)


def _finish(fig, ax, path: Path, train_lens, xlabel: str, ylabel: str, title: str) -> Path:
    for L in sorted(train_lens):
        ax.axvline(L, color="grey", ls="--", lw=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
