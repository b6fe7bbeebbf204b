"""Plots of length-generalisation results (matplotlib, Agg backend: no screen needed)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def label(r: dict) -> str:
    """``learned / interpolate``, ``learned (random positions)``, ``learned / sliding``."""
    name = r["scheme"]
    if r.get("recipe") not in (None, "start"):
        name += f" ({r['recipe']} positions)"
    if r.get("method") not in (None, "none"):
        name += f" / {r['method']}"
    if r.get("mode") == "sliding":
        name += " / sliding"
    return name


def _style(i: int) -> dict:
    """Distinct colour and line style for up to 20 series."""
    return {"color": plt.get_cmap("tab20")(i % 20), "ls": ("-", "--", ":")[(i // 10) % 3]}


def plot_loss_vs_length(
    records: list[dict], path: Path, title: str = "Loss against evaluation length"
) -> Path:
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    train_lens = set()
    for r in records:
        train_lens.add(r["train_len"])
        if r.get("loss") is not None:
            series[label(r)].append((r["eval_len"], r["loss"]))
    fig, ax = plt.subplots(figsize=(8, 5))
    for i, (name, pts) in enumerate(sorted(series.items())):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name, **_style(i))
    ax.set_xscale("log", base=2)
    return _finish(
        fig,
        ax,
        path,
        train_lens,
        "evaluation length (tokens); dashed: training length",
        "loss (nats / token)",
        title,
    )


def plot_per_position(
    records: list[dict], path: Path, title: str = "Loss at each position"
) -> Path:
    """Per-position loss curves for each record's longest evaluation length."""
    longest: dict[str, dict] = {}
    for r in records:
        if r.get("per_position") and (
            label(r) not in longest or r["eval_len"] > longest[label(r)]["eval_len"]
        ):
            longest[label(r)] = r
    fig, ax = plt.subplots(figsize=(8, 5))
    for i, (name, r) in enumerate(sorted(longest.items())):
        y = r["per_position"]
        k = max(1, len(y) // 32)  # mean over bins of k positions: few windows make raw curves noisy
        ys = [sum(y[i : i + k]) / len(y[i : i + k]) for i in range(0, len(y), k)]
        xs = [i + 1 + (min(k, len(y) - i) - 1) / 2 for i in range(0, len(y), k)]  # bin centres
        ax.plot(xs, ys, label=f"{name} (L={r['eval_len']})", lw=1, **_style(i))
    return _finish(
        fig,
        ax,
        path,
        {r["train_len"] for r in records},
        "position of the predicted token (binned means); dashed: training length",
        "mean loss (nats)",
        title,
    )


def _finish(fig, ax, path: Path, train_lens, xlabel: str, ylabel: str, title: str) -> Path:
    for L in sorted(train_lens):
        ax.axvline(L, color="grey", ls="--", lw=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:  # nothing evaluated: no legend (and no warning)
        ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
