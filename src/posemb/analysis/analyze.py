"""``posemb analyze`` outputs: analysis.json, the PNGs, report.md and a self-contained report.html.

``analyze(source, out_dir)`` is the whole job (the CLI is a thin wrapper): load the table,
run the diagnostics, draw, and write. The HTML page embeds every PNG as a
``data:image/png;base64`` URI, so the one file opens anywhere, and, after the summary, the
table explorer (:mod:`.explorer`): the cosine map to point at, a position's curve and place
on the trajectory, the extension methods' rows.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..files import atomic_write_text, output_dir
from ..report import Report
from ..runs import refuse_model_folder
from .explorer import add_explorer
from .grid import axis_similarity, grid_sentence, grid_similarity, plot_grid_of_grids
from .load import LoadedTable, load_table
from .plots import plot_analysis
from .summary import TableAnalysis, analyze_table, plain_reading
from .table import format_percent, format_ranges, format_share

CAPTIONS = {
    "cosine": "Cosine similarity between positions",
    "pca_2d": "PCA trajectory (2-D): the positions in order, as a line coloured by position",
    "pca_3d": "PCA trajectory (3-D), coloured by position",
    "spectrum": "Per-dimension spectrum over positions (dims × frequency)",
    "norms": "Row norms (untrained rows shaded, a norm jump and outlier rows marked)",
    "nn_offsets": "Offset of each row's nearest neighbour",
    "grid": "Each patch's position row against every patch (cosine), laid out as the image",
}


@dataclass
class AnalyzeResult:
    """What ``analyze`` produced."""

    loaded: LoadedTable
    analysis: TableAnalysis
    summary: dict[str, Any]  # the contents of analysis.json
    reading: list[str]
    files: dict[str, Path]  # "json", "report_md", "report_html" and each plot


def analyze(
    source: str | Path,
    out_dir: str | Path,
    key: str | None = None,
    offset: int | None = None,
    grid: tuple[int, int] | None = None,
    force: bool = False,
) -> AnalyzeResult:
    """Analyse the position table at ``source`` and write every output into ``out_dir``.

    ``out_dir`` must be new or empty (``force``: it is replaced once the new one is
    complete); it is built in a hidden folder beside it and published whole at the end
    (:func:`posemb.files.output_dir`), never into a run or model folder.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {str(out)!r} is a file; choose a directory")
    refuse_model_folder(out, "--out", "analysis")
    src = Path(source) if Path(source).is_dir() else Path(source).parent
    with output_dir(out, force=force, src=src, what="--out", under_src=True) as tmp:
        result = _analyze(source, tmp, key, offset, grid)
    result.files = {k: out / p.relative_to(tmp) for k, p in result.files.items()}
    return result


def _analyze(
    source: str | Path,
    out: Path,
    key: str | None,
    offset: int | None,
    grid: tuple[int, int] | None,
) -> AnalyzeResult:
    """:func:`analyze`, written into ``out`` (the hidden folder).

    A 2-D table (a vision model's, or ``grid`` given) also gets the ViT picture
    (:mod:`.grid`): each patch against every patch, and the similarity by row and column
    offset; the 1-D diagnostics read its patch rows in row-major order."""
    loaded = load_table(source, key=key, offset=offset, grid=grid)
    trained = loaded.context.get("trained_positions")
    a = analyze_table(loaded.table, loaded.offset, loaded.initial, trained_positions=trained)
    reading = plain_reading(a, loaded.context, patches=loaded.grid is not None)
    sim = None
    if loaded.grid is not None:
        sim = grid_similarity(loaded.table[loaded.offset :], loaded.grid)
        axes = axis_similarity(sim)
        reading.insert(0, grid_sentence(axes, loaded.grid))
    summary = {
        "name": loaded.name,
        "source": str(loaded.source),
        "kind": loaded.kind,
        "key": loaded.key,
        "init": loaded.init_note,
        "context": loaded.context,
        **a.to_json(),
        "reading": reading,
    }
    if sim is not None:
        summary["grid"] = {"grid": list(loaded.grid), "prefix": loaded.offset, **axes}
    plots = plot_analysis(a, out)
    if sim is not None:
        H, W = loaded.grid
        title = f"{loaded.key}: {H} x {W} patches, each against every patch"
        plots = {"grid": plot_grid_of_grids(sim, out / "position_grid.png", title), **plots}
    files: dict[str, Path] = {"json": out / "analysis.json", **plots}
    atomic_write_text(files["json"], json.dumps(_no_nan(summary), indent=2) + "\n")
    report = analysis_report(summary, plots)
    add_explorer(report, loaded.table, loaded.offset, loaded.grid, untrained=a.untrained, at=1)
    files["report_md"], files["report_html"] = report.write(out)
    return AnalyzeResult(loaded, a, summary, reading, files)


