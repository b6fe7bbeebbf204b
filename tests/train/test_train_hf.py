"""Fine-tuning a Hugging Face model folder at a new length with posemb's trainer
(``posemb train --init HF_DIR --extend METHOD --set model.max_positions=N ...``): the model's
own code and objective, posemb's checkpoints, exact resume, lineage, and a folder that
transformers loads as it is.

Every folder is a tiny random model with its own tokenizer (tests/hfkit.py), 16 positions,
grown to 32.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from hfkit import MASKED, tiny_hf_folder
from kit import (
    as_sets,
    assert_same_tensors,
    posemb_cmd,
    read_metrics,
    read_step,
    run_posemb,
    run_tensors,
    subprocess_env,
)
from posemb.cli.main import main

transformers = pytest.importorskip("transformers")
OLD, NEW = 16, 32
FT = {
    "model.max_positions": NEW,
    "train.batch_size": 4,
    "train.max_steps": 30,
    "train.lr": 3e-3,
    "train.warmup_steps": 3,
    "train.eval_every": 10,
    "train.eval_batches": 2,
    "train.checkpoint_every": 10,
    "train.log_every": 1,
    "train.progress": False,
}


def finetune(src: Path, out: Path, corpus: Path, method: str = "tile", **extra) -> list[str]:
    return ["train", "--init", str(src), "--extend", method, "--data", str(corpus),
            "--set", *as_sets({**FT, **extra}), "--out", str(out)]  # fmt: skip


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf")
    return {
        t: tiny_hf_folder(t, root / t, positions=OLD)
        for t in ("bert", "roberta", "electra", "gpt2", "opt")
    }


def late_loss(model, ids: torch.Tensor, causal: bool, mask_id: int | None) -> float:
    """The mean loss on positions OLD .. NEW-1 of windows ``ids`` [b, NEW + 1]."""
    model.eval()
    with torch.no_grad():
        if causal:
            logits = model(ids[:, :-1]).logits  # [b, NEW, V]
            target = ids[:, 1:]
        else:  # every late position masked in turn would be slow: mask them all at once
            inputs = ids[:, :NEW].clone()
            inputs[:, OLD:] = mask_id
            logits, target = model(inputs).logits, ids[:, :NEW]
        losses = torch.nn.functional.cross_entropy(
            logits.transpose(1, 2).float(), target, reduction="none"
        )
    return float(losses[:, OLD:].mean())


@pytest.mark.slow
@pytest.mark.parametrize("model_type", ["bert", "roberta", "electra", "gpt2", "opt"])
def test_fine_tuning_lowers_the_loss_past_the_old_limit(
    sources, model_type, corpus, tmp_path, capsys
):
    from posemb.interop.hf_model import open_hf
    from posemb.interop.tokenizers import model_tokenizer, special_token_id

    src, out = sources[model_type], tmp_path / "ft"
    tok = model_tokenizer(src)
    text = corpus.read_text()[-20000:]
    ids = np.asarray(tok.encode(text)[: 8 * (NEW + 1)]).reshape(8, NEW + 1)
    ids = torch.from_numpy(ids)
    causal = model_type not in MASKED
    mask_id = special_token_id(src, tok, "mask_token")
    grown = open_hf(src, positions=NEW, method="tile")
    before = late_loss(grown, ids, causal, mask_id)
    capsys.readouterr()
    assert main(finetune(src, out, corpus)) == 0, capsys.readouterr().err
    tuned = open_hf(out)
    after = late_loss(tuned, ids, causal, mask_id)
    assert after < before - 0.2, (before, after)
    # the rows past the old limit trained (a run at the old length would leave them as grown)
    offset = grown.folder.offset
    new_rows = slice(offset + OLD, offset + NEW)
    old, new = grown.position_table()[new_rows], tuned.position_table()[new_rows]
    assert (old != new).any(dim=1).all(), "a row past the old limit did not train"
    metrics = read_metrics(out)
    assert [m["step"] for m in metrics] == list(range(1, 31))
    assert metrics[-1]["val_loss"] < metrics[0]["train_loss"]


@pytest.mark.slow
@pytest.mark.parametrize("model_type", ["bert", "roberta", "electra", "gpt2", "opt"])
def test_the_output_loads_in_transformers_with_no_missing_or_unexpected_keys(
    sources, model_type, corpus, tmp_path, capsys
):
    src, out = sources[model_type], tmp_path / "ft"
    capsys.readouterr()
    steps = {"train.max_steps": 4, "train.checkpoint_every": 4, "train.eval_every": 4}
    assert main(finetune(src, out, corpus, **steps)) == 0, capsys.readouterr().err
    auto = (
        transformers.AutoModelForMaskedLM
        if model_type in MASKED
        else (transformers.AutoModelForCausalLM)
    )
    loaded, info = auto.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    assert loaded.config.architectures == [type(loaded).__name__]
    # the folder serves the new length everywhere a limit is written
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    assert tokenizer.model_max_length == NEW
    ids = torch.tensor([tokenizer("def f(x): return x")["input_ids"] * 4])[:, :NEW]
    from posemb.interop.hf_model import open_hf

    ours = open_hf(out)
    assert ours.position_limit == NEW
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).logits, loaded.eval()(ids).logits)
    # posemb's record of the run, beside the model's own files
    record = json.loads((out / "posemb_run.json").read_text())
    assert record["hf"]["model_type"] == model_type
    lineage = record["lineage"]
    assert lineage["source"] == str(src.resolve()) and lineage["method"] == "tile"
    assert (lineage["from_positions"], lineage["positions"]) == (OLD, NEW)
    assert lineage["source_trained_positions"] == OLD


@pytest.mark.slow
@pytest.mark.parametrize("model_type", ["roberta", "opt"])
def test_the_reserved_rows_keep_their_place(sources, model_type, corpus, tmp_path, capsys):
    """RoBERTa and OPT keep 2 rows in front of the positions: real tokens start at row 2
    before and after (the reserved rows are copied, never trained)."""
    src, out = sources[model_type], tmp_path / "ft"
    capsys.readouterr()
    assert main(finetune(src, out, corpus, **{"train.max_steps": 10})) == 0
    old = _table(run_tensors(src))
    new = _table(run_tensors(out))
    assert old.shape[0] == OLD + 2 and new.shape[0] == NEW + 2
    assert torch.equal(new[:2], old[:2])  # the reserved rows: the same values, the same place
    assert not torch.equal(new[2 : OLD + 2], old[2:])  # the positions trained


def _table(tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    (key,) = [
        k for k in tensors if k.endswith(("position_embeddings.weight", "embed_positions.weight"))
    ]
    return tensors[key]


@pytest.mark.slow
def test_kill9_then_resume_is_bit_identical(sources, corpus, tmp_path):
    """BERT with dropout on (random draws in every step): a run killed at a random step and
    resumed ends with the same weights, moments and metrics as one never interrupted."""
    sets = {"train.max_steps": 20, "train.checkpoint_every": 2, "train.eval_every": 20}
    args = finetune(sources["bert"], tmp_path / "ref", corpus, **sets)
    proc = run_posemb(*args)
    assert proc.returncode == 0, proc.stderr
    run = tmp_path / "run"
    log = open(tmp_path / "train.log", "w")
    proc = subprocess.Popen(
        posemb_cmd(*finetune(sources["bert"], run, corpus, **sets)),
        stdout=log,
        stderr=subprocess.STDOUT,
        env=subprocess_env(),
    )
    target = int(np.random.default_rng().integers(4, 14))
    deadline = time.monotonic() + 120
    while read_step(run) < target:
        assert proc.poll() is None and time.monotonic() < deadline, "training ended first"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = read_step(run)
    assert 2 <= killed_at < 20
    proc = run_posemb("train", "--resume", str(run))
    assert proc.returncode == 0, proc.stderr
    ref = tmp_path / "ref"
    assert_same_tensors(run_tensors(run), run_tensors(ref))
    assert_same_tensors(
        run_tensors(run, "optimizer.safetensors"), run_tensors(ref, "optimizer.safetensors")
    )
    got, want = read_metrics(run), read_metrics(ref)
    assert [m["step"] for m in got] == list(range(1, 21))
    assert [m["train_loss"] for m in got] == [m["train_loss"] for m in want]


@pytest.mark.slow
def test_a_bare_encoder_trains_with_a_fresh_head(corpus, tmp_path, capsys):
    src = tiny_hf_folder("bert", tmp_path / "bare", positions=OLD, head=False)
    capsys.readouterr()
    assert main(finetune(src, tmp_path / "no", corpus)) == 2
    assert "hf.new_head=true" in capsys.readouterr().err
    out = tmp_path / "ft"
    sets = {"hf.new_head": True, "train.max_steps": 8, "train.checkpoint_every": 8}
    assert main(finetune(src, out, corpus, **sets)) == 0, capsys.readouterr().err
    loaded, info = transformers.AutoModelForMaskedLM.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    # the encoder is the source's, grown and fine-tuned; the head is new
    source = transformers.BertModel.from_pretrained(src)
    assert loaded.bert.embeddings.position_embeddings.weight.shape[0] == NEW
    assert source.embeddings.position_embeddings.weight.shape[0] == OLD
    assert json.loads((out / "posemb_run.json").read_text())["hf"]["new_head"] is True


def test_table_only_steps_freeze_everything_but_the_table(sources, corpus, tmp_path, capsys):
    """After table-only steps, every weight but the position table is the source's own."""
    src, out = sources["gpt2"], tmp_path / "ft"
    sets = {"train.table_only_steps": 3, "train.max_steps": 3, "train.checkpoint_every": 3,
            "train.eval_every": 3}  # fmt: skip
    capsys.readouterr()
    assert main(finetune(src, out, corpus, **sets)) == 0, capsys.readouterr().err
    before, after = run_tensors(src), run_tensors(out)
    changed = sorted(k for k in after if k in before and not torch.equal(before[k], after[k]))
    assert changed == ["transformer.wpe.weight"]


