"""Every kind of report opened in headless Chromium: ``posemb demo``'s (a sweep report too),
``posemb analyze`` of a run, of a Hugging Face folder, of a 2-D table and of a long table,
and ``posemb eval``'s. Each page: no console error, no request leaving the file, every
image decoded, a screenshot written. The explorers: the pointer on a known cell reads its
known cosine, positions are picked by click, keys and typing, and the method picker
switches the extended rows to those posemb computes."""

from __future__ import annotations

import io
import math
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from kit import TINY, tiny_quick_budget
from posemb.analysis import analyze, load_table
from posemb.analysis.table import cosine_similarity_matrix
from posemb.cli.main import main
from posemb.positional import extend_table

EXACT = re.compile(r"position i = (\d+), position j = (\d+): cosine similarity (-?\d+\.\d{3})")
BLOCK = re.compile(
    r"positions i = (\d+)–(\d+), positions j = (\d+)–(\d+): mean cosine similarity "
    r"(-?\d+\.\d{3}) \(blocks of (\d+) positions\)"
)
PATCH = re.compile(
    r"patch \(row (\d+), column (\d+)\) against patch \(row (\d+), column (\d+)\): "
    r"cosine similarity (-?\d+\.\d{3})"
)
NEAREST = re.compile(
    r"position ([\d,]+)[^:]*: nearest row of the table position ([\d,]+)[^(]*"
    r"(?:\([^)]*\) )?\(cosine similarity (-?\d+\.\d{3})\)"
)


