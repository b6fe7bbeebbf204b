"""Plots of a position table's diagnostics (matplotlib, Agg canvas; never pyplot's global state).

Every function draws one PNG and returns its path. Positions on the axes are logical
positions (table row = offset + position).

Notation: ``n`` positions, ``d`` width, ``k`` principal components.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from mpl_toolkits.mplot3d.art3d import Line3DCollection
from torch import Tensor

from ..figures import new_figure, save_png
from .summary import TableAnalysis
from .table import NormFeatures, SpectrumResult, as_float64, cosine_similarity_matrix, to_ranges

CMAP = "viridis"  # position -> colour, in every trajectory


def _save(fig: Figure, path: str | Path) -> Path:
    fig.tight_layout()
    return save_png(fig, path)


def plot_cosine_heatmap(
    weight: Tensor,
    path: str | Path,
    title: str = "Cosine similarity between positions",
    *,
    first_position: int = 0,
    max_display: int = 1024,
) -> Path:
    """Heatmap of the cosine similarity of every pair of rows of a ``[n, d]`` table.

    Tables longer than ``max_display`` rows are shown every ``ceil(n / max_display)``-th
    row (the axes keep the true positions), so a table of several thousand rows draws fast.
    """
    w = as_float64(weight)
    n = w.shape[0]
    stride = max(1, math.ceil(n / max_display))
    sims = cosine_similarity_matrix(w[::stride])  # [m, m], m = ceil(n / stride)
    fig = new_figure(6.0, 5.2)
    ax = fig.add_subplot()
    lo, hi = first_position - 0.5, first_position + n - 0.5
    im = ax.imshow(
        sims.numpy(),
        cmap="RdBu_r",
        vmin=-1,
        vmax=1,
        origin="upper",
        extent=(lo, hi, hi, lo),
        interpolation="nearest",
    )
    fig.colorbar(im, ax=ax, label="cosine similarity")
    ax.set_xlabel("position j")
    ax.set_ylabel("position i")
    ax.set_title(title + (f" (every {stride}th row)" if stride > 1 else ""))
    return _save(fig, path)


def labelled_positions(n: int) -> list[int]:
    """The positions to write on a trajectory of ``n``: 0, the last, and about 3 between at
    a power-of-two step (``512 -> [0, 128, 256, 384, 511]``)."""
    if n <= 1:
        return [0]
    step = 2 ** max(0, round(math.log2(n / 4)))
    between = [i for i in range(step, n - 1, step) if n - 1 - i >= step / 2]
    return [0, *between, n - 1]


def _trajectory(ax, points: np.ndarray, norm: Normalize, three_d: bool = False):
    """``points [n, 2 or 3]`` as one line through the positions in order, each segment coloured
    by its position; dots at the positions too while there are few. Returns the line."""
    n = points.shape[0]
    segments = np.stack([points[:-1], points[1:]], axis=1)  # [n - 1, 2, 2 or 3]
    kind = Line3DCollection if three_d else LineCollection
    line = kind(segments, cmap=CMAP, norm=norm, linewidth=2.0 if n <= 256 else 1.2)
    line.set_array(np.arange(n - 1) + 0.5)  # a segment's colour: between its two positions
    (ax.add_collection3d if three_d else ax.add_collection)(line)
    if n <= 128:
        ax.scatter(*points.T, c=np.arange(n), cmap=CMAP, norm=norm, s=_marker(n), zorder=2)
    box = dict(boxstyle="round,pad=0.15", facecolor="white", edgecolor="none", alpha=0.8)
    for i in labelled_positions(n):
        ax.scatter(*points[i], s=18, facecolor="white", edgecolor="black", zorder=4)
        if three_d:
            ax.text(*points[i], f" {i}", fontsize=8, bbox=box, zorder=5)
        else:
            ax.annotate(
                str(i),
                points[i],
                xytext=(4, 4),
                textcoords="offset points",
                fontsize=8,
                bbox=box,
                zorder=5,
            )
    if not three_d:
        ax.autoscale_view()
    return line


def plot_pca_trajectory(
    projections: Tensor,
    explained: Tensor,
    path: str | Path,
    title: str = "PCA trajectory of the positions",
    untrained: list[int] | None = None,
) -> Path:
    """The rows projected on the first two principal components: one line through the
    positions in order, coloured by position (colour bar), with 0, the last and a few
    positions between written on it; untrained rows crossed."""
    p = projections.double()
    n = p.shape[0]
    fig = new_figure()
    ax = fig.add_subplot()
    y = p[:, 1] if p.shape[1] > 1 else torch.zeros(n, dtype=torch.float64)
    points = torch.stack([p[:, 0], y], dim=1).numpy()  # [n, 2]
    line = _trajectory(ax, points, Normalize(0, max(n - 1, 1)))
    if untrained:
        ax.scatter(
            p[untrained, 0].numpy(),
            y[untrained].numpy(),
            marker="x",
            color="crimson",
            s=_marker(n) * 1.5,
            zorder=3,
            label="untrained rows",
        )
        ax.legend(loc="best", fontsize=8)
    fig.colorbar(line, ax=ax, label="position")
    ax.set_xlabel(f"PC1 ({float(explained[0]):.1%} of variance)")
    ax.set_ylabel(f"PC2 ({float(explained[1]):.1%})" if explained.numel() > 1 else "PC2")
    ax.set_title(title)
    return _save(fig, path)


def plot_pca_3d(
    projections: Tensor, explained: Tensor, path: str | Path, title: str = "PCA trajectory (3-D)"
) -> Path:
    """The rows on the first three principal components: a line through the positions in
    order, coloured by position, a few positions written on it."""
    p = projections.double()
    n = p.shape[0]
    cols = [p[:, i] if i < p.shape[1] else torch.zeros(n, dtype=torch.float64) for i in range(3)]
    points = torch.stack(cols, dim=1).numpy()  # [n, 3]
    fig = new_figure(6.4, 5.6)
    ax = fig.add_subplot(projection="3d")
    line = _trajectory(ax, points, Normalize(0, max(n - 1, 1)), three_d=True)
    lo, hi = points.min(axis=0), points.max(axis=0)
    pad = (hi - lo) * 0.05 + 1e-12
    ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
    ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
    ax.set_zlim(lo[2] - pad[2], hi[2] + pad[2])
    fig.colorbar(line, ax=ax, label="position", shrink=0.7, pad=0.12)
    for i, setter in enumerate((ax.set_xlabel, ax.set_ylabel, ax.set_zlabel)):
        share = f" ({float(explained[i]):.1%})" if i < explained.numel() else ""
        setter(f"PC{i + 1}{share}")
    ax.set_title(title)
    return _save(fig, path)


def plot_spectrum(
    spec: SpectrumResult, path: str | Path, title: str = "Spectrum of each dimension over positions"
) -> Path:
    """Heatmap dims × frequency of ``|FFT|``, each dimension scaled to its peak, dims sorted by
    dominant frequency."""
    mag = spec.magnitude[:, 1:]  # [d, f - 1]: the constant term is 0 after centring
    order = torch.argsort(spec.dominant_frequency, stable=True)
    peak = mag.max(dim=1, keepdim=True).values.clamp_min(1e-12)
    shown = (mag / peak)[order]  # [d, f - 1]
    freqs = spec.frequencies[1:]
    fig = new_figure(6.4, 5.0)
    ax = fig.add_subplot()
    f0, f1 = float(freqs[0]), float(freqs[-1])
    half = (float(freqs[1] - freqs[0]) / 2) if freqs.numel() > 1 else 0.5
    im = ax.imshow(
        shown.numpy(),
        aspect="auto",
        cmap="magma",
        origin="lower",
        interpolation="nearest",
        extent=(f0 - half, f1 + half, -0.5, shown.shape[0] - 0.5),
    )
    fig.colorbar(im, ax=ax, label="|FFT| / peak of the dimension")
    ax.set_xlabel("frequency (cycles per position)")
    ax.set_ylabel("dimension (sorted by dominant frequency)")
    ax.set_title(title)
    return _save(fig, path)


def plot_row_norms(
    norms: Tensor,
    path: str | Path,
    untrained: list[int] | None = None,
    title: str = "Row norms",
    features: NormFeatures | None = None,
) -> Path:
    """L2 norm of each row, with untrained rows shaded and, from ``features``, the norm
    jump (a dashed line between its two positions) and outlier rows (circled)."""
    n = norms.numel()
    fig = new_figure(6.4, 3.8)
    ax = fig.add_subplot()
    ax.plot(
        range(n),
        norms.double().numpy(),
        color="tab:blue",
        linewidth=1.0,
        marker="." if n <= 256 else None,
    )
    for i, (a, b) in enumerate(to_ranges(untrained or [])):
        ax.axvspan(
            a - 0.5,
            b + 0.5,
            color="crimson",
            alpha=0.15,
            label="untrained rows" if i == 0 else None,
        )
    marked = _mark_norm_features(ax, norms.double(), features)
    if untrained or marked:
        ax.legend(loc="best", fontsize=8)
    ax.set_xlabel("position i")
    ax.set_ylabel("L2 norm of row i, ‖P[i]‖₂ (table units)")
    ax.set_title(title)
    return _save(fig, path)


def plot_nn_offsets(
    offsets: Tensor,
    path: str | Path,
    title: str = "Offset of each row's nearest neighbour",
    window: int = 32,
) -> Path:
    """Histogram of ``j - i`` for each row's most similar other row (offsets beyond ±window
    counted in the title)."""
    o = offsets.long()
    inside = o[(o.abs() <= window)]
    outside = int(o.numel() - inside.numel())
    counts = torch.bincount(inside + window, minlength=2 * window + 1)  # [2 window + 1]
    fig = new_figure(6.4, 3.8)
    ax = fig.add_subplot()
    ax.bar(range(-window, window + 1), counts.numpy(), width=0.9, color="tab:green")
    ax.set_xlabel("nearest-neighbour offset j − i (positions)")
    ax.set_ylabel("number of positions i")
    ax.set_title(title + (f" ({outside} rows beyond ±{window})" if outside else ""))
    return _save(fig, path)


def plot_analysis(a: TableAnalysis, out_dir: str | Path) -> dict[str, Path]:
    """Every plot of an analysis into ``out_dir``: ``{name: path}``."""
    out = Path(out_dir)
    ratio = a.pca.explained_variance_ratio
    return {
        "cosine": plot_cosine_heatmap(a.weight, out / "cosine.png"),
        "pca_2d": plot_pca_trajectory(
            a.pca.projections, ratio, out / "pca_2d.png", untrained=a.untrained
        ),
        "pca_3d": plot_pca_3d(a.pca.projections, ratio, out / "pca_3d.png"),
        "spectrum": plot_spectrum(a.spectrum, out / "spectrum.png"),
        "norms": plot_row_norms(
            a.norms,
            out / "norms.png",
            a.untrained,
            title=f"Row norms (untrained rows: {a.untrained_method})",
            features=a.norm_features,
        ),
        "nn_offsets": plot_nn_offsets(a.nn_offsets, out / "nn_offsets.png"),
    }


def _mark_norm_features(ax, norms: Tensor, features: NormFeatures | None) -> bool:
    """Draw the jump and the outlier rows of ``features`` on the norms plot; whether any."""
    if features is None:
        return False
    if features.jump is not None:
        j = features.jump
        ax.axvline(
            (j.previous + j.position) / 2,
            color="tab:orange",
            linestyle="--",
            linewidth=1.2,
            label=f"norm jump at position {j.position}",
        )
    if features.outliers:
        rows = [o.position for o in features.outliers]
        ax.scatter(
            rows,
            norms[rows].numpy(),
            s=60,
            facecolor="none",
            edgecolor="crimson",
            linewidth=1.4,
            zorder=3,
            label="outlier rows",
        )
    return features.jump is not None or bool(features.outliers)


def _marker(n: int) -> float:
    return max(2.0, min(30.0, 3000.0 / n))
