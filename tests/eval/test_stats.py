"""Paired differences, ties, and readings that never rank what is tied."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from posemb import Transformer
from posemb.eval.reading import describe, name
from posemb.eval.runner import evaluate_run
from posemb.eval.stats import add_comparisons, is_tie, paired_difference
from posemb.eval.text import EvalText
from posemb.train import build_config

CFG = build_config("tiny", {"model.max_positions": 16, "train.seq_len": 16, "model.n_layer": 1})


def tiny_model() -> Transformer:
    torch.manual_seed(0)
    return Transformer(CFG.model).eval()


def text(lengths=(16, 32)) -> EvalText:
    tokens = np.random.default_rng(0).integers(0, 256, size=20_000).astype(np.uint16)
    return EvalText.draw(tokens, list(lengths), n_spans=8, source={"source": "random"})


def records(model, t, **kw):
    prov = {"data": t.provenance()}
    return evaluate_run(model, CFG, t, t.lengths, provenance=prov, **kw)


def test_a_model_paired_with_itself_differs_by_exactly_zero():
    t = text()
    a = records(tiny_model(), t, method="tile")
    b = records(tiny_model(), t, method="random")  # same weights; both unextended at 16
    d = paired_difference(a[0], b[0])
    assert d == {"diff": 0.0, "diff_se": 0.0, "tie": True}
    assert paired_difference(a[1], a[1]) == {"diff": 0.0, "diff_se": 0.0, "tie": True}
    # past the table the two methods differ: a paired difference with a positive error
    d = paired_difference(a[1], b[1])
    assert d["diff"] != 0 and d["diff_se"] > 0


def test_paired_standard_error_is_over_unit_differences():
    a = {
        "loss": 2.0,
        "eval_len": 8,
        "span_losses": [1.0, 2.0, 3.0],
        "provenance": {"data": {"fingerprint": "x"}},
    }
    b = {
        "loss": 1.0,
        "eval_len": 8,
        "span_losses": [0.5, 1.0, 1.5],
        "provenance": {"data": {"fingerprint": "x"}},
    }
    d = paired_difference(a, b)
    assert d["diff"] == pytest.approx(1.0)
    assert d["diff_se"] == pytest.approx(np.std([0.5, 1.0, 1.5], ddof=1) / 3**0.5)
    assert not d["tie"]  # 1.0 > 2 * 0.289
    other = {**b, "provenance": {"data": {"fingerprint": "y"}}}
    with pytest.raises(ValueError, match="not measured on the same text"):
        paired_difference(a, other)


def test_tie_is_within_two_standard_errors_and_only_then():
    assert is_tie(0.2, 0.1) and is_tie(-0.2, 0.1)
    assert not is_tie(0.2001, 0.1)
    assert is_tie(0.0, None) and not is_tie(0.1, None) and not is_tie(1e-9, 0.0)


def test_comparisons_are_added_against_the_shortest_length_and_the_best():
    t = text()
    recs = records(tiny_model(), t, method="tile") + records(tiny_model(), t, mode="sliding")
    add_comparisons(recs, name)
    tile16, tile32, slide16, slide32 = recs
    assert "change_from" not in tile16
    c = tile32["change_from"]
    direct = np.asarray(tile32["span_losses"]) - np.asarray(tile16["span_losses"])
    assert c["eval_len"] == 16 and c["diff"] == pytest.approx(direct.mean())
    assert c["diff_se"] == pytest.approx(direct.std(ddof=1) / np.sqrt(len(direct)))
    best32 = min((tile32, slide32), key=lambda r: r["loss"])
    assert best32["vs_best"]["diff"] == 0.0 and best32["vs_best"]["tie"]
    assert tile16["vs_best"]["tie"] and slide16["vs_best"]["diff"] == 0.0


def test_the_reading_never_ranks_identical_or_tied_configurations():
    t = text()
    m = tiny_model()
    recs = []
    for method in ("random", "tile", "interpolate"):
        recs += records(m, t, method=method)
    add_comparisons(recs, name)
    first = describe(recs)[0]
    # at 16 tokens every method runs the same unextended table: one configuration, not ranked
    assert "lowest" not in first, first
    assert "learned (all 3 ways past its end give the same loss at this length)" in first


def test_the_reading_calls_a_tie_only_within_two_standard_errors():
    fp = {"provenance": {"data": {"fingerprint": "x"}}}
    base = {"scheme": "s", "recipe": "start", "mode": "nonoverlap", "train_len": 8, "eval_len": 8}
    a = {
        **base,
        **fp,
        "method": "none",
        "scheme": "a",
        "loss": 1.0,
        "loss_se": 0.1,
        "span_losses": [1.0, 1.1, 0.9],
    }
    b = {
        **base,
        **fp,
        "method": "none",
        "scheme": "b",
        "loss": 1.01,
        "loss_se": 0.1,
        "span_losses": [1.02, 1.08, 0.93],
    }
    c = {
        **base,
        **fp,
        "method": "none",
        "scheme": "c",
        "loss": 2.0,
        "loss_se": 0.1,
        "span_losses": [2.0, 2.1, 1.9],
    }
    text_ab = describe([a, b])[0]
    assert "all 2 configurations tie" in text_ab
    text_abc = describe([a, b, c])[0]
    assert "the lowest loss is a" in text_abc and "tied with b" in text_abc
    assert "the highest c" in text_abc and "tied with a" not in text_abc.split("the highest")[1]
