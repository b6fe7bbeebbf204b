"""Compiled FlexAttention (Inductor, static shapes) with each bias scheme's score_mod
agrees with SDPA + the scheme's additive bias on CPU, queries after a cache included."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from posemb.positional.alibi import ALiBi
from posemb.positional.shaw import ShawRelativePosition
from posemb.positional.t5_bias import T5RelativeBias

flex_attention = pytest.importorskip("torch.nn.attention.flex_attention").flex_attention


@pytest.mark.slow
@pytest.mark.parametrize(
    "make",
    [
        lambda: ALiBi(4),
        lambda: T5RelativeBias(4, num_buckets=8, max_distance=16),
        lambda: ShawRelativePosition(8, max_distance=3),
    ],
    ids=["alibi", "t5", "shaw"],
)
def test_score_mod_compiles_with_flex_attention(make):
    torch.manual_seed(0)
    scheme = make()
    with torch.no_grad():
        for p in scheme.parameters():
            p.normal_()
    q, k, v = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 24, 8), torch.randn(2, 4, 24, 8)
    k_pos = torch.arange(24).expand(2, 24)
    q_pos = k_pos[:, 16:]  # the last 8 positions: queries after a cache
    torch._dynamo.reset()
    compiled = torch.compile(flex_attention, fullgraph=True, dynamic=False)
    with torch.no_grad():
        bias = scheme.attention_bias(q, q_pos, k_pos)
        want = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        got = compiled(q, k, v, score_mod=scheme.score_mod(q, q_pos, k_pos))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
