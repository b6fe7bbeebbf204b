"""The table explorer of report.html: point at the cosine map, pick a position, try an extension.

``posemb analyze`` and ``posemb demo`` put one explorer in their report.html
(:func:`add_explorer`): a block of HTML with the table's numbers embedded as data and a small
hand-written script (``explorer.js`` beside this module) that draws them on ``<canvas>``
elements. Nothing is fetched: the data sit in a ``<script type="application/json">``
element of the same page, and the page's Content-Security-Policy (:mod:`posemb.report`)
allows only its own scripts. Without JavaScript the block stays hidden and the static
plots of the report say the same.

What the data hold (every float as a 16-bit step between a low and a high value, base64,
little-endian: error at most ``(high - low) / 131070``, 1.5e-5 for a cosine):

- ``map``: the cosine similarity of every pair of positions, the upper triangle of the
  ``[m, m]`` matrix. Up to ``MAP_MAX`` positions ``m = n`` (exact to 1.5e-5); a longer
  table is shown as the mean over blocks of ``b = ceil(n / MAP_MAX)`` positions (the page
  says so and names the block's positions).
- ``xy``, ``norm``: each position on the table's first two principal components, and its
  row norm.
- ``ext``: for each extension method of posemb (:data:`EXTEND_METHODS`; for a 2-D table
  the resampling methods of :func:`extend_grid`) and each new size (2x and 4x the
  positions, or 1.5x and 2x the grid's sides), the extended rows as the page draws them:
  on the table's principal components, each row's most similar row of the table (and
  that cosine), and its norm. At most ``EXT_MAX_ROWS`` rows per table (every
  ``stride``-th row beyond); ``extrapolate`` only for tables of at most
  ``FIT_MAX_VALUES`` numbers (its fit is slow; the page says when it is left out).
- ``patches`` (2-D tables): each patch's cosine with every patch, the ViT picture; for a
  large grid only every ``stride``-th patch row and column get a small map.

Size: 0.63 MB for a 512-row table and 0.73 MB for 2,048 rows, whatever the width; the
budget is ``BUDGET_BYTES`` (0.8 and 1 MB; ``docs/DESIGN.md``, "The table explorer";
``tests/analysis/test_explorer.py`` holds it).

Notation: ``n`` positions (table rows after ``offset`` reserved ones), ``d`` width, ``m``
rows of the displayed map, ``H x W`` a 2-D table's grid.
"""

from __future__ import annotations

import base64
import html
import importlib.resources
import json
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from ..positional.extend import EXTEND_METHODS, extend_table
from ..positional.grid import extend_grid
from ..report import Report
from .table import as_float64, pca, to_ranges

MAP_MAX = 512  # positions shown one by one in the cosine map; more: block means
EXT_FACTORS = (2, 4)  # new sizes of a 1-D table, in multiples of its positions
GRID_FACTORS = (1.5, 2)  # new grid sides of a 2-D table
GRID_METHODS_SHOWN = ("bicubic", "bilinear", "tile", "pad-random")
EXT_MAX_ROWS = 2048  # rows drawn per extended table (every stride-th beyond)
EXT_MAX_VALUES = 1 << 24  # extended tables larger than this (rows x width) are left out
FIT_MAX_VALUES = 1 << 20  # extrapolate's fit on larger tables (n x d) takes too long to show
GRID_MAX_VALUES = 1 << 18  # patch maps x patches in the grid view
# the explorer's bytes in report.html (block and script) for a table of n rows, any width
BUDGET_BYTES = {512: 800_000, 2048: 1_000_000}
_Q = 65535
_RESAMPLED = ("interpolate", "cubic")

ABOUT = {
    "random": "new rows drawn fresh from N(0, {std}²), the scale of an untrained table "
    "(seed 0); the table's rows are kept",
    "tile": "the table repeated: position n + i takes row i",
    "repeat-last": "every new position takes the table's last row",
    "interpolate": "every row resampled: new position j reads the table at j·(n−1)/(m−1), "
    "linearly between its two neighbours (position interpolation)",
    "cubic": "every row resampled at the same points as interpolate, with a cubic "
    "(Catmull-Rom) curve through four neighbours",
    "extrapolate": "a few sinusoids fitted to each column of the table, continued past its "
    "end; the table's rows are kept",
    "bicubic": "the grid resampled (bicubic, as transformers' interpolate_pos_encoding)",
    "bilinear": "the grid resampled (bilinear)",
    "pad-random": "the old grid top-left, new patches drawn from N(0, {std}²) (seed 0)",
    "grid-tile": "the grid repeated in both directions",
}