def test_bad_settings_for_a_hugging_face_model_exit_2(sources, corpus, tmp_path, capsys):
    src = sources["gpt2"]
    cases = [
        (["--set", "model.n_layer=3"], "keeps its own architecture"),
        (["--set", "model.max_positions=32"], "choose how the table changes size"),
        (
            ["--extend", "tile", "--set", "model.max_positions=32", "train.positions=random"],
            "numbers its own positions",
        ),  # fmt: skip
        (
            ["--extend", "tile", "--set", "model.max_positions=32", "train.parallel=fsdp"],
            "train.parallel=ddp",
        ),  # fmt: skip
    ]
    for extra, message in cases:
        capsys.readouterr()
        code = main(["train", "--init", str(src), *extra, "--data", str(corpus),
                     "--out", str(tmp_path / "x")])  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, (extra, err)
        assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_two_processes_fine_tune_a_hugging_face_model_in_lockstep(sources, corpus, tmp_path):
    """torchrun --nproc_per_node 2 (gloo): the replicas stay bit-identical at every step
    (DDP averages the gradients), rank 0 alone writes, and the folder loads."""
    from launchkit import launch, rank_digests

    out = tmp_path / "ddp"
    sets = {"train.max_steps": 6, "train.checkpoint_every": 3, "train.eval_every": 6}
    proc = launch(finetune(sources["gpt2"], out, corpus, **sets), out, 2, tmp_path / "logs")
    log = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, log
    a, b = rank_digests(tmp_path / "logs")
    assert len(a) == 6 and a == b
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["step"] == 6 and state["world_size"] == 2
    _, info = transformers.AutoModelForCausalLM.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]


