"""T5 relative bias (Raffel et al. 2020): buckets by hand, HF parity, FlexAttention parity."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import flex_attention

from posemb.positional.t5_bias import T5RelativeBias, relative_position_bucket


def test_buckets_by_hand_bidirectional():
    """num_buckets=8, max_distance=16, bidirectional.

    Half the buckets per side: B' = 4, so past keys (rel <= 0) use 0..3 and future keys
    (rel > 0) use 4..7. exact = B'/2 = 2; for n = |rel| >= 2 the bucket is
    2 + floor(log(n/2) / log(16/2) * (4 - 2)), capped at 3:
      n=0 -> 0, n=1 -> 1
      n=2: log 1 = 0              -> 2
      n=5: log 2.5 / log 8 = 0.44 -> 2 + floor(0.88) = 2
      n=6: log 3 / log 8 = 0.53   -> 2 + floor(1.06) = 3
      n=8: log 4 / log 8 = 0.67   -> 2 + floor(1.33) = 3
      n=100: far past 16          -> capped at 3
    Future keys add 4.
    """
    rel = torch.tensor([0, -1, -2, -5, -6, -8, -100, 1, 2, 5, 6, 8, 100])
    want = [0, 1, 2, 2, 3, 3, 3, 5, 6, 6, 7, 7, 7]
    got = relative_position_bucket(rel, bidirectional=True, num_buckets=8, max_distance=16)
    assert got.dtype == torch.long
    assert got.tolist() == want


def test_buckets_by_hand_causal():
    """num_buckets=8, max_distance=16, causal (bidirectional=False).

    Future keys (rel > 0) all fall into bucket 0; n = -rel for past keys. exact = 8/2 = 4;
    for n >= 4 the bucket is 4 + floor(log(n/4) / log(16/4) * (8 - 4)), capped at 7:
      n=0..3 -> 0..3
      n=4:  log 1 = 0                -> 4
      n=5:  log 1.25 / log 4 = 0.161 -> 4 + floor(0.64) = 4
      n=6:  log 1.5 / log 4 = 0.292  -> 4 + floor(1.17) = 5
      n=9:  log 2.25 / log 4 = 0.585 -> 4 + floor(2.34) = 6
      n=12: log 3 / log 4 = 0.792    -> 4 + floor(3.17) = 7
      n=15: log 3.75 / log 4 = 0.953 -> 4 + floor(3.81) = 7
      n=1000                         -> capped at 7
    """
    rel = torch.tensor([0, -1, -2, -3, -4, -5, -6, -9, -12, -15, -1000, 1, 7, 1000])
    want = [0, 1, 2, 3, 4, 4, 5, 6, 7, 7, 7, 0, 0, 0]
    got = relative_position_bucket(rel, bidirectional=False, num_buckets=8, max_distance=16)
    assert got.tolist() == want


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("num_buckets, max_distance", [(32, 128), (8, 16), (16, 50), (33, 100)])
def test_matches_hugging_face_t5(bidirectional, num_buckets, max_distance):
    pytest.importorskip("transformers")
    from transformers.models.t5.modeling_t5 import T5Attention

    rel = torch.arange(-600, 601)
    want = T5Attention._relative_position_bucket(
        rel, bidirectional=bidirectional, num_buckets=num_buckets, max_distance=max_distance
    )
    got = relative_position_bucket(rel, bidirectional, num_buckets, max_distance)
    assert torch.equal(got, want)


@pytest.mark.parametrize("causal", [True, False])
def test_module_matches_hugging_face_t5_compute_bias(causal):
    """Same table, same orientation (key - query) and direction as HF T5's encoder/decoder."""
    pytest.importorskip("transformers")
    from transformers import T5Config
    from transformers.models.t5.modeling_t5 import T5Attention

    cfg = T5Config(
        d_model=16,
        d_kv=4,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=16,
        is_decoder=causal,
    )
    hf = T5Attention(cfg, has_relative_attention_bias=True, is_causal=causal)
    ours = T5RelativeBias(4, causal=causal, num_buckets=8, max_distance=16)
    with torch.no_grad():
        ours.weight.copy_(hf.relative_attention_bias.weight)
    want = hf.compute_bias(20, 20)  # [1, h, t, s]
    pos = torch.arange(20)
    got = ours.attention_bias(torch.zeros(1, 4, 20, 4), pos, pos)
    torch.testing.assert_close(got, want)


def test_bias_shape_values_and_trainable():
    t5 = T5RelativeBias(3, causal=False, num_buckets=8, max_distance=16)
    assert t5.weight.shape == (8, 3) and t5.weight.requires_grad
    assert 0.005 < t5.weight.std().item() < 0.05  # normal(0, 0.02) init
    q = torch.zeros(2, 3, 4, 8)
    q_pos, k_pos = torch.tensor([2, 3, 4, 5]), torch.arange(6)
    bias = t5.attention_bias(q, q_pos, k_pos)
    assert bias.shape == (1, 3, 4, 6)
    # query at 5, key at 0: rel = -5 -> bucket 2 (see the by-hand test)
    assert torch.equal(bias[0, :, 3, 0], t5.weight[2])
    # query at 2, key at 4: rel = +2 -> bucket 4 + 2 = 6
    assert torch.equal(bias[0, :, 0, 4], t5.weight[6])
    bias.sum().backward()
    assert t5.weight.grad is not None and t5.weight.grad.abs().sum() > 0
    assert "weight" in t5.state_dict()


def test_causal_puts_future_keys_in_bucket_zero():
    t5 = T5RelativeBias(2, num_buckets=8, max_distance=16)
    bias = t5.attention_bias(
        torch.zeros(1, 2, 1, 4), torch.tensor([[0]]), torch.tensor([[0, 3, 9]])
    )
    for j in range(3):
        assert torch.equal(bias[0, :, 0, j], t5.weight[0])


def test_bad_settings():
    with pytest.raises(ValueError, match="max_distance"):
        T5RelativeBias(2, num_buckets=32, max_distance=16)  # 16 exact causal buckets
    with pytest.raises(ValueError, match="num_buckets"):
        T5RelativeBias(2, causal=False, num_buckets=2)
    with pytest.raises(ValueError, match="2 heads"):
        T5RelativeBias(2).attention_bias(torch.zeros(1, 3, 2, 4), torch.arange(2), torch.arange(2))


@pytest.mark.parametrize("causal", [True, False])
def test_score_mod_equals_attention_bias(causal):
    torch.manual_seed(0)
    b, h, t, s, dh = 2, 4, 6, 40, 8
    t5 = T5RelativeBias(h, causal=causal, num_buckets=8, max_distance=16)
    with torch.no_grad():
        t5.weight.normal_(0.0, 1.0)  # visible biases
    q, k, v = torch.randn(b, h, t, dh), torch.randn(b, h, s, dh), torch.randn(b, h, s, dh)
    q_pos = torch.stack((torch.arange(34, 40), torch.arange(0, 12, 2)))  # [b, t]
    k_pos = torch.arange(s).expand(b, s)
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=t5.attention_bias(q, q_pos, k_pos))
    got = flex_attention(q, k, v, score_mod=t5.score_mod(q, q_pos, k_pos))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(F.scaled_dot_product_attention(q, k, v), want, atol=1e-3)