# -- packing ---------------------------------------------------------------------------------------
def pack(values: Tensor, lo: float | None = None, hi: float | None = None) -> dict:
    """``values`` (any shape, read flat) as 16-bit steps from ``lo`` to ``hi`` (default their
    range): ``{"lo", "hi", "b64"}``; the page reads ``lo + q (hi - lo) / 65535``."""
    x = values.detach().to("cpu", torch.float64).flatten()
    if lo is None:
        lo = float(x.min()) if x.numel() else 0.0
    if hi is None:
        hi = float(x.max()) if x.numel() else lo
    span = hi - lo
    q = ((x - lo) / span * _Q).round().clamp(0, _Q) if span > 0 else torch.zeros_like(x)
    raw = q.numpy().astype("<u2").tobytes()
    return {"lo": lo, "hi": hi, "b64": base64.b64encode(raw).decode("ascii")}


def pack_ints(values: Tensor) -> dict:
    """Non-negative integers below 65536 as 16-bit values: ``{"int": true, "b64"}``."""
    x = values.detach().to("cpu", torch.int64).flatten()
    if x.numel() and (int(x.min()) < 0 or int(x.max()) > _Q):
        raise ValueError("pack_ints holds integers in [0, 65535]")
    raw = x.numpy().astype("<u2").tobytes()
    return {"int": True, "b64": base64.b64encode(raw).decode("ascii")}


def unpack(packed: dict) -> Tensor:
    """What the page reads from :func:`pack` or :func:`pack_ints` (float64, flat)."""
    q = torch.from_numpy(np.frombuffer(base64.b64decode(packed["b64"]), dtype="<u2").astype(float))
    if packed.get("int"):
        return q
    return packed["lo"] + q * (packed["hi"] - packed["lo"]) / _Q


def _unit(w: Tensor) -> Tensor:
    return w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)


# -- the cosine map --------------------------------------------------------------------------------
def cosine_map(rows: Tensor, max_display: int = MAP_MAX) -> tuple[Tensor, int]:
    """``[n, d]`` -> (``[m, m]`` cosine similarity, block ``b``): exact when ``n <=
    max_display`` (``b = 1``), else the mean cosine over blocks of ``b = ceil(n /
    max_display)`` positions (the last block may be shorter), computed exactly as
    ``(Σ_A u_i) · (Σ_B u_j) / (|A| |B|)`` of the unit rows."""
    u = _unit(as_float64(rows))
    n = u.shape[0]
    b = max(1, math.ceil(n / max_display))
    if b == 1:
        return u @ u.T, 1
    block = torch.arange(n) // b  # [n]
    m = int(block[-1]) + 1
    sums = torch.zeros(m, u.shape[1], dtype=torch.float64).index_add_(0, block, u)  # [m, d]
    counts = torch.bincount(block, minlength=m).double()  # [m]
    return (sums @ sums.T) / (counts[:, None] * counts[None, :]), b


def upper_triangle(matrix: Tensor) -> Tensor:
    """``[m, m]`` -> ``[m (m + 1) / 2]``, row by row from the diagonal (the page's index of
    ``(a, c)``, ``a <= c``, is ``a m - a (a - 1) / 2 + c - a``)."""
    m = matrix.shape[0]
    i, j = torch.triu_indices(m, m)
    return matrix[i, j]


# -- the extended rows -----------------------------------------------------------------------------
def extension_view(ext: Tensor, table: Tensor, mean: Tensor, comps: Tensor) -> dict:
    """What the page draws of an extended table ``ext`` ``[m, d]`` (positions only) beside the
    table's unit rows ``table`` ``[n, d]``: every ``stride``-th row's coordinates on the
    table's principal components ``comps`` ``[2, d]`` (centred on the table's ``mean``
    ``[d]``), its most cosine-similar row of the table, that cosine and its norm."""
    m = ext.shape[0]
    stride = max(1, math.ceil(m / EXT_MAX_ROWS))
    shown = ext[::stride].to("cpu", torch.float64)  # [k, d]
    xy = (shown - mean) @ comps.T  # [k, 2]
    best = torch.empty(shown.shape[0], dtype=torch.float64)
    chunks = []
    for start in range(0, shown.shape[0], 512):  # [512, n] at a time
        sims = _unit(shown[start : start + 512]) @ table.T
        value, index = sims.max(dim=1)
        best[start : start + value.numel()] = value
        chunks.append(index)
    near = torch.cat(chunks)
    return {
        "rows": m,
        "stride": stride,
        "xy": pack(xy),
        "near": pack_ints(near),
        "cos": pack(best, -1.0, 1.0),
        "norm": pack(shown.norm(dim=1)),
    }


