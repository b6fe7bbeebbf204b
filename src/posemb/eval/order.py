"""Who chased whom, as a task a model must solve: which of two capital letters comes first?

A model trained on ``synthetic:order`` (``"kqXbfzYme?_"``: the answer ``X`` is hidden
behind ``_``; :mod:`posemb.experiments.order` trains a learned-table encoder and a NoPE
one) is asked every question twice, in both orders
(:func:`~posemb.data.synthetic.swap_marked` trades the two capitals' places): the two
questions are the same bag of tokens with opposite answers. An encoder without
positions sees the bag, so it gives both questions the same answer and gets at most half
of them right; a learned table lets it read the order.

Notation: ``b`` examples, ``t`` tokens, ``V`` vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data.synthetic import SyntheticTask, predictions, swap_marked
from ..model import Transformer
from .stats import mean_se
from .text import DEFAULT_SEED

PAIRS = 500  # questions asked in both orders: 1,000 questions per model


@dataclass
class OrderScore:
    """How a model answers ``pairs`` questions, each asked in both orders.

    Attributes:
        right: questions answered right (of ``2 * pairs``).
        same_answer: pairs given the same answer in both orders (at most one of them right).
        pair_scores: per pair, the fraction right (0, 0.5 or 1): the units of the error.
    """

    pairs: int
    right: int
    same_answer: int
    pair_scores: list[float]

    @property
    def questions(self) -> int:
        return 2 * self.pairs

    @property
    def accuracy(self) -> float:
        return self.right / self.questions

    @property
    def accuracy_se(self) -> float | None:
        """Standard error of the accuracy over pairs (the two orders of a pair move together)."""
        return mean_se(self.pair_scores)[1]

    def line(self) -> str:
        """``"99.6% right (996 of 1,000 questions); same answer to both orders of 2 of 500"``"""
        return (
            f"{100 * self.accuracy:.1f}% right ({self.right:,} of {self.questions:,} questions); "
            f"the same answer to both orders in {self.same_answer:,} of {self.pairs:,} pairs"
        )


@torch.no_grad()
def score_order(
    model: Transformer,
    seq_len: int,
    pairs: int = PAIRS,
    seed: int = DEFAULT_SEED,
    batch_size: int = 100,
) -> OrderScore:
    """Ask ``model`` ``pairs`` seeded questions of ``synthetic:order``, each in both orders.

    Args:
        model: a causal model or an encoder (its questions hide the answer).
        seq_len: tokens per question (the length it was trained at).
        pairs: questions drawn with ``seed``; each is also asked with the capitals swapped.
        batch_size: questions per forward pass.
    """
    model.eval()
    device, causal = next(model.parameters()).device, model.config.causal
    task, rng = SyntheticTask("order"), np.random.default_rng([seed, seq_len])
    right, same, per_pair = 0, 0, []
    for i in range(0, pairs, batch_size):
        x, y = task.sample(min(batch_size, pairs - i), seq_len, rng, causal=causal)
        x2, y2 = swap_marked(x, y, causal=causal)
        guess = []
        for ids in (x, x2):
            logits = model(torch.from_numpy(ids).to(device)).logits  # [b, t, V]
            guess.append(predictions(logits, causal)[:, -1])  # [b]: the answer is the last token
        ok = np.stack([guess[0] == y[:, -1], guess[1] == y2[:, -1]], axis=1)  # [b, 2]
        right += int(ok.sum())
        same += int((guess[0] == guess[1]).sum())
        per_pair += ok.mean(axis=1).tolist()
    return OrderScore(pairs, right, same, per_pair)
