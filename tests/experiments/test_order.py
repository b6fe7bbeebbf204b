"""Who chased whom, as a task: an encoder with a learned table learns which of two capitals
comes first; without positions it answers both orders of every question alike."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from posemb import ModelConfig, Transformer
from posemb.data import SyntheticTask
from posemb.eval.length import eval_task
from posemb.eval.order import score_order
from posemb.eval.probe import probe_order
from posemb.experiments.order import ORDER_SETTINGS, order_config, train_order_models
from posemb.runs import load_run
from posemb.train import train

SEQ = ORDER_SETTINGS["train.seq_len"]


def untrained_encoder(position: str = "learned") -> Transformer:
    torch.manual_seed(0)
    return Transformer(ModelConfig.preset("micro", causal=False, position=position)).eval()


def test_an_encoder_without_positions_gives_both_orders_the_same_answer():
    score = score_order(untrained_encoder("nope"), SEQ, pairs=150, batch_size=64)
    assert score.questions == 300 and len(score.pair_scores) == 150
    assert score.same_answer == score.pairs, "the same bag of tokens, the same answer"
    assert max(score.pair_scores) <= 0.5 and score.accuracy <= 0.5
    assert score.right == round(2 * sum(score.pair_scores))


def test_an_encoder_is_never_shown_the_answer(tmp_path):
    """An untrained encoder copies its input: shown the answers (as a causal model's input
    holds them) it gets most right; the trainer and eval_task hide them, so it gets ~none."""
    model, task = untrained_encoder(), SyntheticTask("order")
    x, y = task.sample(128, 16, np.random.default_rng(0))  # causal: the answer is visible
    shown = (model(torch.from_numpy(x)).logits[:, -1].argmax(-1).numpy() == y[:, -1]).mean()
    assert shown > 0.5, "the checks below could fail"
    assert eval_task(model, task, 16, n=128).accuracy < 0.2
    settings = {
        "train.max_steps": 1,
        "train.lr": 1e-6,
        "train.eval_every": 1,
        "train.checkpoint_every": 1,
        "train.eval_batches": 2,
        "train.progress": False,
    }
    assert train(order_config("learned", settings), tmp_path / "r").val_accuracy < 0.2


@pytest.mark.slow
def test_at_the_demos_budget_learned_answers_and_nope_stays_at_chance(tmp_path):
    runs = train_order_models(tmp_path, ("learned", "nope"), {"train.progress": False})
    learned, nope = (score_order(load_run(runs[s])[0], SEQ) for s in ("learned", "nope"))
    assert learned.accuracy >= 0.90, learned.line()
    assert nope.accuracy <= 0.60 and nope.same_answer == nope.pairs, nope.line()
    # the trained encoder, on the seed's texts: identical without positions, not with them
    model, tokenizer = load_run(runs["learned"])
    r = probe_order(model, tokenizer, "The cat chased the dog", "The dog chased the cat")
    assert r.without_positions.max_diff < 1e-6
    assert min(r.with_positions.token_diff) > 0.01
