"""Checkpoints written by earlier versions of posemb still load, with identical outputs.

tests/fixtures/checkpoints/ holds three tiny runs written before issue 10's refactor (a
learned table, Shaw's per-layer tables, T5 buckets) and the logits each gave then; the
recipe is make_checkpoints.py beside them. A change that renames a state-dict key, drops a
parameter or alters the forward pass fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import posemb
from posemb.runs.weights import state_dict_for_save

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoints"
RUNS = ("learned", "shaw", "t5")


def load(name: str):
    model, _ = posemb.load(FIXTURES / name, verify=True)  # also checks the recorded sha256
    return model, load_file(str(FIXTURES / name / "expected.safetensors"))


@pytest.mark.parametrize("name", RUNS)
def test_old_checkpoint_loads_every_tensor_under_its_old_name(name):
    model, _ = load(name)
    stored = load_file(str(FIXTURES / name / "model.safetensors"))
    saved = state_dict_for_save(model)
    assert sorted(saved) == sorted(stored)
    assert all(torch.equal(saved[k], stored[k]) for k in stored)


@pytest.mark.parametrize("name", RUNS)
def test_old_checkpoint_gives_the_same_logits_bit_for_bit(name):
    # run in float64 and rounded to float32: the same bits on every machine (see
    # make_checkpoints.py), so any change to the computation shows
    model, expected = load(name)
    with torch.no_grad():
        logits = model.double()(expected["input_ids"]).logits.float()
    assert torch.equal(logits, expected["logits_from_float64"])


@pytest.mark.parametrize("name", RUNS)
def test_old_checkpoint_gives_the_same_float32_logits(name):
    # float32 sums differ in their last bits between instruction sets (measured: up to
    # 1.9e-6 on logits up to 7.8 between AVX-512 and unvectorised kernels), so within 1e-5
    model, expected = load(name)
    with torch.no_grad():
        logits = model(expected["input_ids"]).logits
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits, expected["logits"], rtol=0, atol=1e-5)