def _sized(n: int, d: int, factor: float) -> bool:
    return math.ceil(factor * n) * d <= EXT_MAX_VALUES


def extensions_1d(table: Tensor, offset: int, basis: tuple[Tensor, ...], std: float) -> dict:
    """Every 1-D method of :func:`extend_table` at ``EXT_FACTORS`` times the positions of
    ``table`` ``[offset + n, d]``, as :func:`extension_view` entries keyed ``method|rows``
    (``basis``: its last three arguments). The methods that keep the table's rows are
    computed once at the largest size (their smaller tables are its first rows: the same
    function of the position)."""
    rows = table[offset:]
    n, d = rows.shape
    factors = [f for f in EXT_FACTORS if _sized(n, d, f)]
    entries: dict[str, dict] = {}

    def extended(method: str, f: int) -> Tensor:  # [offset + f n, d]
        g = torch.Generator().manual_seed(0)
        return extend_table(table, offset + f * n, method, offset, std=std, generator=g)

    methods = [m for m in EXTEND_METHODS if m != "extrapolate" or n * d <= FIT_MAX_VALUES]
    note = (
        ""
        if len(methods) == len(EXTEND_METHODS)
        else f"extrapolate is left out here: its fit on a table of {n:,} × {d} numbers takes "
        "minutes (posemb extend --method extrapolate makes it)"
    )
    for method in methods if factors else ():
        longest = None if method in _RESAMPLED else extended(method, max(factors))
        for f in factors:
            full = extended(method, f) if longest is None else longest
            ext = full[offset : offset + f * n]
            entries[f"{method}|{f * n}"] = extension_view(ext, *basis)
    sizes = [{"rows": f * n, "label": f"{f}× ({f * n:,} positions)"} for f in factors]
    about = {k: ABOUT[k].format(std=std) for k in methods}
    return {"methods": methods, "sizes": sizes, "entries": entries, "about": about, "note": note}


def extensions_2d(
    table: Tensor, offset: int, grid: tuple[int, int], basis: tuple[Tensor, ...], std: float
) -> dict:
    """The resampling methods of :func:`extend_grid` to grids ``GRID_FACTORS`` times the
    sides of ``grid``; entries as :func:`extensions_1d`'s, each with its new ``grid``."""
    H, W = grid
    rows = table[offset:]
    grids = [(math.ceil(f * H), math.ceil(f * W)) for f in GRID_FACTORS]
    grids = [g for g in dict.fromkeys(grids) if g[0] * g[1] * rows.shape[1] <= EXT_MAX_VALUES]
    entries: dict[str, dict] = {}
    for method in GRID_METHODS_SHOWN:
        for h, w in grids:
            g = torch.Generator().manual_seed(0)
            ext = extend_grid(table, grid, (h, w), method, offset, std=std, generator=g)
            entries[f"{method}|{h * w}"] = {
                **extension_view(ext[offset:], *basis),
                "grid": [h, w],
            }
    sizes = [{"rows": h * w, "label": f"{h} × {w} patches"} for h, w in grids]
    about = {k: ABOUT["grid-" * (k == "tile") + k].format(std=std) for k in GRID_METHODS_SHOWN}
    return {"methods": list(GRID_METHODS_SHOWN), "sizes": sizes, "entries": entries, "about": about}


# -- the patches -----------------------------------------------------------------------------------
def patch_view(cells: Tensor, grid: tuple[int, int]) -> dict:
    """The grid of per-patch maps: patch ``(i, j)``'s cosine with every patch, for the patches
    of every ``stride``-th grid row and column (``stride`` 1 unless the maps would hold more
    than ``GRID_MAX_VALUES`` values): ``cos`` ``[S, H*W]``, the source patches row-major."""
    H, W = grid
    stride = 1
    while math.ceil(H / stride) * math.ceil(W / stride) * H * W > GRID_MAX_VALUES:
        stride += 1
    sources = [i * W + j for i in range(0, H, stride) for j in range(0, W, stride)]
    u = _unit(as_float64(cells))
    return {"H": H, "W": W, "stride": stride, "cos": pack(u[sources] @ u.T, -1.0, 1.0)}


def _colours(name: str) -> str:
    """256 colours of a matplotlib colormap as one hex string (the static plots' colours)."""
    import matplotlib

    rgb = (matplotlib.colormaps[name](np.linspace(0, 1, 256))[:, :3] * 255).round()
    return "".join(f"{int(r):02x}{int(g):02x}{int(b):02x}" for r, g, b in rgb)