def structured_table(n: int, d: int, seed: int = 0) -> torch.Tensor:
    """``[n, d]``: sinusoids of position (neighbours alike) plus a little noise."""
    g = torch.Generator().manual_seed(seed)
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    freq = torch.exp(-torch.arange(d // 2) / (d // 2) * math.log(n))
    waves = torch.cat([torch.sin(pos * freq), torch.cos(pos * freq)], dim=1)
    return waves + 0.2 * torch.randn(n, d, generator=g)


def hover_cell(browser, i: int, j: int, m: int) -> str:
    """Point at cell (row i, column j) of the ``m x m`` cosine map; the readout."""
    canvas = browser.role("map")
    size = browser.driver.execute_script("return arguments[0].clientWidth", canvas)
    k = size / m
    browser.hover(canvas, (j + 0.5) * k, (i + 0.5) * k)
    return browser.text("map-readout")


def assert_reads_the_cosine(browser, cos: torch.Tensor, i: int, j: int) -> None:
    """The pointer on cell (i, j) of an exact map names it (within one cell where cells are
    one pixel) and shows the cosine of the pair it names, to 3 decimals."""
    text = hover_cell(browser, i, j, cos.shape[0])
    found = EXACT.search(text)
    assert found, text
    a, c, value = int(found[1]), int(found[2]), float(found[3])
    assert abs(a - i) <= 1 and abs(c - j) <= 1, (text, i, j)
    assert value == pytest.approx(float(cos[a, c]), abs=1.1e-3), text


def selected(browser) -> int:
    """The position the explorer shows."""
    root = browser.driver.find_element("css selector", "[data-posemb-explorer]")
    return int(root.get_attribute("data-selected"))


# -- the reports -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def table_report(tmp_path_factory) -> tuple[Path, torch.Tensor]:
    """``posemb analyze`` of a 512-row safetensors table."""
    tmp = tmp_path_factory.mktemp("table")
    table = structured_table(512, 16)
    save_file({"pos.weight": table}, str(tmp / "w.safetensors"))
    result = analyze(tmp / "w.safetensors", tmp / "analysis")
    return result.files["report_html"], table


@pytest.fixture(scope="module")
def run_reports(tmp_path_factory) -> dict[str, Path]:
    """A tiny trained run (a 32-row table), its ``posemb analyze`` and ``posemb eval``."""
    from posemb.train import build_config, train

    tmp = tmp_path_factory.mktemp("run")
    text = tmp / "text.txt"
    text.write_text("the cat chased the dog. the dog chased the cat.\n" * 400)
    settings = {
        **TINY,
        "model.max_positions": 32,
        "train.max_steps": 4,
        "train.eval_every": 4,
        "train.checkpoint_every": 4,
        "train.eval_batches": 1,
        "data.source": str(text),
        "data.cache_dir": str(tmp / "cache"),
    }
    run = tmp / "run"
    train(build_config("tiny", settings), run)
    analysis = analyze(run, tmp / "analysis").files["report_html"]
    assert main(["eval", str(run), "--lengths", "16,32", "--out", str(tmp / "eval")]) == 0
    return {"run": run, "analysis": analysis, "eval": tmp / "eval" / "report.html"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """``posemb demo`` made tiny as in tests/cli/test_demo_report.py (4 steps a model)."""
    from posemb.experiments import order as order_task

    steps = {
        "train.max_steps": 4,
        "train.eval_every": 4,
        "train.checkpoint_every": 4,
        "train.eval_batches": 1,
    }
    tmp = tmp_path_factory.mktemp("demo")
    data = tmp / "text.txt"
    data.write_text("the cat chased the dog. the dog chased the cat.\n" * 400)
    with pytest.MonkeyPatch.context() as mp:
        tiny_quick_budget(mp, train_len=32, tokens=300, settings=steps)
        small = {"model.n_layer": TINY["model.n_layer"], "model.d_model": TINY["model.d_model"]}
        for key, value in {**steps, **small}.items():
            mp.setitem(order_task.ORDER_SETTINGS, key, value)
        mp.setenv("POSEMB_CACHE", str(tmp / "cache"))
        mp.setattr("sys.stdout", io.StringIO())
        assert main(["demo", "--data", str(data), "--out", str(tmp / "out")]) == 0
    return tmp / "out"


# -- analyze of a table: pointing, picking, extending ----------------------------------------------
def test_the_pointer_on_a_known_cell_reads_its_cosine(browser, table_report, tmp_path):
    page, table = table_report
    assert browser.check(page) >= 5  # the static plots are there too
    cos = cosine_similarity_matrix(table)
    for i, j in ((100, 300), (7, 7), (511, 0), (250, 251)):
        assert_reads_the_cosine(browser, cos, i, j)
    assert "exact cosine similarity" in browser.driver.page_source
    print(browser.screenshot("analyze-512", tmp_path))


def test_a_position_is_picked_by_click_keys_and_typing(browser, table_report):
    from selenium.webdriver.common.keys import Keys

    page, _ = table_report
    browser.open(page)
    i = int(EXACT.search(hover_cell(browser, 40, 90, 512))[1])
    browser.click()
    assert selected(browser) == i
    assert f"position {i} on the first two principal components" in browser.text("pca-readout")
    # the keyboard alone: Tab reaches the map first, arrows move (Shift: 10), Enter picks
    browser.open(page)
    browser.keys(Keys.TAB)
    assert browser.active_role() == "map"
    browser.keys(Keys.ARROW_DOWN * 3 + Keys.ARROW_RIGHT)
    browser.keys(Keys.ARROW_DOWN, held=Keys.SHIFT)
    assert "position i = 13, position j = 1:" in browser.text("map-readout")
    browser.keys(Keys.ENTER)
    assert selected(browser) == 13
    browser.keys(Keys.TAB)
    assert browser.active_role() == "goto"
    browser.keys("a", held=Keys.CONTROL)
    browser.keys("300", Keys.ENTER)
    assert selected(browser) == 300
    assert "cosine similarity of position 300 with every position" in browser.text("curve-readout")


def test_the_method_picker_switches_the_extended_rows(browser, table_report):
    page, table = table_report
    browser.open(page)
    box = browser.role("ext")
    n, unit = table.shape[0], table / table.norm(dim=1, keepdim=True)
    seen = set()
    for method in ("tile", "repeat-last", "interpolate", "extrapolate"):
        browser.pick("method", method)
        browser.pick("size", str(2 * n))
        assert (box.get_attribute("data-method"), box.get_attribute("data-rows")) == (
            method,
            str(2 * n),
        )
        readout = browser.text("ext-readout")
        found = NEAREST.search(readout)
        assert found and int(found[1].replace(",", "")) == n, readout
        row = extend_table(table.double(), 2 * n, method)[n].float()  # position n
        sims = unit @ (row / row.norm())
        assert int(found[2].replace(",", "")) == int(sims.argmax()), (method, readout)
        assert float(found[3]) == pytest.approx(float(sims.max()), abs=1.1e-3)
        assert method in browser.text("ext-about")
        seen.add(readout)
    assert len(seen) == 4  # every method shows other rows
    browser.pick("size", str(4 * n))
    assert box.get_attribute("data-rows") == str(4 * n)


def test_a_2048_row_table_reads_block_means_and_says_so(browser, tmp_path):
    from posemb.analysis.explorer import add_explorer
    from posemb.report import Report

    table = structured_table(2048, 8, seed=1)
    report = Report("A 2,048-row table")
    add_explorer(report, table)
    _, page = report.write(tmp_path)
    browser.check(page)
    text = hover_cell(browser, 75, 300, 512)
    found = BLOCK.search(text)
    assert found, text
    i0, i1, j0, j1, value, b = (float(x) if "." in x else int(x) for x in found.groups())
    assert b == 4 and i1 - i0 == 3 and j1 - j0 == 3 and abs(i0 / 4 - 75) <= 1, text
    unit = table.double() / table.double().norm(dim=1, keepdim=True)
    mean = float((unit[i0 : i1 + 1] @ unit[j0 : j1 + 1].T).mean())
    assert value == pytest.approx(mean, abs=1.1e-3)
    assert "mean cosine similarity of a block" in browser.driver.page_source
    print(browser.screenshot("explorer-2048", tmp_path))


# -- the other kinds -------------------------------------------------------------------------------
def test_analyze_report_of_a_run(browser, run_reports, tmp_path):
    page = run_reports["analysis"]
    assert browser.check(page) >= 5
    loaded = load_table(run_reports["run"])
    cos = cosine_similarity_matrix(loaded.table[loaded.offset :])
    assert_reads_the_cosine(browser, cos, 3, 20)
    print(browser.screenshot("analyze-run", tmp_path))


def test_eval_report_of_a_run(browser, run_reports, tmp_path):
    assert browser.check(run_reports["eval"]) >= 1
    print(browser.screenshot("eval", tmp_path))


def test_analyze_report_of_a_hugging_face_folder(browser, tmp_path):
    """OPT's folder, as save_pretrained writes it: 2 reserved rows before its 64 positions."""
    import transformers

    from hfkit import FOLDERS

    cls, _, fields = FOLDERS["opt"]
    torch.manual_seed(0)
    config = transformers.AutoConfig.for_model("opt", vocab_size=300, **fields(64))
    folder = tmp_path / "opt"
    getattr(transformers, cls)(config).save_pretrained(folder)
    page = analyze(folder, tmp_path / "analysis").files["report_html"]
    assert browser.check(page) >= 5
    loaded = load_table(folder)
    assert loaded.offset == 2
    assert_reads_the_cosine(browser, cosine_similarity_matrix(loaded.table[loaded.offset :]), 9, 40)
    browser.pick("method", "tile")
    assert "nearest row of the table position 0 " in browser.text("ext-readout")
    print(browser.screenshot("analyze-hf", tmp_path))


def test_a_2d_table_shows_each_patchs_map_with_the_same_hover(browser, tmp_path):
    H = W = 6
    g = torch.Generator().manual_seed(2)
    rows, cols = torch.randn(H, 1, 16, generator=g), torch.randn(1, W, 16, generator=g)
    cells = (rows + cols).reshape(H * W, 16) + 0.3 * torch.randn(H * W, 16, generator=g)
    table = torch.cat([torch.randn(1, 16, generator=g), cells])  # a class token first
    save_file({"pos.weight": table}, str(tmp_path / "w.safetensors"))
    page = analyze(tmp_path / "w.safetensors", tmp_path / "a", offset=1, grid=(H, W))
    browser.check(page.files["report_html"])
    canvas = browser.role("patches")
    px, gap = (int(canvas.get_attribute(k)) for k in ("data-cell", "data-gap"))
    tile = W * px + gap
    cos = cosine_similarity_matrix(cells)
    for (ti, tj), (r, c) in (((2, 3), (4, 1)), ((0, 0), (0, 0)), ((5, 1), (2, 5))):
        browser.hover(canvas, tj * tile + (c + 0.5) * px, ti * tile + (r + 0.5) * px)
        text = browser.text("patches-readout")
        found = PATCH.search(text)
        assert found and [int(x) for x in found.groups()[:4]] == [ti + 1, tj + 1, r + 1, c + 1]
        assert float(found[5]) == pytest.approx(float(cos[ti * W + tj, r * W + c]), abs=1.1e-3)
    browser.click()  # picks the patch under the pointer
    assert selected(browser) == 5 * W + 1
    browser.pick("method", "tile")
    assert "nearest row of the table position 0 (patch row 1, column 1)" in browser.text(
        "ext-readout"
    )
    print(browser.screenshot("analyze-grid", tmp_path))


def test_demo_report(browser, demo, tmp_path):
    from posemb.runs import load_run

    page = demo / "report.html"
    assert browser.check(page) >= 4  # the table's two plots and the sweep's
    model, _ = load_run(demo / "runs" / "learned")
    cos = cosine_similarity_matrix(model.position_table().detach())
    for i, j in ((0, 0), (5, 17), (31, 2)):
        assert_reads_the_cosine(browser, cos, i, j)
    texts = set()
    for method in ("tile", "repeat-last"):
        browser.pick("method", method)
        texts.add(browser.text("ext-readout"))
    assert len(texts) == 2
    print(browser.screenshot("demo", tmp_path))


def test_the_checks_find_what_they_look_for(browser, tmp_path):
    """A page that fetches, logs an error and holds a broken image fails each check."""
    page = tmp_path / "bad.html"
    page.write_text(
        "<!doctype html><html><body><img alt='away' src='http://127.0.0.1:9/x.png'>"
        "<img alt='broken' src='data:image/png;base64,AAAA'>"
        "<script>console.error('on purpose')</script></body></html>"
    )
    browser.open(page)
    found = browser.problems(page)
    assert any("on purpose" in e for e in found["console errors"])
    assert "http://127.0.0.1:9/x.png" in found["requests"]
    assert set(found["broken images"]) == {"away", "broken"}
