"""Weights files carry a content hash, checked on load (docs/DESIGN.md, "The run folder").

safetensors has no checksum: a flipped bit in the tensor data loads silently. Every
weights file a checkpoint writes records the sha256 of its tensors in its header; every
read of a run's weights through posemb/runs/weights.py checks it (``posemb.load``, generate,
``train --resume``). ``verify=False`` / ``POSEMB_VERIFY=0`` skip it; files written before
hashes were recorded still load, with one note. Weights files get the run's file mode
(0666 less the umask), not safetensors' 0600.
"""

from __future__ import annotations

import json
import os
import stat
import struct
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import posemb
from kit import fast_config
from posemb.cli.main import main
from posemb.runs import CheckpointError
from posemb.runs.weights import HASH_KEY, content_sha256
from posemb.train import train

WEIGHTS = ("model.safetensors", "optimizer.safetensors")


def flip_data_bit(path: Path, fraction: float = 0.5) -> None:
    """Flip one bit inside the tensor data (past the JSON header)."""
    raw = bytearray(path.read_bytes())
    (header_len,) = struct.unpack("<Q", raw[:8])
    start = 8 + header_len
    where = start + int((len(raw) - start) * fraction)
    raw[where] ^= 0x10
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("name", WEIGHTS)
def test_each_weights_file_records_the_hash_of_its_tensors(run, name):
    with safe_open(str(run / name), "pt") as f:
        recorded = f.metadata()[HASH_KEY]
    assert recorded == content_sha256(load_file(str(run / name)))


def test_a_flipped_bit_is_refused_on_load(run, monkeypatch):
    flip_data_bit(run / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"model\.safetensors does not match the sha256"):
        posemb.load(run)
    model, _ = posemb.load(run, verify=False)  # skipping is the user's choice
    monkeypatch.setenv("POSEMB_VERIFY", "0")
    posemb.load(run)


def test_generate_on_a_corrupted_file_exits_2_naming_it(run, capsys):
    flip_data_bit(run / "model.safetensors", 0.9)
    assert main(["generate", str(run), "--prompt", "ab"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "model.safetensors does not match the sha256" in err and "POSEMB_VERIFY=0" in err


@pytest.mark.parametrize("name", WEIGHTS)
def test_resume_from_a_corrupted_file_exits_2_naming_it(run, capsys, name):
    flip_data_bit(run / name, 0.3)
    before = (run / name).read_bytes()
    assert main(["train", "--resume", str(run), "--set", "train.max_steps=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{name} does not match the sha256" in err
    assert (run / name).read_bytes() == before  # nothing was trained on top of it


def test_runs_written_before_hashes_still_load_with_one_note(run, capsys):
    path = run / "model.safetensors"
    tensors = load_file(str(path))
    save_file(tensors, str(path), metadata={"format": "pt", "step": "2"})  # no hash
    for _ in range(2):
        model, _ = posemb.load(run)
    err = capsys.readouterr().err
    assert err.count("no recorded content hash") == 1, err
    assert torch.equal(model.wte.weight.detach(), tensors["wte.weight"])


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_weights_files_get_the_run_file_mode(tmp_path, umask):
    old = os.umask(umask)
    try:
        train(fast_config(train__max_steps=1, data__source="synthetic:copy"), tmp_path / "r")
    finally:
        os.umask(old)
    want = 0o666 & ~umask
    for name in (*WEIGHTS, "trainer_state.json", "config.json"):
        assert stat.S_IMODE((tmp_path / "r" / name).stat().st_mode) == want, name


def test_the_hash_covers_names_dtypes_and_shapes():
    a = {"w": torch.zeros(2, 3)}
    assert content_sha256(a) != content_sha256({"v": torch.zeros(2, 3)})
    assert content_sha256(a) != content_sha256({"w": torch.zeros(3, 2)})
    assert content_sha256(a) != content_sha256({"w": torch.zeros(2, 3, dtype=torch.float64)})
    assert content_sha256(a) == content_sha256({"w": torch.zeros(3, 2).T})  # values, not strides
    assert json.dumps(content_sha256(a))  # a plain hex string
