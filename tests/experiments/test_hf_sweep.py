"""``posemb sweep --hf HF_DIR``: every extension method x fine-tuning budget of a Hugging Face
folder, scored at 1x, 2x, 4x its length on one text, beside the folder through a sliding
window (tiny random models with their own tokenizers: tests/hfkit.py)."""

from __future__ import annotations

import json

import pytest

from hfkit import tiny_hf_folder
from posemb.cli.main import main

pytest.importorskip("transformers")
N = 16


@pytest.mark.slow
@pytest.mark.parametrize("model_type", ["gpt2", "bert"])
def test_a_sweep_scores_every_method_and_budget_on_one_text(model_type, corpus, tmp_path, capsys):
    src = tiny_hf_folder(model_type, tmp_path / model_type, positions=N)
    out = tmp_path / "sweep"
    args = ["sweep", "--hf", str(src), "--methods", "tile,random", "--finetune-tokens",
            "0,1000", "--data", str(corpus), "--tokens", "200", "--batch-size", "2",
            "--out", str(out)]  # fmt: skip
    capsys.readouterr()
    assert main(args) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    records = json.loads((out / "results.json").read_text())
    configs = {(r["method"], r["recipe"], r["mode"]) for r in records}
    assert configs == {
        ("none", "as is", "sliding"),
        *{
            (m, t, "nonoverlap")
            for m in ("tile", "random")
            for t in ("extended", "ft 1,024 tokens")
        },
    }
    assert {r["eval_len"] for r in records} == {N, 2 * N, 4 * N}
    assert all(r["loss"] is not None and r["scheme"] == model_type for r in records)
    # paired: every model scored the very same targets
    assert len({r["provenance"]["data"]["fingerprint"] for r in records}) == 1
    assert len({r["tokens"] for r in records}) == 1
    # the fine-tunes are runs of their own, with their lineage
    for method in ("tile", "random"):
        run = out / "runs" / f"{method}-1000"
        lineage = json.loads((run / "posemb_run.json").read_text())["lineage"]
        assert lineage["method"] == method and lineage["positions"] == 4 * N
    table = (out / "hf.md").read_text()
    assert "| tile | ft 1,024 tokens | nonoverlap |" in table and table in printed
    # a rerun reuses the fine-tunes and gives the same numbers
    assert main(args) == 0
    assert "fine-tuned earlier" in capsys.readouterr().out
    again = json.loads((out / "results.json").read_text())
    assert [r["loss"] for r in again] == [r["loss"] for r in records]
    # the same folder for another model (or length, or rate) is refused: its fine-tunes
    # belong to this one
    other = tiny_hf_folder("gpt2" if model_type == "bert" else "bert", tmp_path / "o", positions=N)
    assert main([*args[:2], str(other), *args[3:]]) == 2
    assert "holds a sweep with other settings (source" in capsys.readouterr().err
    assert main([*args, "--lr", "0.01"]) == 2
    assert "holds a sweep with other settings (lr" in capsys.readouterr().err


def test_a_length_below_the_table_or_past_to_exits_2_before_writing(tmp_path, capsys):
    src = tiny_hf_folder("gpt2", tmp_path / "g", positions=N)
    out = tmp_path / "s"
    assert main(["sweep", "--hf", str(src), "--to", str(N // 2), "--out", str(out)]) == 2
    assert f"--to {N // 2} is below the {N} positions" in capsys.readouterr().err
    args = ["sweep", "--hf", str(src), "--to", str(2 * N), "--eval-lens", str(4 * N)]
    assert main([*args, "--out", str(out)]) == 2
    assert f"reach past --to {2 * N}" in capsys.readouterr().err
    assert main(["sweep", "--hf", str(src), "--data", "synthetic:copy", "--out", str(out)]) == 2
    assert "reads text in its own tokens" in capsys.readouterr().err
    assert not out.exists()


def test_hf_options_without_hf_and_schemes_with_it_exit_2(tmp_path, capsys):
    assert main(["sweep", "--finetune-tokens", "0,100", "--out", str(tmp_path / "x")]) == 2
    assert "add --hf" in capsys.readouterr().err
    assert (
        main(["sweep", "--hf", str(tmp_path), "--schemes", "rope", "--out", str(tmp_path / "y")])
        == 2
    )
    assert "with --hf drop it" in capsys.readouterr().err
