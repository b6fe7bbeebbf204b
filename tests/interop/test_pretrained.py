"""Transformer.save_pretrained / Transformer.from_pretrained: posemb run folders in the
ecosystem's names, read back exactly and by posemb.load."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

import posemb
from posemb import ModelConfig, Transformer
from posemb.data import build_tokenizer
from posemb.runs import CheckpointError


def test_save_then_load_is_exact(tmp_path, perturb):
    cfg = ModelConfig.preset("tiny", position="rope", position_options={"base": 500.0})
    model = Transformer(cfg)
    perturb(model)
    model.save_pretrained(tmp_path / "m", tokenizer=build_tokenizer("byte"))
    assert "lm_head.weight" not in load_file(tmp_path / "m" / "model.safetensors")  # tied: once
    back = Transformer.from_pretrained(tmp_path / "m")
    assert back.config == cfg and not back.training
    a, b = model.state_dict(), back.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.randint(0, 256, (2, 16))
    with torch.no_grad():
        assert torch.equal(back(x).logits, model.eval()(x).logits)
    loaded, tok = posemb.load(tmp_path / "m")
    assert tok.kind == "byte" and loaded.config == cfg


def test_without_tokenizer_from_pretrained_reads_it_but_load_needs_one(tmp_path):
    Transformer(ModelConfig.preset("tiny")).save_pretrained(tmp_path / "m")
    assert Transformer.from_pretrained(tmp_path / "m").config == ModelConfig.preset("tiny")
    with pytest.raises(CheckpointError, match="no tokenizer.json"):
        posemb.load(tmp_path / "m")


def test_reads_a_run_and_refuses_to_overwrite_one(tmp_path, make_run, tree_hash):
    original = make_run(tmp_path / "run")
    (tmp_path / "run" / "trainer_state.json").write_text('{"step": 7}')
    model = Transformer.from_pretrained(tmp_path / "run")
    assert all(torch.equal(v, original.state_dict()[k]) for k, v in model.state_dict().items())
    before = tree_hash(tmp_path / "run")
    with pytest.raises(FileExistsError, match="is a training run"):
        model.save_pretrained(tmp_path / "run")
    assert tree_hash(tmp_path / "run") == before
