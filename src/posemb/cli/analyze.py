"""Diagnose a learned position table: a posemb run, a .safetensors file or a Hugging Face directory.

Writes analysis.json (every number), PNGs (cosine heatmap, PCA trajectory in 2-D and 3-D,
per-dimension spectrum, row norms, nearest-neighbour offsets), report.md and a
self-contained report.html. Rows that never moved from initialisation are found exactly for
posemb runs (the initial table is recreated from the run's seed) and by a labelled
heuristic elsewhere. Reserved offset rows (RoBERTa, OPT: 2) are left out of the diagnostics.
--out must be new or empty (never a run's own folder); it is built aside and published whole
at the end, and --force replaces an existing one once the new analysis is complete.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "diagnose a learned position table (cosine, PCA, spectrum, untrained rows)"
EXAMPLE = "posemb analyze runs/a --out runs/a/analysis   |   posemb analyze gpt2-dir --out out/gpt2"


def _offset(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _grid(text: str) -> tuple[int, int]:
    """``"14x14"`` -> ``(14, 14)``."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        h, w = (int(v) for v in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 14x14, got {text!r}") from None
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"expected positive sides such as 14x14, got {text!r}")
    return h, w


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "source",
        metavar="RUN|FILE.safetensors|HF_DIR",
        help="a posemb run directory, a safetensors file, or a local Hugging Face model directory",
    )
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="DIR",
        help="the folder to write the analysis to (new or empty; written whole at the end)",
    )
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument(
        "--key",
        default=None,
        metavar="NAME",
        help="the table's tensor name (default: pos.weight in a run, the model's table in a "
        "Hugging Face directory, else the unique 2-D tensor whose name contains 'pos')",
    )
    p.add_argument(
        "--grid",
        type=_grid,
        default=None,
        metavar="HxW",
        help="the rows after --offset are an H x W grid of image patches (row-major): adds the "
        "ViT picture (default: read from a vision model's config)",
    )
    p.add_argument(
        "--offset",
        type=_offset,
        default=None,
        metavar="K",
        help="reserved leading rows to leave out (default: from the run or model type, else 0)",
    )


def run(args: argparse.Namespace) -> int:
    from ..analysis import analyze
    from ..analysis.analyze import summary_rows

    result = analyze(
        args.source, args.out, key=args.key, offset=args.offset, grid=args.grid, force=args.force
    )
    print(f"posemb analyze: {result.loaded.name}  ({result.loaded.source})")
    width = max(len(k) for k, _ in summary_rows(result.summary))
    for label, value in summary_rows(result.summary):
        print(f"  {label:<{width}}  {value}")
    print()
    for sentence in result.reading:
        print(f"  {sentence}")
    print()
    files = result.files
    print(f"  report:  {files['report_html']}  (and {files['report_md'].name})")
    print(f"  numbers: {files['json']}")
    pngs = [p.name for p in files.values() if p.suffix == ".png"]
    print(f"  plots:   {', '.join(pngs)} in {files['json'].parent}")
    return 0
