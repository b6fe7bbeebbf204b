"""Positions shared by every sequence of a batch (the model's default) give a bias scheme
one ``[1, h, t, s]`` bias, not ``b`` copies: evaluation at 8L builds the bias once per
layer instead of once per window (b x the memory and the time)."""

from __future__ import annotations

import pytest
import torch

from posemb import ModelConfig, Transformer


@pytest.mark.parametrize("scheme", ["alibi", "t5"])
def test_default_positions_build_one_bias_for_the_batch(scheme, monkeypatch):
    torch.manual_seed(0)
    model = Transformer(ModelConfig.preset("micro", position=scheme)).eval()
    shapes = []
    cls = type(model.pos)
    original = cls.attention_bias

    def recording(self, q, q_positions, k_positions):
        bias = original(self, q, q_positions, k_positions)
        shapes.append(tuple(bias.shape))
        return bias

    monkeypatch.setattr(cls, "attention_bias", recording)
    ids = torch.randint(0, 256, (3, 16))
    with torch.no_grad():
        shared = model(ids).logits
        assert shapes and all(s[0] == 1 for s in shapes), shapes  # one bias per layer
        shapes.clear()
        # the same positions written out per sequence: one bias per sequence, same logits
        own = model(ids, positions=torch.arange(16).repeat(3, 1)).logits
    assert shapes and all(s[0] == 3 for s in shapes), shapes
    torch.testing.assert_close(shared, own, rtol=0, atol=1e-6)
