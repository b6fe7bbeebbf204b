"""A run's damaged files are refused naming the file and the field, before anything changes
(issue 25); what a kill leaves is cleaned by the next writer (docs/DESIGN.md, "Reliability
rules").

- ``trainer_state.json``: every field ``--resume`` restores is checked (type and range):
  ``step: -7`` used to train and rewrite the metrics history, ``torch_rng: "AAAA"`` was an
  unexpected RuntimeError, ``data_rng: "x"`` a bare "Expecting value".
- ``config.json`` without its ``model`` settings is a damaged run's config, not weights that
  "do not match".
- ``--resume`` removes the temporary files a killed writer left (safetensors' ``.tmpXXXXXX``,
  an interrupted atomic write's ``.NAME.XXXXXXXX.tmp``); a new run accepts them in its --out.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import posemb
from kit import FAST_SETS, run_posemb
from posemb.cli.main import main
from posemb.runs import CheckpointError
from posemb.runs.checkpoint import resume_state


def damage(run: Path, **fields) -> None:
    path = run / "trainer_state.json"
    state = json.loads(path.read_text())
    for key, value in fields.items():
        if value is KeyError:
            del state[key]
        else:
            state[key] = value
    path.write_text(json.dumps(state))


def resume_error(capsys, run: Path) -> str:
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--set", "train.max_steps=4"]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("posemb: error: "), err
    return lines[0]


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("step", -7, "must be an integer >= 0, got -7"),
        ("step", "3", "must be an integer >= 0, got '3'"),
        ("step", KeyError, "must be an integer >= 0, got None"),
        ("torch_rng", "AAAA", "must be a base64 RNG state of"),
        ("torch_rng", "not base64!", "must be a base64 RNG state of"),
        ("data_rng", "x", "must be a list of generator states, got 'x'"),
        ("data_rng", ["x"], "is not a numpy generator state"),
        ("data_rng", [{"bit_generator": "PCG64"}], "is not a numpy generator state"),
        ("cuda_rng", 5, "must be a base64 RNG state"),
        ("world_size", 0, "must be an integer >= 1"),
        ("optimizer", None, "must hold the optimizer's 'param_groups'"),
    ],
)
def test_a_damaged_trainer_state_is_refused_naming_file_and_field(run, capsys, field, value, why):
    metrics = (run / "metrics.jsonl").read_bytes()
    weights = (run / "model.safetensors").read_bytes()
    damage(run, **{field: value})
    line = resume_error(capsys, run)
    shown = "data_rng[0]" if isinstance(value, list) else field
    assert "trainer_state.json" in line and f"{shown!r}" in line and why in line, line
    assert "the trainer state is damaged" in line
    assert (run / "metrics.jsonl").read_bytes() == metrics  # history not rewritten
    assert (run / "model.safetensors").read_bytes() == weights


def test_a_sound_trainer_state_passes(pristine):
    assert resume_state(pristine)["step"] == 2


def test_a_negative_step_never_trains_without_a_warning(run):
    damage(run, step=-7)
    proc = run_posemb("train", "--resume", run, "--set", "train.max_steps=4")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        next(line for line in proc.stderr.splitlines() if line.startswith("posemb: error"))
    ], proc.stderr  # one line: no TqdmWarning, no training


def test_a_config_without_its_model_settings_is_called_damaged(run, capsys):
    config = json.loads((run / "config.json").read_text())
    del config["model"]
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="has no 'model' settings.*config is damaged"):
        posemb.load(run)
    capsys.readouterr()
    assert main(["generate", str(run), "--prompt", "a", "--max-new-tokens", "2"]) == 2
    err = capsys.readouterr().err
    assert "has no 'model' settings" in err and "does not match" not in err


# -- what a kill leaves ------------------------------------------------------------------------
KILLED_WRITES = (".tmpAb3xYz", ".checkpoint.commit.k2j4h5g6.tmp", ".config.json.abcdefgh.tmp")


def test_resume_removes_the_temporary_files_a_killed_writer_left(run):
    for name in KILLED_WRITES:
        (run / name).write_bytes(b"x" * 1000)  # an optimizer's worth, in the real case
    (run / ".notes.txt").write_text("the user's own hidden file")
    proc = run_posemb("train", "--resume", run, "--set", "train.max_steps=3")
    assert proc.returncode == 0, proc.stderr
    assert not any((run / name).exists() for name in KILLED_WRITES)
    assert (run / ".notes.txt").exists()


def test_a_new_run_accepts_a_killed_starts_temporary_files(tmp_path, corpus):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".tmpAb3xYz").write_bytes(b"x")  # a kill during the first checkpoint's weights
    (out / "config.json").write_text("{}")
    args = ["train", "--preset", "tiny", "--set", *FAST_SETS, "train.max_steps=1"]
    proc = run_posemb(*args, "--data", corpus, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert not (out / ".tmpAb3xYz").exists()
