"""The demo's report holds what its terminal shows; plots are written atomically; the
progress bar is drawn only on a terminal."""

from __future__ import annotations

import io
import json

import pytest
from matplotlib.figure import Figure

from posemb.cli.main import main
from posemb.eval import sweep
from posemb.eval.progress import Progress

TINY = {
    "model.n_layer": 1,
    "model.d_model": 32,
    "model.n_head": 2,
    "train.batch_size": 4,
    "train.max_steps": 4,
    "train.eval_every": 4,
    "train.checkpoint_every": 4,
    "train.eval_batches": 1,
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    data = tmp / "text.txt"
    data.write_text("the cat chased the dog. the dog chased the cat.\n" * 400)
    budget = {"preset": "tiny", "train_len": 32, "tokens": 300, "settings": TINY}
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sweep.BUDGETS, "quick", budget)
        mp.setenv("POSEMB_CACHE", str(tmp / "cache"))
        out = tmp / "out"
        buf = io.StringIO()
        mp.setattr("sys.stdout", buf)
        assert main(["demo", "--data", str(data), "--out", str(out)]) == 0
    return out, buf.getvalue()


def test_the_demo_report_holds_everything_the_terminal_shows(demo):
    out, shown = demo
    page = (out / "report.html").read_text()
    sample = shown.split("top-k 40) ==\n")[1].split("\n\n== 3.")[0]
    assert sample.startswith("def ")
    import html

    assert html.escape(sample.strip()) in page, "the generated sample"
    assert "Does word order matter?" in page and "with positions removed:" in page
    assert "raises PositionOutOfRangeError" in page
    assert html.escape("position 47 is past the end of the learned table") in page
    assert (
        "alt='The learned table: cosine similarity between positions' src='data:image/png;base64,"
        in page
    )
    assert "Provenance" in page and "Fingerprint of the scored tokens: sha256:" in page
    assert "class='scroll'" in page, "wide tables scroll"
    assert (out / "report.html").exists() and not (out / "past-the-table").exists()


def test_the_demo_scores_every_model_on_the_same_text_with_standard_errors(demo):
    out, shown = demo
    records = json.loads((out / "results.json").read_text())
    assert {r["scheme"] for r in records} == {"learned", "rope", "alibi"}
    assert len({r["provenance"]["data"]["fingerprint"] for r in records}) == 1
    assert all(r["loss_se"] is not None and r["tokens"] == records[0]["tokens"] for r in records)
    assert all("vs_best" in r for r in records)
    assert " ± " in shown and "model: " in shown and "parameters" in shown


@pytest.mark.parametrize("module", ["posemb.eval.plots", "posemb.analysis.plots"])
def test_a_plot_interrupted_mid_write_leaves_no_file(module, tmp_path, monkeypatch):
    import importlib

    plots = importlib.import_module(module)
    real = Figure.savefig

    def dies_half_way(self, fname, *args, **kwargs):
        fname.write(b"\x89PNG partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", dies_half_way)
    path = tmp_path / "plot.png"
    with pytest.raises(KeyboardInterrupt):
        if module.endswith("eval.plots"):
            records = [{"scheme": "a", "train_len": 4, "eval_len": 8, "loss": 1.0, "mode": "x"}]
            plots.plot_loss_vs_length(records, path)
        else:
            import torch

            plots.plot_cosine_heatmap(torch.randn(8, 4), path)
    assert list(tmp_path.iterdir()) == [], "no partial file, no temporary file"
    monkeypatch.setattr(Figure, "savefig", real)


def test_progress_is_silent_off_a_terminal_and_drawn_on_one(monkeypatch, capsys):
    with Progress(100, "eval") as bar:  # pytest's stderr is not a terminal
        bar.advance(50)
    assert capsys.readouterr().err == ""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    term = Terminal()
    monkeypatch.setattr("sys.stderr", term)
    with Progress(100, "eval") as bar:
        bar.stage("learned @64")
        bar.advance(100)
    assert "learned @64" in term.getvalue() and "100/100" in term.getvalue()
