"""Plots of length-generalisation results (matplotlib's Agg canvas; no screen, no global state).

Lengths are plain numbers on the x axis (64, 128, ...), each series has its own colour,
marker and line style, legends sit outside the data, and every point carries its standard
error (bars on the loss-by-length plot, bands on the per-position plot). Files are written
atomically.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from matplotlib.ticker import FixedLocator, NullLocator

from ..figures import new_figure, save_png
from .reading import unit

# 16 hues; the first ten told apart at a glance (no two blues or two oranges among them), so a
# demo's nine series never share a hue family; the line style changes with every series too
COLOURS = (
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # green
    "#CC79A7",  # pink
    "#000000",  # black
    "#BCBD22",  # olive
    "#8C564B",  # brown
    "#9467BD",  # purple
    "#999999",  # grey
    "#17BECF",  # cyan
    "#E69F00",
    "#56B4E9",
    "#D62728",
    "#332288",
    "#882255",
    "#117733",
)
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
DASHES = ("-", "--", "-.", ":")


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


def style(i: int) -> dict:
    """Series ``i``'s colour, marker and line style (all three change from one series to the
    next; the first 16 have distinct colours)."""
    return {
        "color": COLOURS[i % len(COLOURS)],
        "marker": MARKERS[i % len(MARKERS)],
        "ls": DASHES[i % len(DASHES)],
    }


def coinciding(series: dict[str, list[tuple[float, float, float]]]) -> dict[str, list]:
    """Series drawn as one where they would hide each other: two series whose points (x, y,
    se) are at the same x everywhere and differ nowhere by more than the larger standard error
    become one line labelled ``a ≈ b`` (the table keeps both)."""
    merged: list[tuple[list[str], list]] = []
    for name, pts in sorted(series.items()):
        for names, first in merged:
            if _close(first, pts):
                names.append(name)
                break
        else:
            merged.append(([name], pts))
    return {" ≈ ".join(_short(names)): pts for names, pts in merged}


def _close(a: list, b: list) -> bool:
    if [p[0] for p in a] != [p[0] for p in b]:
        return False
    return all(abs(ya - yb) <= max(ea, eb) for (_, ya, ea), (_, yb, eb) in zip(a, b))


def _short(names: list[str]) -> list[str]:
    """``learned / interpolate``, ``cubic``: later names without the first one's scheme."""
    head = names[0].split(" / ")[0] + " / "
    return [names[0]] + [n[len(head) :] if n.startswith(head) else n for n in names[1:]]


def plot_loss_vs_length(
    records: list[dict], path: Path, title: str = "Loss against evaluation length"
) -> Path:
    """Mean loss at each evaluation length, one line per configuration, ± 1 standard error."""
    series: dict[str, list[tuple[int, float, float]]] = defaultdict(list)
    for r in records:
        if r.get("loss") is not None:
            series[label(r)].append((r["eval_len"], r["loss"], r.get("loss_se") or 0.0))
    fig, ax = _figure()
    for pts in series.values():
        pts.sort()
    for i, (name, pts) in enumerate(coinciding(series).items()):
        x, y, e = (list(v) for v in zip(*pts))
        ax.errorbar(x, y, yerr=e, label=name, capsize=3, ms=4, lw=1.3, **style(i))
    lengths = sorted({r["eval_len"] for r in records})
    if lengths:
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(FixedLocator(lengths))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([str(L) for L in lengths])
        ax.set_xlim(lengths[0] / 1.25, lengths[-1] * 1.25)
    train_lens = {r["train_len"] for r in records}
    return _finish(
        fig,
        ax,
        path,
        train_lens,
        "evaluation length (tokens); dashed grey line: training length",
        f"mean loss ({unit(records)})",
        title,
    )


def plot_per_position(
    records: list[dict], path: Path, title: str = "Loss at each position"
) -> Path:
    """Per-position loss curves for each configuration's longest evaluation length, in bins
    of positions (``per_position_bins``), with a band of ± 1 standard error over windows."""
    longest: dict[str, dict] = {}
    for r in records:
        if r.get("per_position") and (
            label(r) not in longest or r["eval_len"] > longest[label(r)]["eval_len"]
        ):
            longest[label(r)] = r
    curves: dict[str, list[tuple[float, float, float]]] = {}
    for name, r in longest.items():
        bins = r.get("per_position_bins") or _bins(r["per_position"])
        first, ys = np.asarray(bins["first"]), np.asarray(bins["mean"])
        sizes = np.diff(np.append(first, len(r["per_position"]) + 1))
        xs = first + (sizes - 1) / 2  # bin centres
        es = bins.get("se") or [0.0] * len(ys)
        curves[f"{name} (L={r['eval_len']})"] = list(zip(xs.tolist(), ys.tolist(), es))
    fig, ax = _figure()
    for i, (name, pts) in enumerate(coinciding(curves).items()):
        xs, ys, es = (np.asarray(v) for v in zip(*pts))
        st = style(i)
        ax.plot(xs, ys, label=name, lw=1.2, color=st["color"], ls=st["ls"])
        if es.any():
            ax.fill_between(xs, ys - es, ys + es, color=st["color"], alpha=0.15, lw=0)
    return _finish(
        fig,
        ax,
        path,
        {r["train_len"] for r in records},
        "position of the predicted token (binned means); dashed grey line: training length",
        f"mean loss ({unit(records)})",
        title,
    )


def _bins(per_position: list[float], n_bins: int = 32) -> dict:
    """Bin means of a per-position curve (records without ``per_position_bins``)."""
    y = np.asarray(per_position)
    starts = np.linspace(0, len(y), min(n_bins, len(y)) + 1).astype(np.int64)[:-1]
    means = np.add.reduceat(y, starts) / np.diff(np.append(starts, len(y)))
    return {"first": (starts + 1).tolist(), "mean": means.tolist()}


def _figure():
    fig = new_figure(9.5, 5)
    return fig, fig.add_subplot()


def _finish(fig, ax, path: Path, train_lens, xlabel: str, ylabel: str, title: str) -> Path:
    for L in sorted(train_lens):
        ax.axvline(L, color="grey", ls="--", lw=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:  # nothing evaluated: no legend (and no warning)
        ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.grid(alpha=0.3)
    return save_png(fig, path)
