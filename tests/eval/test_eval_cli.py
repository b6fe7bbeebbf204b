"""posemb eval end to end on tiny runs (reports, exit codes). The sweep's tests are in
tests/experiments/test_sweep.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kit import TINY
from posemb.cli.main import main
from posemb.train import build_config, train

# A table of 32 rows (the evaluations go past its end), 4 steps, one evaluation at the end.
SETTINGS = {
    **TINY,
    "model.max_positions": 32,
    "train.max_steps": 4,
    "train.eval_every": 4,
    "train.checkpoint_every": 4,
    "train.eval_batches": 1,
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """In place of the session's corpus: one short line, 400 times (19 kB)."""
    path = tmp_path_factory.mktemp("data") / "text.txt"
    path.write_text("the cat chased the dog. the dog chased the cat.\n" * 400)
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, corpus) -> Path:
    d = tmp_path_factory.mktemp("runs") / "a"
    cache = tmp_path_factory.mktemp("cache")
    train(
        build_config(
            "tiny", {**SETTINGS, "data.source": str(corpus), "data.cache_dir": str(cache)}
        ),
        d,
    )
    return d


def test_eval_past_the_table_without_a_method_exits_2(run_dir, tmp_path, capsys):
    code = main(["eval", str(run_dir), "--lengths", "32,64", "--out", str(tmp_path / "e")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "position 63 is past the end of the learned table (32 positions: 0–31)" in err
    assert "--mode sliding" in err and not (tmp_path / "e" / "results.json").exists()


@pytest.mark.parametrize(
    "extra", [["--extend", "interpolate"], ["--overflow", "clamp"], ["--mode", "sliding"]]
)
def test_eval_writes_records_and_a_self_contained_report(run_dir, tmp_path, extra, capsys):
    out = tmp_path / "e"
    capsys.readouterr()
    assert (
        main(
            [
                "eval",
                str(run_dir),
                "--lengths",
                "16,32,64",
                "--max-windows",
                "2",
                "--out",
                str(out),
                *extra,
            ]
        )
        == 0
    )
    records = json.loads((out / "results.json").read_text())
    assert [r["eval_len"] for r in records] == [16, 32, 64]
    for r in records:
        for key in (
            "scheme",
            "recipe",
            "method",
            "train_len",
            "eval_len",
            "mode",
            "loss",
            "loss_se",
            "tokens",
            "provenance",
        ):
            assert key in r
        assert r["loss"] is not None and r["loss"] > 0 and r["tokens"] > 0
        a, b = r["span_losses"]  # --max-windows 2: two spans
        assert r["loss"] == pytest.approx((a + b) / 2, abs=1e-6)
        assert r["loss_se"] == pytest.approx(abs(a - b) / 2, abs=1e-6)  # s / sqrt(2), n = 2
        assert r["tokens"] == records[0]["tokens"], "every length scores the same targets"
        assert len(r["per_position"]) == r["eval_len"] - 1
        assert r["bits_per_byte"] == pytest.approx(r["loss"] / 0.6931471805599453)
    for r in records[1:]:
        c = r["change_from"]
        assert c["eval_len"] == 16
        assert c["diff"] == pytest.approx(r["loss"] - records[0]["loss"], abs=1e-5)
    assert (out / "results.csv").read_text().startswith("scheme,recipe,method")
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 2
    assert "src='" not in page.replace("src='data:", "")
    assert "Fingerprint of the scored tokens: sha256:" in page and "± " in page
    assert "## Reading" in (out / "report.md").read_text()
    # the run trained positions 0-31 (train.seq_len=32): 64 reads positions it never trained
    # (a sliding window never reads past them)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    expected = [
        f"posemb: warning: {run_dir} trained positions 0–31 (train.seq_len=32); length 64 also "
        "scores positions 32–63, which it never trained"
    ]
    assert warnings == ([] if "sliding" in extra else expected)


def test_synthetic_task_reports_exact_match_per_length(tmp_path):
    run = tmp_path / "copy"
    cfg = build_config(
        "tiny",
        {
            **SETTINGS,
            "model.position": "rope",
            "train.seq_len": 17,
            "data.source": "synthetic:copy",
            "data.cache_dir": str(tmp_path / "cache"),
        },
    )
    train(cfg, run)
    out = tmp_path / "e"
    assert main(["eval", str(run), "--lengths", "17,33", "--out", str(out)]) == 0
    records = json.loads((out / "results.json").read_text())
    assert [r["eval_len"] for r in records] == [17, 33]
    for r in records:
        assert 0.0 <= r["accuracy"] <= 1.0 and r["loss"] > 0 and r["tokens"] > 0
        # exact match over 128 examples: its standard error is that of a mean of 0/1 values
        p = r["accuracy"]
        assert r["accuracy_se"] == pytest.approx((p * (1 - p) / 127) ** 0.5)
        assert len(r["example_losses"]) == 128 and r["loss_se"] > 0
        assert r["provenance"]["data"]["task"] == "copy"
    assert "accuracy @17" in (out / "report.md").read_text()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--lengths", "1"], "evaluation lengths need at least 2 tokens"),
        (["--lengths", "16", "--stride", "4"], "--stride applies to --mode sliding only"),
        (
            ["--lengths", "16,64", "--mode", "sliding", "--stride", "32"],
            "choose --stride between 1 and 31",
        ),
    ],
)
def test_eval_bad_lengths_and_strides_exit_2(run_dir, tmp_path, capsys, extra, message):
    assert main(["eval", str(run_dir), *extra, "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_eval_on_text_shorter_than_a_length_exits_2_before_any_work(
    run_dir, tmp_path, capsys, monkeypatch
):
    # the run's own data.cache_dir as the user's cache: no note about the cache on stderr
    monkeypatch.setenv(
        "POSEMB_CACHE", json.loads((run_dir / "config.json").read_text())["data"]["cache_dir"]
    )
    short = tmp_path / "short.txt"
    short.write_text("hello world, " * 10)  # 130 characters: a validation split of 13 tokens
    from posemb.eval import length

    def no_model_work(*a, **k):
        raise AssertionError("the model ran before the length check")

    monkeypatch.setattr(length, "token_losses", no_model_work)
    code = main(
        [
            "eval",
            str(run_dir),
            "--lengths",
            "8,16",
            "--data",
            str(short),
            "--out",
            str(tmp_path / "e"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "length 16 is longer than the evaluation text" in err
    assert "has 13 tokens" in err and "lengths up to 13" in err and "--data" in err
    assert not (tmp_path / "e").exists(), "nothing is written"


def test_eval_of_a_task_at_a_length_too_short_for_a_problem_exits_2(tmp_path, capsys):
    run = tmp_path / "copy"
    cfg = build_config(
        "tiny",
        {
            **SETTINGS,
            "train.seq_len": 17,
            "data.source": "synthetic:copy",
            "data.cache_dir": str(tmp_path / "cache"),
        },
    )
    train(cfg, run)
    capsys.readouterr()
    out = tmp_path / "e"
    assert main(["eval", str(run), "--lengths", "2,17", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "length 2 is too short for synthetic:copy" in err
    assert not out.exists()


def test_a_length_that_cannot_be_scored_is_a_record_with_its_error(run_dir, monkeypatch):
    """Errors for one length are recorded, not raised; the plots draw what there is."""
    import warnings

    from posemb.eval import length
    from posemb.eval.runner import evaluate_run, load_eval_text
    from posemb.eval.tables import write_eval_report
    from posemb.runs import load_run, read_config

    model, tok = load_run(run_dir)
    cfg = read_config(run_dir)
    text = load_eval_text(cfg, tok, None, [16, 32], n_spans=2)

    def broken(m, ids):
        raise ValueError("broken on purpose")

    monkeypatch.setattr(length, "token_losses", broken)
    records = evaluate_run(model, cfg, text, [16, 32])
    assert [r["loss"] for r in records] == [None, None]
    assert records[0]["error"] == "broken on purpose"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an empty plot must not warn (no legend without lines)
        md, _ = write_eval_report(run_dir.parent / "r", records, "t", "", [])
    assert "not evaluated: broken on purpose" in md.read_text()


def test_eval_out_that_is_a_file_exits_2(run_dir, tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert main(["eval", str(run_dir), "--lengths", "16", "--out", str(tmp_path / "f")]) == 2
    assert "is a file, not a directory" in capsys.readouterr().err


def test_eval_options_that_would_not_act_are_refused(run_dir, tmp_path, capsys, corpus):
    out = str(tmp_path / "e")
    assert (
        main(
            [
                "eval",
                str(run_dir),
                "--lengths",
                "64",
                "--mode",
                "sliding",
                "--extend",
                "tile",
                "--out",
                out,
            ]
        )
        == 2
    )
    assert "--mode sliding keeps the table" in capsys.readouterr().err
    rope = tmp_path / "rope"
    train(
        build_config(
            "tiny",
            {
                **SETTINGS,
                "model.position": "rope",
                "data.source": str(corpus),
                "data.cache_dir": str(tmp_path / "cache"),
            },
        ),
        rope,
    )
    assert main(["eval", str(rope), "--lengths", "64", "--extend", "tile", "--out", out]) == 2
    assert "this run uses rope" in capsys.readouterr().err


def test_a_sliding_window_longer_than_training_warns_of_the_rows_it_reads(tmp_path, capsys):
    """A sliding window is the whole table: a 64-row table trained at 16 tokens reads rows
    16-63 at length 64 through it too, so the untrained-positions warning stays."""
    from kit import fast_config

    run = tmp_path / "r"
    settings = {"train__max_steps": 2, "train__seq_len": 16, "model__max_positions": 64}
    train(fast_config(**settings), run)
    capsys.readouterr()
    args = ["eval", str(run), "--lengths", "16,64", "--mode", "sliding", "--max-windows", "2"]
    assert main([*args, "--out", str(tmp_path / "e")]) == 0
    err = capsys.readouterr().err
    assert "length 64 also scores positions 16–63, which it never trained" in err, err
    records = json.loads((tmp_path / "e" / "results.json").read_text())
    assert all("positions 16–63, which it never trained" in r["warning"] for r in records)
    page = (tmp_path / "e" / "report.html").read_text()
    assert "Warning: " in page and "which it never trained" in page


def test_sliding_records_carry_their_window_and_stride(tmp_path, capsys):
    """Each sliding record says the window and stride it used (None where one window covered
    the length); a --stride that changed nothing (one window everywhere) is said so."""
    from kit import fast_config

    run = tmp_path / "r"
    train(fast_config(train__max_steps=2, train__seq_len=16, model__max_positions=16), run)
    args = ["eval", str(run), "--lengths", "16,64", "--mode", "sliding", "--max-windows", "2"]
    assert main([*args, "--stride", "4", "--out", str(tmp_path / "a")]) == 0
    records = json.loads((tmp_path / "a" / "results.json").read_text())
    assert [(r["eval_len"], r["window"], r["stride"]) for r in records] == [
        (16, 16, None),
        (64, 16, 4),
    ]
    capsys.readouterr()
    args = ["eval", str(run), "--lengths", "16", "--mode", "sliding", "--stride", "4"]
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert "--stride 4 has no effect here" in capsys.readouterr().err
    assert main([*args[:-2], "--out", str(tmp_path / "c")]) == 0  # no --stride: no note
    assert "has no effect" not in capsys.readouterr().err
