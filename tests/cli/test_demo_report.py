"""The demo tells its story in order, on the terminal and in its report, with the numbers
measured in the run; plots are written atomically; the progress bar is drawn only on a
terminal."""

from __future__ import annotations

import html
import io
import json
import re

import pytest
from matplotlib.figure import Figure

from kit import TINY, tiny_quick_budget
from posemb.cli.main import main
from posemb.eval import order as order_score
from posemb.eval.progress import Progress
from posemb.experiments import order as order_task

# Every model of the demo: 4 steps, one evaluation at the end, on one batch.
FOUR_STEPS = {
    "train.max_steps": 4,
    "train.eval_every": 4,
    "train.checkpoint_every": 4,
    "train.eval_batches": 1,
}
# The order encoders as small as TINY's model, for 4 steps; they keep their own batch size,
# heads and lengths (ORDER_SETTINGS).
ORDER_TINY = {
    **FOUR_STEPS,
    "model.n_layer": TINY["model.n_layer"],
    "model.d_model": TINY["model.d_model"],
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    data = tmp / "text.txt"
    data.write_text("the cat chased the dog. the dog chased the cat.\n" * 400)
    with pytest.MonkeyPatch.context() as mp:
        # the sweep's models (learned, rope, alibi): TINY at L = 32, 300 tokens scored
        tiny_quick_budget(mp, train_len=32, tokens=300, settings=FOUR_STEPS)
        for key, value in ORDER_TINY.items():
            mp.setitem(order_task.ORDER_SETTINGS, key, value)
        mp.setenv("POSEMB_CACHE", str(tmp / "cache"))
        out = tmp / "out"
        buf = io.StringIO()
        mp.setattr("sys.stdout", buf)
        assert main(["demo", "--data", str(data), "--out", str(out)]) == 0
    return out, buf.getvalue()


SECTIONS = [
    "1. A learned table of positions: x_i = E[token_i] + P[i]",
    "2. Training the table with the model",
    "byte-level model writes",
    "3. What the table learned",
    "4. Who chased whom",
    "5. Past the end of the table (32 positions)",
    "6. Every way past the end, and the relatives",
]


def test_the_demo_tells_the_story_in_order_on_the_terminal_and_in_the_report(demo):
    out, shown = demo
    page = html.unescape((out / "report.html").read_text())
    for text in (shown, page):
        where = [text.find(title) for title in SECTIONS]
        assert -1 not in where and where == sorted(where), where
    assert "== 7. Files ==" in shown and "time, total:" in shown
    assert "Time on this machine" in page


def test_the_demo_report_holds_everything_the_terminal_shows(demo):
    out, shown = demo
    raw = (out / "report.html").read_text()
    page = html.unescape(raw)
    sample = shown.split("not sense.\n")[1].split("\n\n== 3.")[0]
    assert sample.startswith("def ")
    assert html.escape(sample.strip()) in raw, "the generated sample"
    label = shown.split("== 2b. What a ")[1].split("\n")[0]
    assert label.endswith("-second byte-level model writes ==")
    assert "parameters, trained for 4 steps" in shown, "the sample says what made it"
    assert "raises PositionOutOfRangeError" in page
    assert "position 47 is past the end of the learned table" in page
    for caption in (
        "The learned table: cosine similarity between positions",
        "The learned table on its first two principal components",
    ):
        assert f"alt='{caption}' src='data:image/png;base64," in raw
    assert "Provenance" in page and "Fingerprint of the scored tokens: sha256:" in page
    assert "class='scroll'" in raw, "wide tables scroll"
    assert (out / "report.html").exists() and not (out / "past-the-table").exists()


def test_who_chased_whom_shows_measured_numbers_in_both(demo):
    out, shown = demo
    page = html.unescape((out / "report.html").read_text())
    section = shown.split("== 4. Who chased whom ==")[1].split("== 5.")[0]
    lines = [line for line in section.splitlines() if line.startswith("  ")]
    assert len(lines) == 5, section
    for line in lines:
        assert line in page, line
    learned_probe, removed, causal, learned_task, nope_task = lines
    assert re.search(r"learned table: +differ by up to \d", learned_probe)
    assert re.search(r"positions removed: +identical, largest difference \de-1\d", removed)
    assert re.search(r"causal model .*positions removed: differ by up to \d", causal)
    n = 2 * order_score.PAIRS
    for line in (learned_task, nope_task):
        assert re.search(rf"\d+\.\d% right \(\d+ of {n:,} questions\)", line), line
    pairs = f"{order_score.PAIRS} of {order_score.PAIRS} pairs"
    assert nope_task.endswith(f"the same answer to both orders in {pairs}")
    nope = float(nope_task.split("% right")[0].split()[-1])
    assert nope <= 50.0
    assert f"it got {nope:.1f}% of {n:,} questions right" in " ".join(section.split())
    assert "causal mask itself gives the order away" in page
    assert (out / "runs" / "order-learned" / "model.safetensors").exists()
    assert (out / "runs" / "order-nope" / "model.safetensors").exists()


def test_the_demo_scores_every_model_on_the_same_text_with_standard_errors(demo):
    out, shown = demo
    records = json.loads((out / "results.json").read_text())
    assert {r["scheme"] for r in records} == {"learned", "rope", "alibi"}
    assert len({r["provenance"]["data"]["fingerprint"] for r in records}) == 1
    assert all(r["loss_se"] is not None and r["tokens"] == records[0]["tokens"] for r in records)
    assert all("vs_best" in r for r in records)
    assert " ± " in shown and "model: " in shown and "parameters" in shown
    at_l = [line for line in shown.splitlines() if "held-out loss at 32 tokens:" in line]
    assert [line.split()[0] for line in at_l] == ["learned", "rope", "alibi"]
    for line, scheme in zip(at_l, ["learned", "rope", "alibi"]):
        r = next(r for r in records if r["scheme"] == scheme and r["eval_len"] == 32)
        assert f"{r['loss']:.3f} ± {r['loss_se']:.3f}" in line


def test_one_unit_with_its_scale_and_the_relatives_said_as_measured(demo):
    """Byte-level losses are nats per byte everywhere, with the uniform guess and bits per
    byte beside them; section 6 says of RoPE, ALiBi and the sliding window what their own
    paired changes show (rise or fall), and never that RoPE has no limit."""
    out, shown = demo
    page = html.unescape((out / "report.html").read_text())
    records = json.loads((out / "results.json").read_text())
    longest = max(r["eval_len"] for r in records)
    for text in (shown, page):
        assert "nats per token" not in text and "nats per byte" in text
        assert "ln 256 = 5.545 nats per byte" in text and "bits per byte" in text
        assert "no table to run out of" not in text
        flat = " ".join(text.split())
        for who, scheme, mode in (
            ("RoPE's loss", "rope", "nonoverlap"),
            ("ALiBi's loss", "alibi", "nonoverlap"),
            ("sliding window's loss", "learned", "sliding"),
        ):
            r = next(
                r
                for r in records
                if (r["scheme"], r["mode"], r["eval_len"]) == (scheme, mode, longest)
                and r["method"] in ("none", "interpolate")
            )
            c = r["change_from"]
            verb = "stays level" if c["tie"] else "rises" if c["diff"] > 0 else "falls"
            assert re.search(rf"{who} {verb}", flat, re.I), (who, verb)
    table = (out / "results.md").read_text()
    assert "| recipe |" not in table, "a column that never changes"
    assert "nonoverlap" not in table and "| windows |" in table


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
