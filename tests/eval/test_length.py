"""Length evaluation: per-position losses, the sliding window, extension in eval."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from posemb import ModelConfig, PositionOutOfRangeError, Transformer
from posemb.eval import length
from posemb.eval.length import adapt_model, eval_nonoverlap, eval_sliding, sliding_targets


def uniform_model(max_positions: int = 16) -> Transformer:
    """Zero token embeddings (tied to the output) -> all logits 0 -> loss ln V everywhere."""
    model = Transformer(ModelConfig.preset("micro", max_positions=max_positions)).eval()
    with torch.no_grad():
        model.wte.weight.zero_()
    return model


TOKENS = np.random.default_rng(0).integers(0, 256, size=4000).astype(np.uint16)


def test_uniform_model_has_loss_ln_v_at_every_position():
    res = eval_nonoverlap(uniform_model(), TOKENS, 16, max_windows=5)
    assert res.loss == pytest.approx(math.log(256), abs=1e-6)
    assert res.per_position == pytest.approx([math.log(256)] * 15, abs=1e-6)
    assert res.tokens == 5 * 15
    assert res.loss_se == pytest.approx(0.0, abs=1e-9) and len(res.units) == 5


def test_per_position_averages_over_windows(monkeypatch):
    """A stand-in loss equal to the target's position (+ the window index) has a known mean."""
    calls = {"n": 0}

    def fake_losses(model, ids):
        b, t = ids.shape
        base = torch.arange(1, t, dtype=torch.float64).expand(b, t - 1)
        offs = torch.arange(calls["n"], calls["n"] + b, dtype=torch.float64)[:, None]
        calls["n"] += b
        return base + offs  # window w, target position p: loss p + w

    monkeypatch.setattr(length, "token_losses", fake_losses)
    res = eval_nonoverlap(uniform_model(), TOKENS, 8, max_windows=4, batch_size=3)
    # mean over windows 0..3 of (p + w) = p + 1.5
    assert res.per_position == pytest.approx([p + 1.5 for p in range(1, 8)])
    assert res.loss == pytest.approx(np.mean([p + 1.5 for p in range(1, 8)]))
    # one window per span: span w's mean is 4 + w; their standard error over 4 spans
    assert res.units == pytest.approx([4.0, 5.0, 6.0, 7.0])
    assert res.loss_se == pytest.approx(np.std([4, 5, 6, 7], ddof=1) / 2)


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 300), st.integers(2, 64), st.data())
def test_sliding_window_scores_every_token_exactly_once(seq_len, window, data):
    stride = data.draw(st.integers(1, window - 1))
    spans = sliding_targets(seq_len, window, stride)
    targets = [t for begin, end, first in spans for t in range(first, end)]
    assert targets == list(range(1, seq_len)), "every token but the first, once, in order"
    for begin, end, first in spans:
        assert end - begin <= window and begin < first <= end


def test_sliding_equals_nonoverlap_within_the_table():
    model = uniform_model(32)
    torch.manual_seed(0)
    with torch.no_grad():
        model.wte.weight.normal_(0, 0.02)
    a = eval_nonoverlap(model, TOKENS, 32, max_windows=4)
    b = eval_sliding(model, TOKENS, 32, max_windows=4)
    assert b.loss == pytest.approx(a.loss, abs=1e-6)
    assert b.tokens == a.tokens
    assert b.units == pytest.approx(a.units, abs=1e-6)


def test_sliding_goes_past_the_table_and_each_token_has_bounded_context(monkeypatch):
    model = uniform_model(16)
    seen_lengths = []
    real = length.token_losses

    def spy(m, ids):
        seen_lengths.append(ids.shape[1])
        return real(m, ids)

    monkeypatch.setattr(length, "token_losses", spy)
    res = eval_sliding(model, TOKENS, 64, stride=4, max_windows=2)
    assert res.tokens == 2 * 63
    assert max(seen_lengths) <= 16
    assert res.loss == pytest.approx(math.log(256), abs=1e-6)


def test_past_the_table_without_a_method_raises_and_extension_fixes_it():
    model = uniform_model(16)
    with pytest.raises(PositionOutOfRangeError, match="position 31"):
        eval_nonoverlap(model, TOKENS, 32, max_windows=1)
    extended = adapt_model(model, new_max=32, method="tile")
    assert extended.position_table().shape[0] == 32 and model.position_table().shape[0] == 16
    assert extended.config.max_positions == 32 and model.config.max_positions == 16
    assert eval_nonoverlap(extended, TOKENS, 32, max_windows=1).loss == pytest.approx(
        math.log(256), abs=1e-6
    )
    clamped = adapt_model(model, overflow="clamp")
    assert clamped.config.position_options["overflow"] == "clamp"
    assert model.config.position_options.get("overflow", "error") == "error", (
        "adapt_model must not change the original"
    )
    with pytest.raises(PositionOutOfRangeError):  # the original still refuses position 31
        eval_nonoverlap(model, TOKENS, 32, max_windows=1)
    assert eval_nonoverlap(clamped, TOKENS, 32, max_windows=1).tokens == 31


@pytest.mark.parametrize("fn", [eval_nonoverlap, eval_sliding])
def test_a_length_below_two_scores_nothing_and_is_an_error(fn):
    with pytest.raises(ValueError, match="needs at least 2 tokens"):
        fn(uniform_model(), np.arange(100) % 256, 1)
