"""Figures: a matplotlib figure drawn off-screen (Agg, whatever the global backend is), and
its PNG written atomically. The one home of both for every plot posemb makes (evaluation
curves, table diagnostics, the demo's pictures).
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .files import atomic_open

DPI = 110


def new_figure(width: float = 6.4, height: float = 4.8) -> Figure:
    """A ``width`` x ``height`` inch figure at :data:`DPI`, rendered by Agg."""
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG, cropped to what is drawn (a legend outside the axes included),
    atomically: a kill mid-write leaves the old file or none, never a truncated image. The
    folder is created if missing."""
    path = Path(path)
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=DPI, bbox_inches="tight")
    return path
