"""The order probe shows the seed's example per layer."""

from __future__ import annotations

import torch

from posemb import ModelConfig, Transformer
from posemb.cli.main import main
from posemb.data import build_tokenizer
from posemb.eval.probe import probe_order

A, B = "The cat chased the dog", "The dog chased the cat"


def probe(**kw):
    torch.manual_seed(0)
    model = Transformer(ModelConfig.preset("micro", **kw))
    return probe_order(model, build_tokenizer("byte"), A, B)


def test_bidirectional_without_positions_is_identical_at_every_layer():
    r = probe(causal=False, position="learned")
    assert len(r.without_positions) == 2 + 1  # embeddings, block 1, final
    assert all(abs(s - 1) < 1e-6 for s in r.without_positions)
    assert min(r.with_positions[1:]) < 1 - 1e-4, "a learned table tells the orders apart"
    assert "identical without positions" in r.reading()


def test_causal_without_positions_still_differs():
    r = probe(causal=True, position="nope")
    assert r.with_positions == r.without_positions
    assert min(r.without_positions[1:]) < 1 - 1e-4
    assert "causal mask implies order" in r.reading()


def test_cli_probe_on_an_untrained_preset(capsys):
    assert main(["probe-order", "preset:micro", A, B, "--set", "model.causal=false"]) == 0
    out = capsys.readouterr().out
    assert "without positions" in out and "final" in out
    final = [line for line in out.splitlines() if line.strip().startswith("final")][0].split()
    assert float(final[2]) == 1.0


def test_texts_that_are_not_reorderings_are_not_called_causal_order():
    torch.manual_seed(0)
    model = Transformer(ModelConfig.preset("micro", causal=False))
    r = probe_order(model, build_tokenizer("byte"), "a", "b")
    assert not r.same_tokens
    assert (
        "causal mask" not in r.reading() and "not the same tokens in another order" in r.reading()
    )
    assert probe(causal=False, position="nope").same_tokens
