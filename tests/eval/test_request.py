"""The rules of an eval request (eval/request.py), without a run folder: each broken rule is
an EvalRequestError (a ValueError, so ``posemb eval`` exits 2) naming the option and the fix."""

from __future__ import annotations

import pytest

import posemb
from posemb.eval.request import EvalRequestError, check_eval_model, check_eval_options

OK = dict(extend=None, overflow=None, mode="nonoverlap", stride=None)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(extend="tile", overflow="clamp"), "choose --extend or --overflow, not both"),
        (dict(mode="sliding", extend="tile"), "--mode sliding keeps the table as it is"),
        (dict(mode="sliding", overflow="wrap"), "--mode sliding keeps the table as it is"),
        (dict(stride=4), "--stride applies to --mode sliding only"),
    ],
)
def test_conflicting_options_are_refused(changes, message):
    with pytest.raises(EvalRequestError, match=message):
        check_eval_options(**{**OK, **changes})
    assert issubclass(EvalRequestError, ValueError)


def test_an_out_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(EvalRequestError, match="is a file, not a directory"):
        check_eval_options(**OK, out=tmp_path / "f")
    check_eval_options(**OK, out=tmp_path / "new")  # a folder still to make is fine
    check_eval_options(**{**OK, "mode": "sliding", "stride": 3}, out=tmp_path)


def model(position: str) -> posemb.Transformer:
    cfg = posemb.ModelConfig.preset("tiny", max_positions=16, position=position)
    return posemb.Transformer(cfg)


def test_extension_needs_a_learned_table():
    with pytest.raises(EvalRequestError, match="act on a learned table; this run uses rope"):
        check_eval_model(model("rope"), [64], **{**OK, "extend": "tile"})
    check_eval_model(model("rope"), [64], **OK)  # no table: any length
    check_eval_model(model("learned"), [64], **{**OK, "extend": "tile"})


def test_the_stride_must_fit_the_sliding_window():
    learned = model("learned")
    with pytest.raises(EvalRequestError, match="choose --stride between 1 and 15"):
        check_eval_model(learned, [32], **{**OK, "mode": "sliding", "stride": 16})
    check_eval_model(learned, [32], **{**OK, "mode": "sliding", "stride": 15})


def test_a_length_past_the_table_with_nothing_to_handle_it_is_the_library_error():
    with pytest.raises(posemb.PositionOutOfRangeError):
        check_eval_model(model("learned"), [16, 17], **OK)
    check_eval_model(model("learned"), [16, 17], **{**OK, "overflow": "clamp"})


def _cfg(**settings):
    from posemb.runs import build_config

    base = {"model.max_positions": 256, "train.seq_len": 32}
    return build_config("tiny", {**base, **settings})


def test_a_length_past_the_trained_positions_is_named_in_one_line():
    from posemb.eval.request import untrained_note

    cfg = _cfg()
    assert untrained_note(cfg, None, [16, 32], "runs/py") is None  # within what it trained
    note = untrained_note(cfg, None, [32, 64, 256], "runs/py")
    assert note == (
        "runs/py trained positions 0–31 (train.seq_len=32); lengths 64, 256 also score "
        "positions 32–255, which it never trained (rows 32–255 of its table are untrained)"
    )
    # no table (RoPE): the positions are still untrained; there are no rows to name
    rope = untrained_note(_cfg(**{"model.position": "rope"}), None, [512], "r")
    assert rope.endswith("positions 32–511, which it never trained")
    # randomised positions train the whole table; past it, the note comes back
    assert untrained_note(_cfg(**{"train.positions": "random"}), None, [256], "r") is None
    assert "positions 256–511" in untrained_note(
        _cfg(**{"train.positions": "random"}), None, [512], "r"
    )


def test_a_fine_tune_counts_the_positions_its_source_trained():
    from posemb.eval.request import untrained_note
    from posemb.runs import trained_positions

    cfg = _cfg(**{"train.seq_len": 16})
    assert trained_positions(cfg) == 16
    assert trained_positions(cfg, {"source_trained_positions": 64}) == 64
    assert trained_positions(cfg, {"source_tokens": 10}) == 16  # an older record: its own
    assert untrained_note(cfg, {"source_trained_positions": 64}, [64], "ft") is None
