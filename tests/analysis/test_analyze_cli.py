"""``posemb analyze`` end to end: untrained rows of real runs, outputs, and errors (exit 2)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from posemb.analysis.plots import plot_cosine_heatmap
from posemb.cli.main import main

PNGS = ("cosine.png", "pca_2d.png", "pca_3d.png", "spectrum.png", "norms.png", "nn_offsets.png")


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_causal_run_untrained_rows_are_exact(causal_run, tmp_path, capsys):
    """Trained at T = 24 on 64 rows: rows 24–63 never get a gradient; rows 0–23 all moved.

    A causal LM reads windows of T + 1 tokens, so the last position (23) of every training
    sequence predicts the token after it and its row trains too. The untrained rows' gradient
    is exactly 0 and Adam (no weight decay on the table) leaves them bit-identical.
    """
    out = tmp_path / "out"
    code, stdout, err = run_cli(["analyze", str(causal_run), "--out", str(out)], capsys)
    assert code == 0, err
    s = json.loads((out / "analysis.json").read_text())
    assert s["untrained"]["method"] == "exact"
    assert s["untrained"]["rows"] == list(range(24, 64))
    assert s["untrained"]["ranges"] == [[24, 63]]
    assert (s["n_rows"], s["offset"], s["dim"]) == (64, 0, 32)
    assert "24–63" in stdout and str(out / "report.html") in stdout
    assert "training never saw sequences longer than 24" in s["reading"][0]
    for name in PNGS:
        assert (out / name).read_bytes().startswith(b"\x89PNG"), name


def test_an_extended_run_counts_copied_rows_as_untrained(causal_run, tmp_path, capsys):
    """Grown from 64 to 128 rows by tiling: rows 64–127 are copies (of trained rows 0–23 and
    untrained 24–63), unlike a fresh initialisation, yet no training sequence reached past
    position 23: all of 24–127 are untrained, and the reading says the copies were made."""
    grown = tmp_path / "grown"
    code, _, err = run_cli(["extend", str(causal_run), str(grown), "--to", "128",
                            "--method", "tile"], capsys)  # fmt: skip
    assert code == 0, err
    out = tmp_path / "out"
    code, stdout, err = run_cli(["analyze", str(grown), "--out", str(out)], capsys)
    assert code == 0, err
    s = json.loads((out / "analysis.json").read_text())
    assert s["untrained"]["method"] == "exact" and s["untrained"]["ranges"] == [[24, 127]]
    assert "Positions 24–127 (104 of 128) were never trained" in s["reading"][0]
    assert "rows 64–127 of them are not their initial values" in s["reading"][0]


def test_encoder_run_untrained_rows_are_exactly_past_T(encoder_run, tmp_path, capsys):
    """A bidirectional encoder trains every row it sees: exactly rows 24–63 stay at init;
    reports embed their plots."""
    out = tmp_path / "out"
    code, _, err = run_cli(["analyze", str(encoder_run), "--out", str(out)], capsys)
    assert code == 0, err
    s = json.loads((out / "analysis.json").read_text())
    assert s["untrained"]["rows"] == list(range(24, 64))
    assert s["reading"][0].startswith("Positions 24–63 (40 of 64) never moved from initialisation")
    # report.html is self-contained: every image is a data URI, no file references
    page = (out / "report.html").read_text()
    srcs = re.findall(r"""src\s*=\s*['"]([^'"]*)""", page)
    assert len(srcs) == len(PNGS) and all(v.startswith("data:image/png;base64,") for v in srcs)
    assert "never moved from initialisation" in page
    md = (out / "report.md").read_text()
    assert all(f"]({name})" in md for name in PNGS)


def test_both_reports_hold_the_reading_the_summary_every_plot_and_the_note(tmp_path, capsys):
    """report.md and report.html have the same sections: the reading, the summary (every row
    the terminal shows, label and value), a heading and image per plot, and the closing note."""
    import html

    from posemb.analysis.analyze import CAPTIONS, summary_rows

    path = tmp_path / "weights.safetensors"
    save_file({"pos.weight": torch.randn(40, 8)}, str(path))
    code, _, err = run_cli(["analyze", str(path), "--out", str(tmp_path / "o")], capsys)
    assert code == 0, err
    s = json.loads((tmp_path / "o" / "analysis.json").read_text())
    md = (tmp_path / "o" / "report.md").read_text()
    page = html.unescape((tmp_path / "o" / "report.html").read_text())
    assert md.startswith("# Position table analysis: weights.safetensors\n")
    assert "<h1>Position table analysis: weights.safetensors</h1>" in page
    for text in (md, page):
        assert " ".join(s["reading"]) in text
        assert "Summary" in text and "All numbers are in analysis.json" in text
        assert all(label in text and value in text for label, value in summary_rows(s))
        assert all(caption in text for name, caption in CAPTIONS.items() if name != "grid")
    assert all(f"| {label} | {value} |" in md for label, value in summary_rows(s))
    assert all(f"<th>{label}</th><td>{value}</td>" in page for label, value in summary_rows(s))


