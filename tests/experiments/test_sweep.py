"""posemb sweep end to end on tiny models: records, the results table, resumption (a
finished model is skipped, a trained one only evaluated), and refused settings."""

from __future__ import annotations

import json

import pytest

from kit import tiny_quick_budget
from posemb.cli.main import main


@pytest.fixture(autouse=True)
def _tiny_budget(tmp_path, monkeypatch):
    """TINY trained 4 steps at L = 16 (one evaluation, at the end), 120 tokens scored."""
    tiny_quick_budget(
        monkeypatch,
        train_len=16,
        tokens=120,
        settings={
            "train.max_steps": 4,
            "train.eval_every": 4,
            "train.checkpoint_every": 4,
            "train.eval_batches": 1,
            "data.cache_dir": str(tmp_path / "cache"),
        },
    )


def test_sweep_resumes_and_skips_finished_models(tmp_path, corpus, capsys):
    out = tmp_path / "sweep"
    args = [
        "sweep",
        "--schemes",
        "learned,alibi",
        "--eval-lens",
        "16,32",
        "--data",
        str(corpus),
        "--out",
        str(out),
    ]
    assert main(args) == 0
    first = capsys.readouterr().out
    records = json.loads((out / "results.json").read_text())
    learned = [r for r in records if r["scheme"] == "learned"]
    assert {r["method"] for r in learned} >= {"interpolate", "tile", "none"}
    assert {r["mode"] for r in learned} == {"nonoverlap", "sliding"}
    assert "| scheme |" in (out / "results.md").read_text() and "learned" in first
    weights = out / "runs" / "learned" / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    (out / "runs" / "alibi" / "sweep_eval.json").unlink()  # as if interrupted after model 1
    assert main(args) == 0
    second = capsys.readouterr().out
    assert "learned: finished earlier, skipped" in second
    assert "alibi: trained earlier, evaluating" in second
    assert weights.stat().st_mtime_ns == stamp
    assert json.loads((out / "results.json").read_text()) == records
    other = [
        "sweep",
        "--schemes",
        "learned",
        "--eval-lens",
        "16,64",
        "--data",
        str(corpus),
        "--out",
        str(out),
    ]
    assert main(other) == 2


def test_sweep_whose_eval_lengths_skip_the_training_length(tmp_path, corpus, capsys):
    out = tmp_path / "sweep"
    args = [
        "sweep",
        "--schemes",
        "learned",
        "--eval-lens",
        "32,64",
        "--data",
        str(corpus),
        "--out",
        str(out),
    ]
    assert main(args) == 0
    assert "loss at 32 tokens:" in capsys.readouterr().out
    assert main(["sweep", "--eval-lens", "1,2", "--out", str(tmp_path / "s2")]) == 2
