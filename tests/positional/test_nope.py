"""NoPE: a real scheme object that uses no hook."""

from __future__ import annotations

import pytest
import torch

from posemb.positional.nope import NoPositions


def test_uses_no_hook():
    scheme = NoPositions()
    assert scheme.name == "nope"
    assert not (
        scheme.adds_to_input or scheme.rotates_qk or scheme.biases_logits or scheme.per_layer
    )
    assert list(scheme.parameters()) == [] and list(scheme.buffers()) == []
    assert "none" in repr(scheme)


def test_hooks_refuse():
    scheme = NoPositions()
    q = torch.zeros(1, 1, 2, 4)
    with pytest.raises(TypeError, match="nope"):
        scheme.rotate_qk(q, q, torch.arange(2))
    with pytest.raises(TypeError, match="nope"):
        scheme.attention_bias(q, torch.arange(2), torch.arange(2))
    with pytest.raises(TypeError, match="nope"):
        scheme.embed_positions(torch.arange(2))