def test_key_on_a_bare_safetensors_file(tmp_path, capsys):
    path = tmp_path / "weights.safetensors"
    save_file({"a.weight": torch.randn(40, 8), "b.weight": torch.randn(8, 8)}, str(path))
    code, stdout, err = run_cli(
        ["analyze", str(path), "--key", "a.weight", "--offset", "2", "--out", str(tmp_path / "o")],
        capsys,
    )
    assert code == 0, err
    s = json.loads((tmp_path / "o" / "analysis.json").read_text())
    assert (s["key"], s["n_rows"], s["offset"], s["untrained"]["method"]) == (
        "a.weight",
        38,
        2,
        "heuristic",
    )
    assert "heuristic" in stdout


def _one_line_error(code: int, err: str) -> str:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("posemb: error: ") and "Traceback" not in err
    return lines[0]


def test_error_no_table(tmp_path, capsys):
    path = tmp_path / "w.safetensors"
    save_file({"wte.weight": torch.randn(10, 4), "ln.bias": torch.zeros(4)}, str(path))
    line = _one_line_error(
        *run_cli(["analyze", str(path), "--out", str(tmp_path / "o")], capsys)[::2]
    )
    assert "no 2-D tensor with 'pos'" in line and "--key" in line and "wte.weight" in line


def test_error_ambiguous_key_lists_candidates(tmp_path, capsys):
    path = tmp_path / "w.safetensors"
    save_file({"enc.pos_emb": torch.randn(10, 4), "dec.pos_emb": torch.randn(10, 4)}, str(path))
    line = _one_line_error(
        *run_cli(["analyze", str(path), "--out", str(tmp_path / "o")], capsys)[::2]
    )
    assert "enc.pos_emb" in line and "dec.pos_emb" in line and "--key" in line


def test_error_rope_run(rope_run, tmp_path, capsys):
    line = _one_line_error(
        *run_cli(["analyze", str(rope_run), "--out", str(tmp_path / "o")], capsys)[::2]
    )
    assert f"analyze needs a learned table; {rope_run} uses rope" in line
    assert not (tmp_path / "o").exists()


def test_error_bin_only_hf_dir(tmp_path, capsys):
    d = tmp_path / "hf"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (d / "pytorch_model.bin").write_bytes(b"not read: posemb never unpickles")
    line = _one_line_error(*run_cli(["analyze", str(d), "--out", str(tmp_path / "o")], capsys)[::2])
    assert "pytorch_model.bin" in line and "never unpickles" in line and "model.safetensors" in line


def test_error_missing_source(tmp_path, capsys):
    line = _one_line_error(
        *run_cli(["analyze", str(tmp_path / "nope"), "--out", str(tmp_path / "o")], capsys)[::2]
    )
    assert "does not exist" in line


def test_cosine_heatmap_of_a_long_table(tmp_path):
    path = plot_cosine_heatmap(torch.randn(3000, 16), tmp_path / "c.png", title="long")
    assert isinstance(path, Path) and path.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("offset", ["-1", "x"])
def test_bad_offset_is_a_usage_error(tmp_path, capsys, offset):
    _one_line_error(
        *run_cli(
            ["analyze", str(tmp_path), "--offset", offset, "--out", str(tmp_path / "o")], capsys
        )[::2]
    )


def test_analysis_json_holds_no_nan_a_strict_parser_refuses():
    """A statistic that is undefined for a table (NaN) is written as null: JSON has no NaN."""
    from posemb.analysis.analyze import _no_nan

    summary = {"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": (2, float("-inf"))}}
    text = json.dumps(_no_nan(summary), allow_nan=False)
    assert json.loads(text) == {"a": None, "b": [1.0, None], "c": {"d": [2, None]}}
