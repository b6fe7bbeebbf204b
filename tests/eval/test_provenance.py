"""Provenance in config.json and results.json; the parameter count at the start of training."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import pytest
import torch

import posemb
from kit import TINY, as_sets
from posemb.cli.main import main
from posemb.provenance import count_parameters

# TINY with a table of 32 rows, trained 3 steps (one evaluation, at the end)
SETTINGS = {
    **TINY,
    "model.max_positions": 32,
    "train.max_steps": 3,
    "train.eval_every": 3,
    "train.checkpoint_every": 3,
    "train.eval_batches": 1,
}
TRAIN = ["train", "--preset", "tiny", "--set", *as_sets(SETTINGS)]


def corpus(path: Path, line: str) -> Path:
    path.write_text(line * 300)
    return path


@pytest.fixture()
def trained(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("POSEMB_CACHE", str(tmp_path / "cache"))
    data = corpus(tmp_path / "a.txt", "the cat chased the dog. ")
    run = tmp_path / "run"
    assert main([*TRAIN, "--data", str(data), "--out", str(run)]) == 0
    return run, data, capsys.readouterr().out


def versions_are_the_running_ones(p: dict) -> None:
    assert p["posemb"] == posemb.__version__
    assert p["torch"] == torch.__version__
    assert p["python"] == platform.python_version()


def test_config_json_records_how_the_run_was_made(trained):
    run, data, out = trained
    p = json.loads((run / "config.json").read_text())["provenance"]
    versions_are_the_running_ones(p)
    assert p["command"].startswith("posemb train --preset tiny") and str(run) in p["command"]
    assert p["data"]["source"] == str(data) and p["data"]["fingerprint"]
    model, _ = posemb.load(run)
    assert p["parameters"] == count_parameters(model) > 0
    assert f"model: {p['parameters']:,} parameters" in out, "printed when training starts"


def test_results_json_records_versions_command_text_and_model(trained, tmp_path):
    run, data, _ = trained
    out = tmp_path / "e"
    assert (
        main(["eval", str(run), "--lengths", "16,32", "--max-windows", "3", "--out", str(out)]) == 0
    )
    records = json.loads((out / "results.json").read_text())
    for r in records:
        p = r["provenance"]
        versions_are_the_running_ones(p)
        assert p["command"] == f"posemb eval {run} --lengths 16,32 --max-windows 3 --out {out}"
        d = p["data"]
        assert d["source"] == str(data) and d["split"] == "val" and d["tokenizer"] == "byte"
        assert d["spans"] == 3 and d["span_len"] == 32 and d["scored_tokens"] == r["tokens"]
        assert d["fingerprint"].startswith("sha256:") and d["files"] == [data.name]
        assert d["standard_error_over"] == "spans"
        m = p["model"]
        assert m["steps"] == 3 and m["tokens_seen"] == 3 * 4 * 32 and m["parameters"] > 0
    assert "posemb eval" in (out / "report.md").read_text()


def test_the_fingerprint_changes_when_the_scored_text_changes(trained, tmp_path):
    run, data, _ = trained

    def fingerprint(data_arg: list[str], tag: str, seed: str = "0") -> str:
        out = tmp_path / tag
        argv = ["eval", str(run), "--lengths", "16", "--max-windows", "2", "--seed", seed]
        assert main([*argv, *data_arg, "--out", str(out)]) == 0
        return json.loads((out / "results.json").read_text())[0]["provenance"]["data"][
            "fingerprint"
        ]

    same = fingerprint([], "a")
    assert fingerprint([], "b") == same, "the same text gives the same fingerprint"
    other = corpus(tmp_path / "b.txt", "the dog chased the cat! ")
    assert fingerprint(["--data", str(other)], "c") != same
    assert fingerprint([], "d", seed="1") != same, "other spans: another fingerprint"
    corpus(data, "a bird sang to the cow. ")  # the run's own data changed
    assert fingerprint([], "e") != same
