"""The evaluation text: seeded spans from across the split, the same targets at every length."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from posemb import ModelConfig, Transformer
from posemb.data import DataError, FilesSource, build_tokenizer
from posemb.eval import length
from posemb.eval.length import adapt_model, eval_nonoverlap, eval_sliding
from posemb.eval.stats import mean_se
from posemb.eval.text import EvalText, document_bounds, draw_starts, scored_targets

LENGTHS = [16, 32, 64]


def model(max_positions: int = 16) -> Transformer:
    torch.manual_seed(0)
    return Transformer(ModelConfig.preset("micro", max_positions=max_positions)).eval()


@pytest.fixture
def loss_is_the_target_id(monkeypatch):
    """A stand-in model: the loss of each target is its token id (whatever its context)."""

    def fake(m, ids):
        return ids[:, 1:].double()

    monkeypatch.setattr(length, "token_losses", fake)


def test_windows_come_from_across_the_split_not_its_head(loss_is_the_target_id):
    """Halves that differ: the first half's targets cost 1, the second half's 3."""
    tokens = np.concatenate([np.full(20_000, 1), np.full(20_000, 3)]).astype(np.uint16)
    text = EvalText.draw(tokens, [64], n_spans=40, seed=0)
    res = eval_nonoverlap(model(64), text, 64)
    assert res.loss == pytest.approx(2.0, abs=0.11), "both halves are scored, about equally"
    assert text.starts.min() < len(tokens) // 8 and text.starts.max() > len(tokens) * 7 // 8
    assert np.all(np.diff(text.starts) >= 64), "spans are disjoint"


def test_the_same_seed_gives_the_same_windows_and_another_seed_others():
    tokens = np.random.default_rng(0).integers(0, 256, size=50_000).astype(np.uint16)
    a = EvalText.draw(tokens, LENGTHS, n_spans=20, seed=7)
    b = EvalText.draw(tokens, LENGTHS, n_spans=20, seed=7)
    c = EvalText.draw(tokens, LENGTHS, n_spans=20, seed=8)
    assert np.array_equal(a.starts, b.starts) and a.fingerprint() == b.fingerprint()
    assert not np.array_equal(a.starts, c.starts) and a.fingerprint() != c.fingerprint()


def test_every_length_and_method_scores_the_same_targets(loss_is_the_target_id):
    """The loss equals the mean id of the scored targets: equal means equal target sets."""
    tokens = np.random.default_rng(1).integers(0, 256, size=30_000).astype(np.uint16)
    text = EvalText.draw(tokens, LENGTHS, n_spans=12, seed=0)
    m = model(16)
    results = [eval_nonoverlap(adapt_model(m, L, "tile"), text, L) for L in LENGTHS]
    results += [eval_sliding(m, text, L, stride=5) for L in LENGTHS]
    spans = text.spans()  # [n, S]
    direct = spans[:, text.targets].astype(np.float64).mean(axis=1)  # each span's targets
    for res in results:
        assert res.units == pytest.approx(direct.tolist(), abs=1e-12)
        assert res.tokens == text.scored_tokens == 12 * int(text.targets.sum())
    # offsets 0, 16, 32, 48 start a window at L=16: never targets anywhere
    assert np.flatnonzero(~text.targets).tolist() == [0, 16, 32, 48]


def test_the_standard_error_matches_a_direct_computation(loss_is_the_target_id):
    tokens = np.arange(4 * 8, dtype=np.uint16)  # 4 spans of 8 tile the split: ids 0..31
    text = EvalText.draw(tokens, [4, 8], n_spans=4)
    res = eval_nonoverlap(model(8), text, 8)
    # span k holds ids 8k .. 8k+7; targets are offsets 1, 2, 3, 5, 6, 7 (4 starts a window at L=4)
    means = [np.mean([8 * k + j for j in (1, 2, 3, 5, 6, 7)]) for k in range(4)]
    assert res.units == pytest.approx(means)
    assert res.loss == pytest.approx(np.mean(means))
    assert res.loss_se == pytest.approx(np.std(means, ddof=1) / 2)  # 8 * sqrt(5/3) / 2
    assert res.loss_se == pytest.approx(8 * (5 / 3) ** 0.5 / 2)


def test_mean_se_by_hand():
    assert mean_se([1.0, 2.0, 3.0, 4.0]) == pytest.approx((2.5, (5 / 3) ** 0.5 / 2))
    assert mean_se([2.0]) == (2.0, None)


def test_scored_targets_for_lengths_that_do_not_divide():
    keep = scored_targets(10, [3, 10])
    # L=3 windows start at 0, 3, 6 and offset 9 is outside them: targets 1, 2, 4, 5, 7, 8
    assert np.flatnonzero(keep).tolist() == [1, 2, 4, 5, 7, 8]


def test_a_split_shorter_than_the_spans_asked_for_gives_what_fits_and_one_window_is_needed():
    starts = draw_starts(1000, 100, 50, seed=0)
    assert len(starts) == 10 and np.all(np.diff(starts) >= 100) and starts[-1] + 100 <= 1000
    with pytest.raises(DataError, match="fewer than one window of 100"):
        draw_starts(99, 100, 1, seed=0)


def test_files_behind_the_spans(tmp_path):
    for name, letter in [("a.txt", "a"), ("b.txt", "b"), ("c.txt", "c")]:
        (tmp_path / name).write_text(letter * 300)
    source = FilesSource("d", tmp_path, sorted(tmp_path.iterdir()), val_fraction=0.0)
    tok = build_tokenizer("byte")
    tokens = np.frombuffer("\n\n".join(["a" * 300, "b" * 300, "c" * 300]).encode(), np.uint8)
    names, bounds = document_bounds(source, tok, "train", len(tokens))
    assert names == ["a.txt", "b.txt", "c.txt"] and bounds.tolist() == [0, 302, 604]
    text = EvalText(tokens, np.array([10, 650]), 100, [100], names=names, bounds=bounds)
    assert text.files() == ["a.txt", "c.txt"]
    spans = text.spans()
    assert set(spans[0].tolist()) == {ord("a")} and set(spans[1].tolist()) == {ord("c")}
    text = EvalText(tokens, np.array([250]), 100, [100], names=names, bounds=bounds)
    assert text.files() == ["a.txt", "b.txt"], "a span across a document boundary names both"
