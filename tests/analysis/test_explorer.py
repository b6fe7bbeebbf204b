"""The table explorer's data (analysis/explorer.py): what the page draws is what posemb
computes, within the size budget, and the page asks for nothing outside itself. The
explorer in a real browser: tests/browser."""

from __future__ import annotations

import html
import json
import math
import re
import sys
from pathlib import Path

import pytest
import torch

from posemb.analysis import explorer as ex
from posemb.analysis.table import cosine_similarity_matrix
from posemb.positional import EXTEND_METHODS, extend_grid, extend_table
from posemb.report import Report

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def table(n: int, d: int = 8, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    freq = torch.exp(-torch.arange(d // 2) / (d // 2) * math.log(n))
    waves = torch.cat([torch.sin(pos * freq), torch.cos(pos * freq)], dim=1)
    return (waves + 0.2 * torch.randn(n, d, generator=g, dtype=torch.float64)).float()


def page_data(page: str) -> dict:
    payload = re.search(r"<script type='application/json' data-role='data'>(.*?)</script>", page)
    return json.loads(payload[1].replace("<\\/", "</"))


def test_packed_values_come_back_within_half_a_step():
    x = torch.randn(1000, dtype=torch.float64)
    packed = ex.pack(x)
    step = (packed["hi"] - packed["lo"]) / 65535
    assert (ex.unpack(packed) - x).abs().max() <= step / 2 + 1e-12
    cos = torch.rand(500, dtype=torch.float64) * 2 - 1
    assert (ex.unpack(ex.pack(cos, -1.0, 1.0)) - cos).abs().max() <= 1.6e-5
    assert ex.unpack(ex.pack(torch.full((3,), 2.5))).tolist() == [2.5] * 3  # no spread
    assert ex.unpack(ex.pack_ints(torch.tensor([0, 7, 65535]))).tolist() == [0, 7, 65535]
    with pytest.raises(ValueError, match=r"\[0, 65535\]"):
        ex.pack_ints(torch.tensor([70000]))


def test_the_map_is_exact_up_to_512_positions_then_block_means():
    w = table(300)
    exact, b = ex.cosine_map(w)
    assert b == 1 and torch.allclose(exact, cosine_similarity_matrix(w))
    w = table(1030)  # blocks of 3, the last of 1
    means, b = ex.cosine_map(w)
    assert b == 3 and means.shape == (344, 344)
    full = cosine_similarity_matrix(w)
    for a, c in ((0, 0), (5, 200), (343, 10), (343, 343)):
        block = full[a * 3 : min(1030, a * 3 + 3), c * 3 : min(1030, c * 3 + 3)]
        assert float(means[a, c]) == pytest.approx(float(block.mean()), abs=1e-12)


def test_the_pages_triangle_index_reads_the_matrix():
    m = 37
    matrix = torch.randn(m, m, dtype=torch.float64)
    matrix = matrix + matrix.T
    tri = ex.upper_triangle(matrix)
    for a in range(m):
        for c in range(a, m):  # explorer.js: a * m - a * (a - 1) / 2 + c - a
            assert tri[a * m - a * (a - 1) // 2 + c - a] == matrix[a, c]


def test_the_extended_rows_are_posembs():
    w = table(40)
    data = ex.explorer_data(w)
    n = 40
    assert data["ext"]["methods"] == list(EXTEND_METHODS)
    assert [s["rows"] for s in data["ext"]["sizes"]] == [80, 160]
    unit = w.double() / w.double().norm(dim=1, keepdim=True)
    for method in EXTEND_METHODS:
        for size in (80, 160):
            entry = data["ext"]["entries"][f"{method}|{size}"]
            g = torch.Generator().manual_seed(0)
            new = extend_table(w.double(), size, method, generator=g)
            if method == "random":  # drawn once at 4x: the 2x rows are its first
                new = extend_table(w.double(), 160, method, generator=g.manual_seed(0))[:size]
            sims = (new / new.norm(dim=1, keepdim=True)) @ unit.T
            assert entry["rows"] == size and entry["stride"] == 1
            assert ex.unpack(entry["near"]).long().tolist() == sims.argmax(dim=1).tolist()
            assert torch.allclose(ex.unpack(entry["cos"]), sims.max(dim=1).values, atol=2e-5)
            assert torch.allclose(ex.unpack(entry["norm"]), new.norm(dim=1), atol=4e-5)
    tile = data["ext"]["entries"]["tile|80"]
    assert ex.unpack(tile["near"])[n:].long().tolist() == list(range(n))


def test_a_table_too_large_to_fit_quickly_leaves_extrapolate_out_and_says_so(monkeypatch):
    monkeypatch.setattr(ex, "FIT_MAX_VALUES", 100)
    data = ex.explorer_data(table(40))  # 40 x 8 = 320 numbers
    assert data["ext"]["methods"] == [m for m in EXTEND_METHODS if m != "extrapolate"]
    assert "extrapolate|80" not in data["ext"]["entries"]
    assert "Extrapolate is left out here: its fit on a table of 40 × 8" in ex.explorer_html(data)


def test_offset_rows_are_never_shown_and_never_extended():
    w = table(42)
    data = ex.explorer_data(w, offset=2)
    assert data["n"] == 40 and data["offset"] == 2
    entry = data["ext"]["entries"]["repeat-last|80"]
    assert ex.unpack(entry["near"])[40:].tolist() == [39.0] * 40


def test_long_extensions_draw_every_strideth_row():
    w = table(1500, d=4)
    data = ex.explorer_data(w)
    entry = data["ext"]["entries"]["tile|6000"]
    assert entry["stride"] == 3 and len(ex.unpack(entry["norm"])) == 2000
    assert ex.unpack(entry["near"])[500:503].tolist() == [0, 3, 6]  # rows 1500, 1503, 1506


def test_a_grid_gets_its_patch_maps_and_the_grid_methods():
    H, W = 5, 7
    w = table(1 + H * W, d=8)
    data = ex.explorer_data(w, offset=1, grid=(H, W))
    patches = data["patches"]
    assert (patches["H"], patches["W"], patches["stride"]) == (H, W, 1)
    maps = ex.unpack(patches["cos"]).reshape(H * W, H * W)
    assert torch.allclose(maps, cosine_similarity_matrix(w[1:]), atol=2e-5)
    assert data["ext"]["methods"] == list(ex.GRID_METHODS_SHOWN)
    entry = data["ext"]["entries"]["tile|140"]  # 2x the sides: 10 x 14
    assert entry["grid"] == [10, 14]
    new = extend_grid(w, (H, W), (10, 14), "tile", prefix=1)[1:]
    assert torch.allclose(ex.unpack(entry["norm"]), new.double().norm(dim=1), atol=1e-4)
    big = ex.patch_view(torch.randn(37 * 37, 4), (37, 37))  # DINOv2's grid at 518 px
    shown = math.ceil(37 / big["stride"]) ** 2
    assert big["stride"] == 3 and shown * 37 * 37 <= ex.GRID_MAX_VALUES
    assert len(ex.unpack(big["cos"])) == shown * 37 * 37


@pytest.mark.parametrize("n", sorted(ex.BUDGET_BYTES))
def test_the_explorer_keeps_to_its_size_budget(n):
    """The block in report.html (data, markup) and the script, for a table of n rows; the
    size depends on n, not on the width."""
    report = Report("t")
    ex.add_explorer(report, table(n, d=4))
    body = report.blocks[0][2]
    size = len(body.encode()) + len(ex.explorer_script().encode())
    assert size <= ex.BUDGET_BYTES[n], size


def test_the_page_is_readable_without_javascript_and_asks_for_nothing(tmp_path):
    report = Report("t")
    report.text("Before", "a paragraph")
    ex.add_explorer(report, table(30), caption="Explore")
    md, page = report.write(tmp_path)
    text = page.read_text()
    # hidden until the script runs; a note for a reader without JavaScript
    assert "<div class='pe' data-posemb-explorer hidden>" in text
    assert "<noscript>" in text and "needs JavaScript" in text
    assert "is in report.html; open it in a browser" in md.read_text()
    data = page_data(text)
    assert data["n"] == 30 and data["map"]["block"] == 1
    script = ex.explorer_script()
    for word in ("http", "fetch(", "XMLHttpRequest", "import(", "WebSocket", "EventSource", ".src"):
        assert word not in script, word
    markup = re.sub(r"data-role='data'>.*?</script>", "", text)  # the data: base64
    assert "url(" not in markup and not re.search(r"https?:", html.unescape(markup))
    assert "script-src 'sha256-" in text and "default-src 'none'" in text


def test_the_script_ships_with_the_package():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "*.js" in pyproject["tool"]["setuptools"]["package-data"]["posemb.analysis"]
    assert "data-posemb-explorer" in ex.explorer_script()


def test_analyze_puts_the_explorer_after_the_summary(tmp_path):
    from safetensors.torch import save_file

    from posemb.analysis import analyze

    save_file({"pos.weight": table(24)}, str(tmp_path / "w.safetensors"))
    result = analyze(tmp_path / "w.safetensors", tmp_path / "a")
    text = result.files["report_html"].read_text()
    assert text.index("<h2>Summary</h2>") < text.index("data-posemb-explorer") < text.index("<img")
    assert page_data(text)["n"] == 24
