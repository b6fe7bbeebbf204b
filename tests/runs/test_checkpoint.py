"""Run directories on disk (docs/DESIGN.md, "The run folder"): damaged files are clear
errors, nothing is unpickled, config.json round-trips."""

from __future__ import annotations

import json
import pickle
import re
import shutil
import struct
from pathlib import Path

import pytest
import torch

import posemb
from kit import assert_clean_error, fast_config, one_thread, run_posemb
from posemb.cli.main import main
from posemb.runs import CheckpointError, RunConfig, build_config, read_config
from posemb.runs.load import write_config
from posemb.train import train

SRC = Path(posemb.__file__).resolve().parent


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("trained") / "run"
    with pytest.MonkeyPatch.context() as mp, one_thread():
        mp.setenv("POSEMB_CACHE", str(run.parent / "cache"))
        train(fast_config(train__max_steps=3, data__source="synthetic:copy"), run)
    return run


@pytest.fixture
def run(trained: Path, tmp_path: Path) -> Path:
    """A private copy of the trained run, free to damage."""
    return Path(shutil.copytree(trained, tmp_path / "run"))


def _header(data: bytes) -> tuple[int, bytes]:
    n = struct.unpack("<Q", data[:8])[0]
    return n, data[8 : 8 + n]


def _damage(kind: str, data: bytes) -> bytes:
    n, header = _header(data)
    return {
        "empty": lambda: b"",
        "truncated": lambda: data[: len(data) // 2],
        "last_bytes_cut": lambda: data[:-4],
        "header_length": lambda: struct.pack("<Q", 1 << 50) + data[8:],
        "header_json": lambda: data[:8] + b"#" * n + data[8 + n :],
        "dtype": lambda: data[:8] + header.replace(b'"F32"', b'"F64"') + data[8 + n :],
        "zeros": lambda: bytes(len(data)),
    }[kind]()


DAMAGE = ["empty", "truncated", "last_bytes_cut", "header_length", "header_json", "dtype", "zeros"]


@pytest.mark.parametrize("kind", DAMAGE)
def test_damaged_model_file_is_a_checkpoint_error(kind, run, capsys):
    path = run / "model.safetensors"
    path.write_bytes(_damage(kind, path.read_bytes()))
    with pytest.raises(CheckpointError, match="model.safetensors"):
        posemb.load(run)
    assert main(["generate", str(run), "--prompt", "ab|"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "model.safetensors" in err and "Traceback" not in err


def test_generate_on_a_truncated_checkpoint_exits_2_with_one_line(run):
    path = run / "model.safetensors"
    path.write_bytes(path.read_bytes()[:1000])
    line = assert_clean_error(
        run_posemb("generate", run, "--prompt", "ab|", "--max-new-tokens", "4")
    )
    assert "model.safetensors" in line and "corrupted" in line


def test_weights_of_another_shape_are_a_checkpoint_error(run, tmp_path):
    other = tmp_path / "other"
    train(fast_config(train__max_steps=1, model__d_model=16, data__source="synthetic:copy"), other)
    shutil.copy(other / "model.safetensors", run / "model.safetensors")
    with pytest.raises(CheckpointError, match="shape"):
        posemb.load(run)


@pytest.mark.parametrize("name", ["model.safetensors", "config.json", "tokenizer.json"])
def test_missing_files_are_checkpoint_errors(name, run, capsys):
    (run / name).unlink()
    with pytest.raises(CheckpointError, match=name.split(".")[0]):
        posemb.load(run)
    assert main(["generate", str(run), "--prompt", "ab|"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_damaged_config_json_is_a_checkpoint_error(run):
    (run / "config.json").write_text('{"model": {"n_layer": 1,', encoding="utf-8")
    with pytest.raises(CheckpointError, match="config.json"):
        posemb.load(run)


@pytest.mark.parametrize(
    "name, damage",
    [
        ("trainer_state.json", lambda b: b[: len(b) // 3]),
        ("optimizer.safetensors", lambda b: b[: len(b) // 2]),
    ],
)
def test_resume_from_damaged_trainer_files_exits_2(name, damage, run, capsys):
    path = run / name
    path.write_bytes(damage(path.read_bytes()))
    assert main(["train", "--resume", str(run), "--set", "train.max_steps=5"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and name in err


# -- nothing is unpickled -------------------------------------------------------------------------
UNPICKLERS = re.compile(
    r"torch\.load\(|pickle\.loads?\(|allow_pickle\s*=\s*True|weights_only\s*=\s*False|"
    r"\bdill\b|\bjoblib\b|\bexec\(|(?<![.\w])eval\("
)


def test_no_unpickling_or_code_execution_in_the_source_tree():
    hits = [
        f"{p.relative_to(SRC)}:{i}: {line.strip()}"
        for p in sorted(SRC.rglob("*.py"))
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if UNPICKLERS.search(line)
    ]
    assert not hits, "\n".join(hits)


def test_load_and_resume_never_unpickle(run, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("something was unpickled")

    for mod, name in ((torch, "load"), (pickle, "load"), (pickle, "loads"), (pickle, "Unpickler")):
        monkeypatch.setattr(mod, name, forbidden)
    posemb.load(run)
    train(None, run, resume=True, overrides={"train.max_steps": 4})


# -- config.json -------------------------------------------------------------------------------
def test_config_json_round_trip(tmp_path):
    cfg = build_config(
        "tiny",
        {
            "model.position": "t5",
            "model.position_options": {"num_buckets": 16, "max_distance": 64},
            "model.norm": "rmsnorm",
            "model.bias": False,
            "model.dropout": 0.1,
            "model.d_ff": 96,
            "train.lr": 3e-4,
            "train.positions": "offset",
            "train.decay_positions": True,
            "train.compile": "false",
            "data.tokenizer": "char",
            "data.val_fraction": 0.25,
        },
    )
    write_config(tmp_path, cfg, {"kind": "char", "vocab_size": 77})
    data = json.loads((tmp_path / "config.json").read_text(encoding="utf-8"))
    assert data["schema_version"] == 1 and data["tokenizer"] == {"kind": "char", "vocab_size": 77}
    assert read_config(tmp_path) == cfg
    assert RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_loaded_model_has_the_trained_config(trained):
    model, tok = posemb.load(trained)
    assert model.config == read_config(trained).model
    assert tok.kind == "byte" and not model.training


def test_config_json_from_another_schema_or_with_unknown_keys_is_refused(run):
    data = json.loads((run / "config.json").read_text(encoding="utf-8"))
    (run / "config.json").write_text(json.dumps({**data, "schema_version": 99}), encoding="utf-8")
    with pytest.raises(ValueError, match="schema_version 99"):
        posemb.load(run)
    data["train"]["max_step"] = 3
    (run / "config.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="max_steps"):
        posemb.load(run)


def test_resume_applies_changed_optimizer_settings(tmp_path):
    # the saved param_groups used to win over the settings: `--resume --set train.weight_decay=0
    # train.beta2=0.99` trained on with the old decay and betas, silently
    from posemb.model.optim import build_optimizer
    from posemb.runs.checkpoint import load_optimizer_state, optimizer_tensors

    cfg = fast_config()
    model = posemb.Transformer(cfg.model)
    opt = build_optimizer(model, **cfg.train.optimizer_options())
    model(torch.randint(0, 256, (2, 8)), labels=torch.randint(0, 256, (2, 8))).loss.backward()
    opt.step()
    tensors, meta = optimizer_tensors(opt)
    meta = json.loads(json.dumps(meta))  # as stored in trainer_state.json

    changed = fast_config(train__weight_decay=0.0, train__beta2=0.99)
    fresh = build_optimizer(model, **changed.train.optimizer_options())
    load_optimizer_state(fresh, tensors, meta)
    assert [g["weight_decay"] for g in fresh.param_groups] == [0.0, 0.0]
    assert all(tuple(g["betas"]) == (0.9, 0.99) for g in fresh.param_groups)
    p = next(model.parameters())
    assert torch.equal(
        fresh.state[p]["exp_avg"], opt.state[p]["exp_avg"]
    )  # the moments are restored

    regrouped = build_optimizer(
        model, **fast_config(train__decay_positions=True).train.optimizer_options()
    )
    with pytest.raises(CheckpointError, match="decay_positions"):
        load_optimizer_state(regrouped, tensors, meta)
