"""A Hugging Face GPT-2 fine-tuned past its table end to end: ``import-hf`` → ``train --init
RUN --extend interpolate`` at twice its length → ``export-hf``, and transformers reads the
result with the same logits past the old end."""

from __future__ import annotations

import json

import pytest
import torch

import posemb
from posemb.cli.main import main

transformers = pytest.importorskip("transformers")


def test_import_fine_tune_at_a_longer_length_then_export(tmp_path, make_gpt2_dir, capsys):
    hf = make_gpt2_dir(tmp_path / "hf")  # GPT-2, 64 positions, written without transformers
    run, ft, out = tmp_path / "run", tmp_path / "run-128", tmp_path / "hf-128"
    assert main(["import-hf", str(hf), str(run)]) == 0
    data = tmp_path / "data.txt"
    data.write_text("def main():\n    return 42\n\nprint(main())\n" * 300)
    sets = [
        "model.max_positions=128",
        "train.max_steps=3",
        "train.batch_size=2",
        "train.warmup_steps=1",
        "train.eval_every=3",
        "train.eval_batches=1",
        "train.progress=false",
        "train.compile=false",
        "train.device=cpu",
    ]
    argv = ["train", "--init", str(run), "--extend", "interpolate", "--data", str(data)]
    assert main([*argv, "--set", *sets, "--out", str(ft)]) == 0
    config = json.loads((ft / "config.json").read_text())
    assert config["train"]["seq_len"] == 128  # trained at the new length
    assert config["lineage"]["source"] == str(run.resolve())
    assert config["lineage"]["source_step"] == 0  # an imported run starts at step 0
    assert (config["lineage"]["from_positions"], config["lineage"]["positions"]) == (64, 128)
    assert json.loads((ft / "trainer_state.json").read_text())["step"] == 3
    capsys.readouterr()
    assert main(["export-hf", str(ft), str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["n_positions"] == 128
    hf_model = transformers.GPT2LMHeadModel.from_pretrained(out).eval()
    model, _ = posemb.load(ft)
    ids = torch.randint(0, 256, (2, 120), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(hf_model(ids).logits, model(ids).logits, atol=1e-5, rtol=1e-5)
        before = posemb.load(run)[0](ids[:, :64]).logits
    assert not torch.allclose(model(ids[:, :64]).logits, before, atol=1e-3)  # it was trained
