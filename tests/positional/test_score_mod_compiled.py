"""Compiled FlexAttention (Inductor, static shapes) with each bias scheme's score_mod
agrees with SDPA + the scheme's additive bias on CPU, queries after a cache included.

Compiled CPU kernels depend on the machine's instruction set, and torch's are not always
right: torch 2.13's compiled CPU FlexAttention returns wrong values under AVX2
(``ATEN_CPU_CAPABILITY=avx2``) even for a score_mod that changes nothing. So torch is first
checked against itself (compiled vs eager FlexAttention with the identity score_mod); when
it disagrees with itself the test skips, saying so. What posemb owns is always checked:
eager FlexAttention with the scheme's score_mod equals SDPA with its bias, and, where torch
agrees with itself, the compiled kernel with the scheme's score_mod equals both.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from posemb.positional.alibi import ALiBi
from posemb.positional.shaw import ShawRelativePosition
from posemb.positional.t5_bias import T5RelativeBias

flex_attention = pytest.importorskip("torch.nn.attention.flex_attention").flex_attention

TOL = dict(atol=1e-5, rtol=1e-5)


def identity(score, b, h, q_idx, kv_idx):
    return score


def compiled_flex():
    torch._dynamo.reset()
    return torch.compile(flex_attention, fullgraph=True, dynamic=False)


def torch_disagrees_with_itself(q, k, v) -> str | None:
    """Why torch's compiled CPU FlexAttention cannot be trusted here, or None."""
    capability = torch.backends.cpu.get_cpu_capability()
    try:
        with torch.no_grad():
            got = compiled_flex()(q, k, v, score_mod=identity)
    except Exception as e:  # noqa: BLE001 - Inductor cannot compile for this CPU at all
        return f"torch.compile cannot build FlexAttention for this CPU ({capability}): {e!s:.120}"
    want = flex_attention(q, k, v, score_mod=identity)
    if not torch.allclose(got, want, **TOL):
        err = float((got - want).abs().max())
        return (
            f"torch {torch.__version__}'s compiled CPU FlexAttention disagrees with its own eager "
            f"result by {err:.3g} for the identity score_mod (CPU capability {capability}): "
            "a torch bug, not posemb's"
        )
    return None


@pytest.mark.slow
@pytest.mark.compiled
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
    with torch.no_grad():
        bias = scheme.attention_bias(q, q_pos, k_pos)
        want = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        score_mod = scheme.score_mod(q, q_pos, k_pos)
        # posemb's own claim, on every machine: the score_mod is the bias
        torch.testing.assert_close(flex_attention(q, k, v, score_mod=score_mod), want, **TOL)
    reason = torch_disagrees_with_itself(q, k, v)
    if reason is not None:
        pytest.skip(reason)
    with torch.no_grad():
        got = compiled_flex()(q, k, v, score_mod=score_mod)
    torch.testing.assert_close(got, want, **TOL)
