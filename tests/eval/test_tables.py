"""The results tables show what changes between rows, in words a reader was told; the
length plots draw series that would hide each other as one and tell the others apart."""

from __future__ import annotations

from posemb.eval.plots import coinciding, style
from posemb.eval.reading import scale_sentence, unit
from posemb.eval.tables import KEY_NOTE, change_table, key_note, results_table


def rec(scheme, method="none", mode="nonoverlap", recipe="start", L=64, loss=2.0, **extra):
    return {
        "scheme": scheme,
        "recipe": recipe,
        "method": method,
        "mode": mode,
        "train_len": 64,
        "eval_len": L,
        "loss": loss,
        "loss_se": 0.01,
        **extra,
    }


def test_columns_that_never_change_are_left_out_and_the_rest_explained():
    records = [rec("learned", "interpolate"), rec("learned", mode="sliding"), rec("rope")]
    header, rows = results_table(records)
    assert header[:3] == ["scheme", "method", "mode"] and "recipe" not in header
    assert rows[1][:3] == ["learned", "–", "sliding"] and rows[2][:3] == ["rope", "–", "windows"]
    assert key_note(records) == KEY_NOTE
    two_recipes = [rec("learned"), rec("learned", recipe="random")]
    header, _ = results_table(two_recipes)
    assert header[:2] == ["scheme", "recipe"] and "mode" not in header
    assert key_note(two_recipes) == ""


def test_the_change_table_keeps_the_results_tables_columns():
    change = {"eval_len": 64, "diff": 0.5, "diff_se": 0.01, "tie": False}
    records = [
        rec("rope"),
        rec("rope", L=128, change_from=change),
        rec("alibi"),
        rec("alibi", L=128, change_from={**change, "tie": True}),
    ]
    caption, header, rows = change_table(records)
    assert header == ["scheme", "@128"]
    assert rows == [["rope", "+0.500 ± 0.010"], ["alibi", "+0.500 ± 0.010 (tie)"]]
    assert "nats per token" in caption


def test_byte_level_losses_are_nats_per_byte_with_their_scale():
    byte = [rec("learned", bits_per_byte=2.0 / 0.6931)]
    assert unit(byte) == "nats per byte" and unit([rec("learned")]) == "nats per token"
    assert "ln 256 = 5.545 nats per byte (8 bits)" in scale_sentence(byte)
    assert "2.000 nats is 2.89 bits per byte" in scale_sentence(byte)
    assert scale_sentence([rec("learned")]) == ""


def test_series_within_their_errors_are_drawn_as_one_and_others_apart():
    close = {
        "learned / interpolate": [(64, 2.00, 0.03), (128, 2.10, 0.03)],
        "learned / cubic": [(64, 2.00, 0.03), (128, 2.12, 0.03)],
        "learned / tile": [(64, 2.00, 0.03), (128, 2.60, 0.03)],
    }
    drawn = coinciding(close)
    assert set(drawn) == {"learned / cubic ≈ interpolate", "learned / tile"}
    apart = {**close, "learned / cubic": [(64, 2.00, 0.03), (128, 2.2, 0.03)]}
    assert len(coinciding(apart)) == 3


def test_neighbouring_series_differ_in_colour_and_line_style():
    for i in range(15):
        a, b = style(i), style(i + 1)
        assert a["color"] != b["color"] and a["ls"] != b["ls"]
    assert len({style(i)["color"] for i in range(10)}) == 10
