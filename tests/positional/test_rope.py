"""RoPE (Su et al. 2021): relative scores, the paper's complex formula, Hugging Face Llama."""

from __future__ import annotations

import pytest
import torch

from posemb.positional.rope import RotaryPositionalEmbedding, apply_rope


def rope_reference(
    x: torch.Tensor, positions: torch.Tensor, base: float, interleaved: bool
) -> torch.Tensor:
    """The paper's formula in float64: pair k as a complex number times e^{i p theta_k}.

    theta_k = base^(-2k/d). Interleaved pairs (x[2k], x[2k+1]); half-split pairs
    (x[k], x[k + d/2]).
    """
    x = x.to(torch.float64)
    d = x.shape[-1]
    k = torch.arange(d // 2, dtype=torch.float64)
    theta = base ** (-2.0 * k / d)  # [d/2]
    angle = positions.to(torch.float64)[..., None] * theta  # [..., t, d/2]
    if positions.dim() == 2:
        angle = angle[:, None]  # [b, 1, t, d/2]
    rot = torch.polar(torch.ones_like(angle), angle)  # e^{i p theta_k}
    if interleaved:
        z = torch.complex(x[..., 0::2], x[..., 1::2]) * rot
        return torch.stack((z.real, z.imag), dim=-1).flatten(-2)
    z = torch.complex(x[..., : d // 2], x[..., d // 2 :]) * rot
    return torch.cat((z.real, z.imag), dim=-1)


@pytest.mark.parametrize("interleaved", [False, True])
def test_matches_complex_reference(interleaved):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 7, 16)
    positions = torch.tensor([[0, 1, 2, 3, 4, 5, 6], [5, 9, 100, 101, 102, 1000, 4095]])
    out = apply_rope(x, positions, base=10000.0, interleaved=interleaved)
    ref = rope_reference(x, positions, 10000.0, interleaved)
    assert out.dtype == x.dtype
    torch.testing.assert_close(out.double(), ref, atol=2e-4, rtol=1e-4)


def test_layouts_differ_and_are_permutations_of_each_other():
    torch.manual_seed(0)
    x = torch.randn(1, 2, 5, 8)
    pos = torch.arange(5)
    half = apply_rope(x, pos)
    inter = apply_rope(x, pos, interleaved=True)
    assert not torch.allclose(half, inter)
    # interleaved [a0 b0 a1 b1 ...] <-> half-split [a0 a1 ... | b0 b1 ...]
    perm = torch.cat((torch.arange(0, 8, 2), torch.arange(1, 8, 2)))
    torch.testing.assert_close(apply_rope(x[..., perm], pos, interleaved=False), inter[..., perm])


@pytest.mark.parametrize("interleaved", [False, True])
def test_scores_depend_only_on_relative_position(interleaved):
    """Shifting every position by a constant leaves q_i . k_j unchanged.

    Unit vectors (cosine scores): float32 angles lose ~1e-7 relative per radian, so the
    error stays far below 1e-5 even at shift 1000.
    """
    torch.manual_seed(0)
    q, k = torch.randn(2, 2, 6, 32), torch.randn(2, 2, 6, 32)
    q, k = q / q.norm(dim=-1, keepdim=True), k / k.norm(dim=-1, keepdim=True)
    pos = torch.tensor([0, 3, 4, 10, 11, 30])

    def scores(shift: int) -> torch.Tensor:
        rq = apply_rope(q, pos + shift, interleaved=interleaved)
        rk = apply_rope(k, pos + shift, interleaved=interleaved)
        return rq @ rk.transpose(-1, -2)

    base = scores(0)
    for shift in (1, 17, 250, 1000):
        torch.testing.assert_close(scores(shift), base, atol=1e-5, rtol=1e-5)
    # and rotation does change scores compared with no rotation at all
    assert not torch.allclose(base, q @ k.transpose(-1, -2), atol=1e-3)


def test_norms_preserved():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 9, 16)
    out = apply_rope(x, torch.arange(9) * 37)
    torch.testing.assert_close(out.norm(dim=-1), x.norm(dim=-1))


def test_position_zero_is_identity_and_dtype_kept():
    x = torch.randn(1, 1, 1, 8, dtype=torch.bfloat16)
    out = apply_rope(x, torch.zeros(1, dtype=torch.long))
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, x)


def test_interpolation_scale():
    torch.manual_seed(0)
    x = torch.randn(1, 2, 5, 16)
    p = torch.tensor([0, 3, 7, 100, 513])
    torch.testing.assert_close(
        apply_rope(x, 2 * p, scale=2.0), apply_rope(x, p), atol=1e-5, rtol=1e-5
    )
    # float positions give the same angles as ints
    torch.testing.assert_close(apply_rope(x, p.float() / 2), apply_rope(x, p, scale=2.0))


def test_matches_hugging_face_llama():
    pytest.importorskip("transformers")
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

    cfg = LlamaConfig(
        hidden_size=64,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        rope_theta=10000.0,
        num_hidden_layers=1,
        intermediate_size=32,
        vocab_size=16,
    )
    rotary = LlamaRotaryEmbedding(cfg)
    torch.manual_seed(0)
    q, k = torch.randn(2, 4, 6, 16), torch.randn(2, 4, 6, 16)
    positions = torch.tensor([[0, 1, 2, 3, 4, 5], [7, 8, 9, 50, 51, 200]])
    cos, sin = rotary(q, positions)
    hf_q, hf_k = apply_rotary_pos_emb(q, k, cos, sin)
    ours_q, ours_k = RotaryPositionalEmbedding(16).rotate_qk(q, k, positions)
    torch.testing.assert_close(ours_q, hf_q, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours_k, hf_k, atol=1e-5, rtol=1e-5)


def test_module_rejects_bad_widths():
    with pytest.raises(ValueError, match="even"):
        RotaryPositionalEmbedding(15)
    rope = RotaryPositionalEmbedding(8)
    q = torch.randn(1, 1, 2, 16)
    with pytest.raises(ValueError, match="head_dim=8"):
        rope.rotate_qk(q, q, torch.arange(2))
    with pytest.raises(ValueError, match="even"):
        apply_rope(torch.randn(1, 1, 2, 7), torch.arange(2))


def _compile_and_compare(backend: str) -> None:
    rope = RotaryPositionalEmbedding(8, interleaved=True, scale=2.0)
    torch._dynamo.reset()
    compiled = torch.compile(rope.rotate_qk, fullgraph=True, backend=backend)
    q, k = torch.randn(2, 2, 5, 8), torch.randn(2, 2, 5, 8)
    pos = torch.arange(3, 8).expand(2, 5)
    got_q, got_k = compiled(q, k, pos)
    want_q, want_k = rope.rotate_qk(q, k, pos)
    torch.testing.assert_close(got_q, want_q)
    torch.testing.assert_close(got_k, want_k)


def test_traces_as_one_graph():
    """fullgraph=True raises on any graph break (data-dependent control flow, .item())."""
    _compile_and_compare("eager")


@pytest.mark.slow
def test_compiles_fullgraph_inductor():
    """The real compiler (about 20 s on a small CPU machine)."""
    _compile_and_compare("inductor")