def explorer_data(
    table: Tensor,
    offset: int = 0,
    grid: tuple[int, int] | None = None,
    *,
    untrained: Sequence[int] = (),
    std: float = 0.02,
) -> dict:
    """Everything the page shows of ``table`` ``[offset + n, d]`` (module docstring), as JSON.

    Args:
        table: the whole table as stored; rows ``0 .. offset - 1`` are reserved (not shown).
        offset: reserved leading rows.
        grid: ``(H, W)`` when the positions are a vision model's patches (row-major).
        untrained: positions whose rows never trained (shaded on the curves).
        std: the scale of fresh rows for ``random`` and ``pad-random``.
    """
    rows = as_float64(table[offset:])  # [n, d]
    n = rows.shape[0]
    matrix, block = cosine_map(rows)
    p = pca(rows, k=2)
    xy = torch.zeros(n, 2, dtype=torch.float64)
    xy[:, : p.projections.shape[1]] = p.projections
    comps = torch.zeros(2, rows.shape[1], dtype=torch.float64)
    comps[: p.components.shape[0]] = p.components
    basis = (_unit(rows), rows.mean(dim=0), comps)
    whole = as_float64(table)
    ext = (
        extensions_2d(whole, offset, grid, basis, std)
        if grid
        else extensions_1d(whole, offset, basis, std)
    )
    return {
        "n": n,
        "offset": offset,
        "grid": list(grid) if grid else None,
        "map": {"m": matrix.shape[0], "block": block, "cos": pack(upper_triangle(matrix), -1, 1)},
        "xy": pack(xy),
        "explained": [round(float(r), 4) for r in p.explained_variance_ratio[:2]],
        "norm": pack(rows.norm(dim=1)),
        "untrained": [list(r) for r in to_ranges(list(untrained))],
        "ext": ext,
        "patches": patch_view(rows, grid) if grid else None,
        "colours": {"div": _colours("RdBu_r"), "seq": _colours("viridis")},
    }


# -- the page --------------------------------------------------------------------------------------
STYLE = (
    ".pe-row{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}"
    ".pe-row>div{flex:0 1 auto;max-width:100%}.pe-map{width:514px}.pe-side{width:502px}"
    ".pe canvas{max-width:100%;height:auto;display:block;border:1px solid #ddd}"
    ".pe canvas:focus{outline:3px solid #4a7;outline-offset:2px}"
    ".pe-readout{min-height:2.6em;margin:.3em 0;font-variant-numeric:tabular-nums}"
    ".pe-note{color:#444;font-size:.92em}.pe label{margin-right:1em}"
    ".pe input{width:6em}.pe h3{margin-top:1.4em}"
)


def _options(values: list[tuple[str, str]]) -> str:
    esc = html.escape
    return "".join(f"<option value='{esc(v)}'>{esc(text)}</option>" for v, text in values)


def _readout(role: str) -> str:
    return f"<p class='pe-readout' data-role='{role}' aria-live='polite'></p>"


def _canvas(role: str, width: int, height: int, label: str, focusable: bool = False) -> str:
    tab = " tabindex='0'" if focusable else ""
    return (
        f"<canvas data-role='{role}' width='{width}' height='{height}'{tab} "
        f"aria-label='{html.escape(label)}'></canvas>"
    )


def _map_note(data: dict) -> str:
    n, m, b = data["n"], data["map"]["m"], data["map"]["block"]
    if b == 1:
        return (
            f"The map holds all {n:,} × {n:,} pairs of positions: hovering reads the exact "
            "cosine similarity (to 3 decimals)."
        )
    return (
        f"The table has {n:,} positions: the map shows {m} × {m} blocks of {b} positions, "
        "and hovering reads the mean cosine similarity of a block, naming its positions "
        "(not the value of one pair). The trajectory shows every position."
    )


