"""Sinusoidal positions against the paper's formula (Vaswani et al. 2017, §3.5), in float64."""

from __future__ import annotations

import math

import pytest
import torch

from posemb.positional.sinusoidal import (
    SinusoidalPositionalEmbedding,
    sinusoidal_encoding,
    sinusoidal_table,
)


def reference(n: int, d: int, base: float = 10000.0) -> torch.Tensor:
    """PE[p, 2i] = sin(p / base^(2i/d)), PE[p, 2i+1] = cos(p / base^(2i/d))."""
    out = torch.zeros(n, d, dtype=torch.float64)
    for p in range(n):
        for i in range(0, d, 2):
            angle = p / base ** (i / d)
            out[p, i] = math.sin(angle)
            if i + 1 < d:
                out[p, i + 1] = math.cos(angle)
    return out


@pytest.mark.parametrize("d", [8, 16, 7])
def test_table_matches_the_formula(d):
    torch.testing.assert_close(
        sinusoidal_table(50, d).double(), reference(50, d), atol=2e-5, rtol=0
    )


def test_position_zero_is_sin0_cos0():
    assert sinusoidal_table(1, 6)[0].tolist() == [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]


def test_positions_past_any_training_length_and_float_positions():
    enc = sinusoidal_encoding(torch.tensor([5000, 2.5]), 16)
    ref = reference(5001, 16)[5000]
    torch.testing.assert_close(enc[0].double(), ref, atol=2e-4, rtol=0)
    assert enc.shape == (2, 16)


def test_module_scales_and_uses_the_input_hook():
    pe = SinusoidalPositionalEmbedding(16)
    assert pe.adds_to_input and not pe.rotates_qk and not pe.biases_logits
    torch.testing.assert_close(pe(torch.arange(4)[None]), 0.02 * sinusoidal_table(4, 16)[None])
    literal = SinusoidalPositionalEmbedding(16, scale=1.0)
    torch.testing.assert_close(literal(torch.arange(4)[None]), sinusoidal_table(4, 16)[None])
    with pytest.raises(ValueError, match="dim must be positive"):
        SinusoidalPositionalEmbedding(0)