def test_what_posemb_sets_from_the_folder_is_not_the_users(sources, corpus, tmp_path, capsys):
    src = str(sources["gpt2"])
    cases = [
        (["--set", "hf.objective=masked"], "hf.objective is read from"),
        (["--set", "data.tokenizer=byte"], "reads its own tokenizer"),
        (["--extend", "tile", "--set", "model.max_positions=8"], "never crops it"),
        (["--data", "synthetic:copy"], "reads text in its own tokens"),
    ]
    for extra, message in cases:
        capsys.readouterr()
        code = main(["train", "--init", src, *extra, "--out", str(tmp_path / "x")])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, (extra, err)


@pytest.mark.slow
def test_a_fine_tuned_folder_resumes_with_train_settings_only_and_evaluates_as_its_run(
    sources, corpus, tmp_path, capsys
):
    out = tmp_path / "ft"
    sets = {"train.max_steps": 4, "train.checkpoint_every": 4, "train.eval_every": 4}
    assert main(finetune(sources["gpt2"], out, corpus, **sets)) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--set", "model.n_layer=5"]) == 2
    assert "keeps its model as it started" in capsys.readouterr().err
    # eval reads the run's own settings: its training length and its text
    assert main(["eval", str(out), "--lengths", f"{NEW}", "--max-windows", "2",
                 "--out", str(tmp_path / "e")]) == 0  # fmt: skip
    (record,) = json.loads((tmp_path / "e" / "results.json").read_text())
    assert record["train_len"] == NEW and record["provenance"]["data"]["source"] == str(corpus)