def _extension_html(data: dict) -> str:
    ext, n = data["ext"], data["n"]
    if not ext["entries"]:
        return ""
    methods = _options([(k, k) for k in ext["methods"]])
    sizes = _options([(str(s["rows"]), s["label"]) for s in ext["sizes"]])
    what = "its grid resampled" if data["grid"] else f"more than its {n:,} positions"
    legend = (
        "Grey: the table's positions in order; dots: the extended table's patches."
        if data["grid"]
        else "Grey: the table's positions in order; dots: the extended table's positions "
        f"(blue 0–{n - 1:,}, orange from {n:,} on, past the table)."
    )
    return (
        f"<h3>The table with {what}</h3>"
        "<div data-role='ext'><p>"
        f"<label>Extension method <select data-role='method'>{methods}</select></label>"
        f"<label>New size <select data-role='size'>{sizes}</select></label></p>"
        + (
            f"<p class='pe-note'>{html.escape(ext['note'].capitalize())}.</p>"
            if ext.get("note")
            else ""
        )
        + "<p class='pe-note' data-role='ext-about'></p><div class='pe-row'>"
        + _canvas("ext-pca", 330, 300, "the extended rows on the table's principal components")
        + "<div>"
        + _canvas("ext-near", 640, 170, "each extended row's most similar row of the table")
        + _canvas("ext-norm", 640, 130, "the norm of each extended row")
        + f"</div></div><p class='pe-note'>{html.escape(legend)} Middle: each row's most "
        "similar row of the table (colour: that cosine similarity, blue -1 to red 1); "
        "bottom: the row norms (grey: the table's). Point at a chart to read a row.</p>"
        + _readout("ext-readout")
        + "</div>"
    )


def _patches_html(data: dict) -> str:
    P = data["patches"]
    if not P:
        return ""
    some = (
        ""
        if P["stride"] == 1
        else f" (one patch row and column in every {P['stride']} gets a map, to keep the page "
        "small)"
    )
    return (
        f"<h3>The {P['H']} × {P['W']} patches</h3><p class='pe-note'>Each small map is one "
        f"patch's cosine similarity with every patch, laid out as the image{some}; rows and "
        "columns are counted from 1 as in the picture below. Point to read a pair; click a "
        "map, or focus the picture and use the arrow keys, to pick its patch.</p>"
        + _canvas("patches", 560, 560, "each patch against every patch", focusable=True)
        + _readout("patches-readout")
    )


def explorer_html(data: dict) -> str:
    """The explorer block of report.html for :func:`explorer_data`'s ``data``: hidden until
    the script shows it, with a ``<noscript>`` note for a page read without JavaScript."""
    n = data["n"]
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    help_text = (
        "Point at the cosine map to read two positions and their cosine similarity. Click a "
        "cell (or focus the map with Tab, move with the arrow keys, Shift for 10 at a time, "
        "and press Enter), or type a position, to pick position i: the curve shows its "
        "similarity to every other position and the trajectory marks its place. Click the "
        "curve or the trajectory to pick another."
    )
    return (
        f"<style>{STYLE}</style>"
        "<noscript><p class='pe-note'>The interactive explorer of this table needs "
        "JavaScript; the pictures below show the same numbers.</p></noscript>"
        "<div class='pe' data-posemb-explorer hidden>"
        f"<script type='application/json' data-role='data'>{payload}</script>"
        f"<p>{html.escape(help_text)}</p><p class='pe-note'>{html.escape(_map_note(data))}</p>"
        "<div class='pe-row'><div class='pe-map'>"
        + _canvas("map", 512, 512, "cosine map: arrow keys move, Enter picks position i", True)
        + "<p class='pe-note'>Rows: position i, from 0 at the top; columns: position j, from "
        "0 at the left. Blue -1, white 0, red 1.</p>"
        + _readout("map-readout")
        + "</div><div class='pe-side'><p><label>Go to position "
        f"<input type='number' data-role='goto' min='0' max='{n - 1}' step='1' value='0'>"
        "</label></p>"
        + _canvas("curve", 500, 200, "the picked position's similarity to every position")
        + _readout("curve-readout")
        + _canvas("pca", 500, 300, "the positions on the first two principal components")
        + _readout("pca-readout")
        + "</div></div>"
        + _extension_html(data)
        + _patches_html(data)
        + "</div>"
    )


def explorer_script() -> str:
    """The explorer's JavaScript (``explorer.js``, shipped beside this module)."""
    return importlib.resources.files(__package__).joinpath("explorer.js").read_text("utf-8")


def add_explorer(
    report: Report,
    table: Tensor,
    offset: int = 0,
    grid: tuple[int, int] | None = None,
    *,
    caption: str = "Explore the table",
    at: int | None = None,
    **options,
) -> dict:
    """Put the explorer of ``table`` (:func:`explorer_data`'s arguments and ``options``) into
    ``report`` as an interactive block, at block index ``at`` (default: the end); returns
    the data embedded."""
    data = explorer_data(table, offset, grid, **options)
    report.interactive(
        caption,
        explorer_html(data),
        explorer_script(),
        markdown="An interactive explorer of this table (point at the cosine map, pick a "
        "position, compare extension methods) is in report.html; open it in a browser.",
        at=at,
    )
    return data
