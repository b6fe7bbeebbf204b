"""ALiBi (Press et al. 2021): slopes, hand-derived biases, BLOOM parity, FlexAttention parity."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import flex_attention

from posemb.positional.alibi import ALiBi, alibi_slopes


@pytest.mark.parametrize("n", [1, 2, 4, 8, 16, 32])
def test_power_of_two_slopes(n):
    """m_h = 2^(-8 h / n), h = 1..n: start 2^(-8/n), ratio 2^(-8/n)."""
    want = torch.tensor([2.0 ** (-8.0 * h / n) for h in range(1, n + 1)])
    torch.testing.assert_close(alibi_slopes(n), want, rtol=1e-7, atol=0)


def test_eight_heads_are_halvings():
    assert alibi_slopes(8).tolist() == [
        1 / 2,
        1 / 4,
        1 / 8,
        1 / 16,
        1 / 32,
        1 / 64,
        1 / 128,
        1 / 256,
    ]


@pytest.mark.parametrize(
    "n, exponents",
    [
        # 12 = 8 + 4: 2^-1 .. 2^-8, then every other slope of 16 heads (2^-0.5, 2^-1.5, ...)
        (12, [-1, -2, -3, -4, -5, -6, -7, -8, -0.5, -1.5, -2.5, -3.5]),
        # 6 = 4 + 2: 2^-2, 2^-4, 2^-6, 2^-8, then slopes 1 and 3 of 8 heads
        (6, [-2, -4, -6, -8, -1, -3]),
        # 5 = 4 + 1
        (5, [-2, -4, -6, -8, -1]),
    ],
)
def test_non_power_of_two_slopes(n, exponents):
    want = torch.tensor([2.0**e for e in exponents])
    torch.testing.assert_close(alibi_slopes(n), want, rtol=1e-7, atol=0)


def test_bad_head_count():
    with pytest.raises(ValueError, match="n_heads"):
        alibi_slopes(0)


@pytest.mark.parametrize("n", [1, 3, 5, 6, 8, 12, 16, 20, 24, 32, 40])
def test_matches_bloom(n):
    pytest.importorskip("transformers")
    from transformers.models.bloom.modeling_bloom import build_alibi_tensor

    # mask [1, 1] -> key positions [0, 1]; BLOOM's bias at key position 1 is the slope
    alibi = build_alibi_tensor(torch.ones(1, 2, dtype=torch.long), n, torch.float32)  # [h, 1, 2]
    torch.testing.assert_close(alibi_slopes(n), alibi[:, 0, 1], rtol=1e-6, atol=0)


def test_bias_by_hand_causal():
    """2 heads -> slopes 2^-4, 2^-8 = 1/16, 1/256; bias = -m (i - j)."""
    alibi = ALiBi(2)
    q = torch.zeros(1, 2, 3, 4)
    pos = torch.tensor([[0, 1, 2]])
    rel = torch.tensor([[0.0, -1, -2], [1, 0, -1], [2, 1, 0]])  # i - j
    want = torch.stack((-rel / 16, -rel / 256))[None]  # [1, 2, 3, 3]
    assert torch.equal(alibi.attention_bias(q, pos, pos), want)


def test_bias_by_hand_symmetric_and_cache_offset():
    """Encoder form -m |i - j|; one query at position 3 against keys 0..3 (a KV cache)."""
    alibi = ALiBi(1, causal=False)  # slope 2^-8
    q = torch.zeros(1, 1, 1, 4)
    bias = alibi.attention_bias(q, torch.tensor([[3]]), torch.tensor([[0, 1, 2, 3]]))
    assert bias.shape == (1, 1, 1, 4)
    assert torch.equal(bias, torch.tensor([[[[-3.0, -2.0, -1.0, 0.0]]]]) / 256)
    sym = ALiBi(1, causal=False).attention_bias(q, torch.tensor([1]), torch.tensor([0, 1, 2, 3]))
    assert torch.equal(sym, torch.tensor([[[[-1.0, 0.0, -1.0, -2.0]]]]) / 256)


def test_bias_dtype_shape_and_buffer():
    alibi = ALiBi(4)
    q = torch.zeros(2, 4, 5, 8, dtype=torch.bfloat16)
    own = torch.arange(5).repeat(2, 1)  # [2, 5]: positions of each sequence
    bias = alibi.attention_bias(q, own, own)
    assert bias.shape == (2, 4, 5, 5) and bias.dtype == torch.bfloat16
    shared = torch.arange(5).expand(2, 5)  # one row for the batch: one bias, broadcast
    assert alibi.attention_bias(q, shared, shared).shape == (1, 4, 5, 5)
    assert "slopes" not in alibi.state_dict()  # non-persistent: fixed, not a weight
    assert list(alibi.parameters()) == []
    with pytest.raises(ValueError, match="4 heads"):
        alibi.attention_bias(torch.zeros(1, 3, 5, 8), torch.arange(5), torch.arange(5))


@pytest.mark.parametrize("causal", [True, False])
def test_score_mod_equals_attention_bias(causal):
    torch.manual_seed(0)
    b, h, t, s, dh = 2, 6, 5, 9, 8
    alibi = ALiBi(h, causal=causal)
    q, k, v = torch.randn(b, h, t, dh), torch.randn(b, h, s, dh), torch.randn(b, h, s, dh)
    q_pos = torch.tensor([[4, 5, 6, 7, 8], [10, 11, 12, 13, 14]])  # queries after a cache
    k_pos = torch.tensor([[0, 1, 2, 3, 4, 5, 6, 7, 8], [6, 7, 8, 9, 10, 11, 12, 13, 14]])
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=alibi.attention_bias(q, q_pos, k_pos))
    got = flex_attention(q, k, v, score_mod=alibi.score_mod(q, q_pos, k_pos))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    # the bias matters: without it the output differs
    assert not torch.allclose(F.scaled_dot_product_attention(q, k, v), want, atol=1e-3)


def test_score_mod_broadcasts_shared_positions():
    torch.manual_seed(0)
    alibi = ALiBi(4)
    q, k, v = torch.randn(3, 4, 6, 8), torch.randn(3, 4, 6, 8), torch.randn(3, 4, 6, 8)
    pos = torch.arange(6)[None]  # [1, t]: one row shared by the batch
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=alibi.attention_bias(q, pos, pos))
    got = flex_attention(q, k, v, score_mod=alibi.score_mod(q, pos, pos))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
