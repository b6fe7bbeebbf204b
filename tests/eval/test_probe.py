"""The order probe shows the seed's example per layer: in a bidirectional encoder without
positions the two texts are identical (pooled and per token, up to the reordering); a
learned table makes them differ; a causal model differs even without positions."""

from __future__ import annotations

import pytest
import torch

from posemb import ModelConfig, Transformer
from posemb.cli.main import main
from posemb.data import build_tokenizer
from posemb.eval.probe import probe_order, token_matched_diff

A, B = "The cat chased the dog", "The dog chased the cat"
EQUAL = 1e-6  # the bound for "identical" (float64 gives about 1e-15)
# An untrained micro encoder with a learned table (init std 0.02): at the embeddings each
# token's row differs by its two positions' rows; measured 0.06 there and above 0.06 per
# token at every layer, pooled 4e-4 after block 1.
MARGIN = 0.01


def probe(**kw):
    torch.manual_seed(0)
    model = Transformer(ModelConfig.preset("micro", **kw))
    return probe_order(model, build_tokenizer("byte"), A, B)


def test_encoder_without_positions_is_identical_pooled_and_per_token_at_every_layer():
    r = probe(causal=False, position="learned")
    wo = r.without_positions
    assert len(wo.cosine) == len(wo.pooled_diff) == len(wo.token_diff) == 2 + 1
    assert max(wo.pooled_diff) < EQUAL and max(wo.token_diff) < EQUAL
    assert all(abs(c - 1) < EQUAL for c in wo.cosine)
    assert wo.identical and "identical at every layer, per token too" in r.reading()


def test_encoder_with_a_learned_table_differs_by_more_than_the_margin():
    w = probe(causal=False, position="learned").with_positions
    assert min(w.token_diff) > MARGIN, "every layer, per token"
    assert min(w.pooled_diff[1:]) > 1e-4, "pooled, after the first block"
    assert w.pooled_diff[0] < EQUAL, "pooled embeddings: the same rows of P, summed"
    assert not w.identical
    # a difference is read against the size of what differs: the largest hidden value
    assert w.scale >= max(w.token_diff) / 2 > 0
    share = f"{w.max_diff / w.scale:.0%} of the largest hidden value ({w.scale:.2g})"
    assert w.size() == f"{w.max_diff:.3g}, {share}"


def test_a_model_built_without_positions_is_identical_too():
    r = probe(causal=False, position="nope")
    assert r.with_positions.identical and r.without_positions.identical


def test_causal_without_positions_still_differs():
    r = probe(causal=True, position="nope")
    assert r.with_positions == r.without_positions
    assert min(r.without_positions.token_diff[1:]) > 1e-3
    assert not r.without_positions.identical
    reading = r.reading()
    assert "causal mask implies order" in reading and "only the tokens before it" in reading


def test_token_matched_diff_is_zero_for_a_reordering_and_sees_what_pooling_hides():
    ids_a, ids_b = [1, 2, 2, 3], [2, 3, 1, 2]
    ha = torch.tensor([[1.0, 0.0], [2.0, 5.0], [2.0, 5.0], [0.0, 3.0]], dtype=torch.float64)
    hb = ha[[1, 3, 0, 2]]  # B's rows: the same token rows, reordered
    assert token_matched_diff(ha, ids_a, hb, ids_b) == 0.0
    # token 2's two rows trade 0.5 between them: the mean is unchanged, each token is not
    hc = hb.clone()
    hc[0, 0] += 0.5
    hc[3, 0] -= 0.5
    assert torch.equal(hc.mean(0), hb.mean(0))
    assert token_matched_diff(ha, ids_a, hc, ids_b) == pytest.approx(0.5)
    # a token is only matched with the same token: token 1 moves to (1, 10) in B; the
    # nearest row of any token would be 5 away (token 2's), the nearest token 1 is 10 away
    hd = hb.clone()
    hd[2] = torch.tensor([1.0, 10.0])
    assert token_matched_diff(ha, ids_a, hd, ids_b) == pytest.approx(10.0)


def test_cli_probe_on_an_untrained_preset(capsys):
    assert main(["probe-order", "preset:micro", A, B, "--set", "model.causal=false"]) == 0
    out = capsys.readouterr().out
    assert "positions removed" in out and "max diff" in out
    final = [line for line in out.splitlines() if line.strip().startswith("final")][0].split()
    assert float(final[2]) > MARGIN, "with the learned table: the texts differ"
    assert float(final[3]) == pytest.approx(1.0) and float(final[4]) < EQUAL, "removed: identical"


def test_texts_that_are_not_reorderings_are_not_called_causal_order():
    torch.manual_seed(0)
    model = Transformer(ModelConfig.preset("micro", causal=False))
    r = probe_order(model, build_tokenizer("byte"), "a", "b")
    assert not r.same_tokens and r.without_positions.token_diff is None
    assert not r.without_positions.identical
    assert (
        "causal mask" not in r.reading() and "not the same tokens in another order" in r.reading()
    )
    assert probe(causal=False, position="nope").same_tokens
