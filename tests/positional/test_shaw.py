"""Shaw et al. 2018 relative keys: naive float64 reference, clipping, FlexAttention parity."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import flex_attention

from posemb.positional.shaw import ShawRelativePosition, relative_index


def shaw_reference(q, k, table, q_pos, k_pos, max_distance):
    """Loop over the paper's formula in float64.

    e_ij = q_i . (k_j + a^K_ij) / sqrt(dh), a^K_ij = w[clip(j - i, -k, k) + k];
    the scheme's bias is e_ij minus the model's own q_i . k_j / sqrt(dh).
    """
    q, k, table = q.double(), k.double(), table.double()
    b, h, t, dh = q.shape
    s = k.shape[2]
    out = torch.zeros(b, h, t, s, dtype=torch.float64)
    for bi in range(b):
        for hi in range(h):
            for i in range(t):
                for j in range(s):
                    rel = int(k_pos[bi, j]) - int(q_pos[bi, i])
                    a = table[min(max(rel, -max_distance), max_distance) + max_distance]
                    e = q[bi, hi, i] @ (k[bi, hi, j] + a) / math.sqrt(dh)
                    out[bi, hi, i, j] = e - q[bi, hi, i] @ k[bi, hi, j] / math.sqrt(dh)
    return out


def test_matches_naive_reference_with_clipping():
    torch.manual_seed(0)
    b, h, t, s, dh, k_max = 2, 3, 5, 12, 8, 3
    shaw = ShawRelativePosition(dh, max_distance=k_max)
    with torch.no_grad():
        shaw.weight.normal_()
    q, k = torch.randn(b, h, t, dh), torch.randn(b, h, s, dh)
    q_pos = torch.tensor([[7, 8, 9, 10, 11], [0, 2, 4, 6, 8]])  # distances up to 11: clipped
    k_pos = torch.arange(s).expand(b, s)
    got = shaw.attention_bias(q, q_pos, k_pos)
    assert got.shape == (b, h, t, s) and got.dtype == q.dtype
    want = shaw_reference(q, k, shaw.weight.detach(), q_pos, k_pos, k_max)
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)


def test_relative_index_layout():
    """k = 2, query at 3, keys 0..6: j - i = -3..3 -> clip -2..2 -> index 0 0 1 2 3 4 4."""
    idx = relative_index(torch.tensor([[3]]), torch.arange(7)[None], 2)
    assert idx.tolist() == [[[0, 0, 1, 2, 3, 4, 4]]]


def test_distances_beyond_k_share_the_edge_rows():
    torch.manual_seed(0)
    shaw = ShawRelativePosition(4, max_distance=2)
    q = torch.randn(1, 2, 1, 4)
    bias = shaw.attention_bias(q, torch.tensor([[50]]), torch.tensor([[0, 40, 47, 48, 52, 53, 90]]))
    assert torch.equal(bias[..., 0], bias[..., 1]) and torch.equal(bias[..., 0], bias[..., 2])
    assert torch.equal(bias[..., 3], bias[..., 2])  # j - i = -2 is the edge itself
    assert torch.equal(bias[..., 4], bias[..., 5]) and torch.equal(bias[..., 5], bias[..., 6])
    assert not torch.equal(bias[..., 0], bias[..., 6])


def test_trainable_per_layer_and_gradients():
    shaw = ShawRelativePosition(8, max_distance=4)
    assert shaw.per_layer and shaw.weight.shape == (9, 8)
    q = torch.randn(2, 2, 3, 8, requires_grad=True)
    shaw.attention_bias(q, torch.arange(3), torch.arange(3)).square().sum().backward()
    assert shaw.weight.grad.abs().sum() > 0 and q.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="head_dim=8"):
        shaw.attention_bias(torch.zeros(1, 2, 3, 4), torch.arange(3), torch.arange(3))


@pytest.mark.parametrize("shared_positions", [False, True])
def test_score_mod_equals_attention_bias(shared_positions):
    torch.manual_seed(0)
    b, h, t, s, dh = 2, 4, 6, 10, 8
    shaw = ShawRelativePosition(dh, max_distance=3)
    with torch.no_grad():
        shaw.weight.normal_()
    q, k, v = torch.randn(b, h, t, dh), torch.randn(b, h, s, dh), torch.randn(b, h, s, dh)
    if shared_positions:
        q_pos, k_pos = torch.arange(4, 10)[None], torch.arange(s)[None]
    else:
        q_pos = torch.stack((torch.arange(4, 10), torch.arange(0, 12, 2)))
        k_pos = torch.stack((torch.arange(s), torch.arange(s) * 2))
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=shaw.attention_bias(q, q_pos, k_pos))
    got = flex_attention(q, k, v, score_mod=shaw.score_mod(q, q_pos, k_pos))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(F.scaled_dot_product_attention(q, k, v), want, atol=1e-3)
