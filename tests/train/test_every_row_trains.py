"""Every row of a table trains: a table trained at ``seq_len = max_positions`` gets a gradient
in every row from a single training batch, for a causal LM and an encoder, on text and on a
synthetic task.

Before windows of ``seq_len + 1`` tokens, a causal LM's last position had no target (its
window ended there), so row ``max_positions - 1`` never moved from its initial values: a
stripe in the demo's heat map, and ``repeat-last`` extending the table with that untrained row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import posemb
from kit import fast_config
from posemb.train.stream import TrainData, make_tokenizer

N = 32  # rows of the table, and the training length


@pytest.mark.parametrize("causal", [True, False], ids=["causal", "encoder"])
@pytest.mark.parametrize("source", ["text", "synthetic:copy"])
def test_one_batch_reaches_every_row(corpus: Path, causal: bool, source: str):
    cfg = fast_config(
        model__max_positions=N,
        train__seq_len=N,
        model__causal=causal,
        data__source=str(corpus) if source == "text" else source,
    )
    data = TrainData(cfg, make_tokenizer(cfg))
    batch = data.batch(8, np.random.default_rng(0))
    assert batch.input_ids.shape == batch.targets.shape == (8, N)
    if causal and source == "text":  # each position's target is the token after it
        assert torch.equal(batch.input_ids[:, 1:], batch.targets[:, :-1])
    if causal:  # the last position predicts the token after it (an encoder: where masked)
        assert (batch.targets[:, -1] != -100).all(), "the last position has a target"

    torch.manual_seed(0)
    model = posemb.Transformer(cfg.model)
    loss = model(batch.input_ids, positions=batch.positions, targets=batch.targets).loss
    loss.backward()
    grad = model.position_table().grad  # [N, d]
    silent = (grad.abs().sum(dim=1) == 0).nonzero().flatten().tolist()
    assert not silent, f"rows without a gradient: {silent}"


def test_targets_and_labels_score_the_same_predictions():
    """``targets`` (aligned with the positions, as the trainer passes them) and ``labels``
    (shifted inside, as Hugging Face does) are two spellings of one loss: a causal LM's
    logits on a window's first ``t`` tokens are those of the whole window's first ``t``
    positions, so both score the same ``t`` predictions."""
    torch.manual_seed(0)
    model = posemb.Transformer(posemb.ModelConfig.preset("micro")).eval()
    w = torch.randint(0, 256, (3, 17))  # a window of t + 1 = 17 tokens
    by_targets = model(w[:, :-1], targets=w[:, 1:]).loss  # 16 positions, 16 targets
    by_labels = model(w, labels=w).loss  # 17 positions, the first 16 predict
    torch.testing.assert_close(by_targets, by_labels, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="not both"):
        model(w[:, :-1], labels=w[:, :-1], targets=w[:, 1:])
    with pytest.raises(ValueError, match="targets must have input_ids' shape"):
        model(w[:, :-1], targets=w)
