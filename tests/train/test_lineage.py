"""Runs started from another run (``posemb train --init RUN --extend METHOD``): the starting
weights, the lineage in config.json, exact resume, the loss at the new length, and the
refusals (one line, exit 2)."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest
import torch

import posemb
from kit import (
    assert_clean_error,
    assert_same_tensors,
    fast_config,
    one_thread,
    read_metrics,
    run_posemb,
    run_tensors,
)
from posemb.positional import EXTEND_METHODS
from posemb.runs.weights import HASH_KEY, read_weights_file
from posemb.train import TrainingInterrupted, init_config, train
from posemb.train import metrics as metrics_mod
from posemb.train.session import build_model
from posemb.train.stream import TrainData, make_tokenizer
from posemb.train.trainer import evaluate

L, T = 16, 64  # the source's length and table, and the fine-tune's


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Path:
    """A learned-table run trained at L = 16 with a 16-row table."""
    run = tmp_path_factory.mktemp("source") / "run"
    with one_thread():
        train(
            fast_config(
                train__seq_len=L,
                model__max_positions=L,
                train__max_steps=60,
                train__checkpoint_every=60,
                train__lr=3e-3,
                data__source=str(corpus),
            ),
            run,
        )
    return run


def finetune_config(source: Path, method: str = "interpolate", **sets):
    settings = {
        "model.max_positions": T,
        "train.max_steps": 20,
        "train.warmup_steps": 2,
        "train.lr": 1e-3,
        "train.checkpoint_every": 20,
        "train.eval_every": 20,
        **{k.replace("__", "."): v for k, v in sets.items()},
    }
    return init_config(source, method, settings)


@pytest.mark.parametrize("method", EXTEND_METHODS)
def test_the_fine_tune_starts_from_the_source_weights_with_the_kept_rows_bit_for_bit(
    source, method
):
    src = run_tensors(source)
    cfg = finetune_config(source, method)
    assert cfg.train.seq_len == T  # --extend with a new table trains at the new length
    model, lineage = build_model(cfg, torch.device("cpu"))
    assert lineage["method"] == method and lineage["positions"] == T
    table, old = model.position_table().detach(), src["pos.weight"]
    assert table.shape == (T, old.shape[1])
    if method in ("interpolate", "cubic"):  # resampled: the first and the last row are kept
        assert torch.equal(table[0], old[0]) and torch.equal(table[-1], old[-1])
    else:  # every trained row is kept
        assert torch.equal(table[:L], old)
    start = {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}
    others = [k for k in src if k != "pos.weight"]
    assert others and all(torch.equal(start[k], src[k]) for k in others)


def test_lineage_is_in_config_json_and_the_metrics_count_the_new_tokens(source, tmp_path):
    run = tmp_path / "ft"
    train(finetune_config(source), run)
    data = json.loads((run / "config.json").read_text())
    _, header = read_weights_file(source / "model.safetensors")
    assert data["lineage"] == {
        "source": str(source.resolve()),
        "source_step": 60,
        "source_sha256": header[HASH_KEY],
        "source_tokens": 60 * 4 * L,
        "source_trained_positions": L,  # the source trained positions 0 .. L-1
        "method": "interpolate",
        "from_positions": L,
        "positions": T,
        "source_lineage": None,
    }
    assert data["train"]["init"] == str(source.resolve())
    assert data["model"]["max_positions"] == T and data["train"]["seq_len"] == T
    assert read_metrics(run)[-1]["tokens"] == 20 * 4 * T
    assert (run / "tokenizer.json").read_bytes() == (source / "tokenizer.json").read_bytes()
    # a run started from the fine-tune records the whole chain
    again = tmp_path / "again"
    train(init_config(run, None, {"train.max_steps": 2, "train.eval_every": 2}), again)
    chain = json.loads((again / "config.json").read_text())["lineage"]
    assert chain["source_step"] == 20 and chain["method"] is None
    assert chain["source_tokens"] == 60 * 4 * L + 20 * 4 * T
    assert chain["source_lineage"] == data["lineage"]
    model = posemb.Transformer.from_pretrained(again)
    assert model.config.max_positions == T


def test_resume_of_a_fine_tune_is_exact_and_does_not_read_the_source_again(
    source, tmp_path, monkeypatch
):
    cfg = finetune_config(source, "tile", train__checkpoint_every=5, model__dropout=0.1)
    whole = tmp_path / "whole"
    train(cfg, whole)
    # the same fine-tune stopped by Ctrl-C after step 7 (checkpoint at 7), then resumed
    copy = tmp_path / "copy"
    shutil.copytree(source, copy)
    cut = tmp_path / "cut"
    real = metrics_mod.MetricsLog.stepped
    steps = []

    def stepped(self, loss):
        real(self, loss)
        steps.append(loss)
        if len(steps) == 7:
            os.kill(os.getpid(), signal.SIGINT)  # the loop saves after this step and stops

    monkeypatch.setattr(metrics_mod.MetricsLog, "stepped", stepped)
    with pytest.raises(TrainingInterrupted):
        train(finetune_config(copy, "tile", train__checkpoint_every=5, model__dropout=0.1), cut)
    monkeypatch.setattr(metrics_mod.MetricsLog, "stepped", real)
    assert json.loads((cut / "trainer_state.json").read_text())["step"] == 7
    shutil.rmtree(copy)  # the source is gone: resuming needs only the fine-tune's checkpoint
    train(None, cut, resume=True)
    assert_same_tensors(run_tensors(cut), run_tensors(whole))
    assert_same_tensors(
        run_tensors(cut, "optimizer.safetensors"), run_tensors(whole, "optimizer.safetensors")
    )


def test_the_loss_at_the_new_length_falls_over_the_fine_tune(source, tmp_path):
    cfg = finetune_config(source, "interpolate", train__max_steps=30)
    data = TrainData(cfg, make_tokenizer(cfg, source, resume=True))

    def val_loss(model) -> float:
        return evaluate(model, data, 8, 4, torch.device("cpu"), _no_amp, seed=0)[0]

    start, _ = build_model(cfg, torch.device("cpu"))
    before = val_loss(start)
    train(cfg, tmp_path / "ft")
    after = val_loss(posemb.Transformer.from_pretrained(tmp_path / "ft"))
    assert after < before - 0.05, (before, after)


def _no_amp():
    import contextlib

    return contextlib.nullcontext()


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--set", "model.max_positions=64"], "choose how the table changes size with --extend"),
        (["--extend", "tile"], "--extend tile (train.init_method) needs a new table size"),
        (
            ["--extend", "tile", "--set", "model.max_positions=64", "model.n_layer=2"],
            "model.n_layer=2 differs from",
        ),
        (
            ["--extend", "tile", "--set", "model.max_positions=64", "data.tokenizer=char"],
            "data.tokenizer='char' differs from",
        ),
        (["--preset", "tiny"], "drop --preset"),
        (["--extend", "bogus"], "invalid choice: 'bogus'"),
    ],
)
def test_bad_fine_tunes_exit_2_with_one_line(source, tmp_path, argv, needle):
    out = tmp_path / "out"
    proc = run_posemb("train", "--init", str(source), *argv, "--out", str(out))
    assert needle in assert_clean_error(proc)
    assert not out.exists()


def test_extend_needs_init_and_a_scheme_without_a_table_takes_no_method(tmp_path, corpus):
    proc = run_posemb("train", "--extend", "tile", "--out", str(tmp_path / "x"))
    assert "add --init RUN" in assert_clean_error(proc)
    rope = tmp_path / "rope"
    train(fast_config(model__position="rope", train__max_steps=1, data__source=str(corpus)), rope)
    proc = run_posemb(
        "train", "--init", rope, "--extend", "tile", "--set", "model.max_positions=128",
        "--out", tmp_path / "y",
    )  # fmt: skip
    assert "has no table to extend: drop --extend" in assert_clean_error(proc)
    longer = tmp_path / "rope-128"  # it serves a longer length as it is
    proc = run_posemb(
        "train", "--init", rope, "--set", "model.max_positions=128", "train.seq_len=128",
        "train.max_steps=1", "--out", longer,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads((longer / "config.json").read_text())["lineage"]["method"] is None