def summary_rows(s: dict[str, Any]) -> list[tuple[str, str]]:
    """The key numbers as (label, value) rows, for the reports and the terminal."""
    u = s["untrained"]
    nn = s["nearest_neighbor_offsets"]
    dom = ", ".join(
        f"{d['offset']:+d} ({format_percent(d['fraction'])})" for d in nn["dominant"][:3]
    )
    if "trained_rows_only" in nn:
        dom += "; among trained rows: " + ", ".join(
            f"{d['offset']:+d} ({format_percent(d['fraction'])})"
            for d in nn["trained_rows_only"]["dominant"][:3]
        )
    spec = s["spectrum"]
    adj_t = s["cosine"]["mean_adjacent_trained"]
    reserved = s["reserved"]["rows"]
    rows = [
        ("table", f"{s['key']} [{s['table_rows']} × {s['dim']}] from {s['kind']}"),
        *(
            [
                (
                    "patch grid",
                    f"{s['grid']['grid'][0]} × {s['grid']['grid'][1]} after "
                    f"{s['grid']['prefix']} prefix row(s)",
                )
            ]
            if "grid" in s
            else []
        ),
        (
            "positions analysed",
            f"{s['n_rows']} (offset {s['offset']}: "
            + (
                f"reserved rows {format_ranges(reserved)} excluded)"
                if reserved
                else "no reserved rows)"
            ),
        ),
        (
            f"untrained rows ({u['method']})",
            format_share(u["count"], s["n_rows"])
            + (f": positions {format_ranges(u['rows'])}" if u["rows"] else ""),
        ),
        (
            "mean cosine of adjacent rows",
            f"{s['cosine']['mean_adjacent']:.3f}"
            + (f" (trained rows: {adj_t:.3f})" if adj_t is not None and u["rows"] else ""),
        ),
        (
            "explained variance, 2-D / 3-D",
            f"{s['explained_variance_2d']:.1%} / {s['explained_variance_3d']:.1%}",
        ),
        ("nearest-neighbour offsets", dom),
        (
            "sinusoid-like dimensions",
            f"{spec['sinusoid_like_dims']} of {s['dim']} "
            f"(≥{spec['threshold']:.0%} of energy in one peak; median period "
            f"{spec['median_dominant_period']:.1f})",
        ),
        ("row norms", _norms_row(s["norms"])),
        ("initial values", s["init"]),
    ]
    return rows


def _norms_row(norms: dict[str, Any]) -> str:
    """Mean, min and max of the row norms, then a jump and outlier rows when found."""
    text = f"mean {norms['mean']:.4f}, min {norms['min']:.4f}, max {norms['max']:.4f}"
    j = norms.get("jump")
    if j:
        text += (
            f"; jump at position {j['position']} ({j['mean_before']:.4f} before, "
            f"{j['mean_after']:.4f} after)"
        )
    if norms.get("outliers"):
        rows = [o["position"] for o in norms["outliers"]]
        text += f"; outlier rows: position{'s' if len(rows) > 1 else ''} {format_ranges(rows)}"
    return text


def analysis_report(s: dict[str, Any], plots: dict[str, Path]) -> Report:
    """The report of ``analysis.json``'s summary ``s``: the reading, the key numbers, the plots."""
    report = Report(f"Position table analysis: {s['name']}", reading=list(s["reading"]))
    report.pairs("Summary", summary_rows(s))
    for name, path in plots.items():
        report.image(CAPTIONS.get(name, name), path)
    report.notes.append(
        "All numbers are in analysis.json beside this page. Rows are positions "
        "(table row = offset + position)."
    )
    return report


def _no_nan(x: Any) -> Any:
    """``x`` with every NaN or infinity as None: JSON has neither (strict parsers refuse them)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _no_nan(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_no_nan(v) for v in x]
    return x
