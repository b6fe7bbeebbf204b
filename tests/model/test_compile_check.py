"""The compiled-kernel self-check (model/compile_check.py) and the trainer's use of it.

torch.compile'd CPU kernels can be wrong on some instruction sets; before training a
compiled model on the CPU, posemb compares a compiled one-block copy with eager and falls
back to eager, saying why, when they disagree. The disagreement is simulated here (a
"compiler" that returns wrong logits, or one that fails) so these tests run on every
machine; the tests marked ``compiled`` run the real compiler (and run again under
``ATEN_CPU_CAPABILITY=avx2`` in CI). The trainer's side: tests/train/test_compile_fallback.py.
"""

from __future__ import annotations

import pytest
import torch

from posemb import ModelConfig
from posemb.model import compile_check
from posemb.model.compile_check import CompileCheck, check_compile


class WrongLogits(torch.nn.Module):
    """Stands for a miscompiled model: the logits are off by 1e-2."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, *args, **kwargs):
        out = self.model(*args, **kwargs)
        out.logits = out.logits + 1e-2
        return out


def failing_compiler(model):
    raise RuntimeError("InductorError: no C++ compiler found\nsecond line")


@pytest.fixture(autouse=True)
def _fresh_results(monkeypatch):
    monkeypatch.setattr(compile_check, "_RESULTS", {})


def test_disagreeing_kernels_fail_the_check_with_the_reason(monkeypatch):
    monkeypatch.setattr(compile_check, "_compile", WrongLogits)
    before = torch.get_rng_state()
    result = check_compile(ModelConfig.preset("micro"))
    assert not result.ok
    assert "disagree with eager" in result.reason and "logits differ" in result.reason
    assert torch.equal(torch.get_rng_state(), before)  # the caller's RNG is untouched


def test_a_compiler_that_fails_fails_the_check(monkeypatch):
    monkeypatch.setattr(compile_check, "_compile", failing_compiler)
    result = check_compile(ModelConfig.preset("micro"))
    assert not result.ok and "no C++ compiler found" in result.reason
    assert "second line" not in result.reason  # one line


def test_agreeing_kernels_pass_and_the_verdict_is_cached_per_shape(monkeypatch):
    calls = []

    def identity_compiler(model):
        calls.append(model)
        return model

    monkeypatch.setattr(compile_check, "_compile", identity_compiler)
    cfg = ModelConfig.preset("micro")
    assert check_compile(cfg) == CompileCheck(True)
    assert check_compile(cfg.replace(n_layer=5)) == CompileCheck(True)  # same kernels
    assert len(calls) == 1
    check_compile(cfg.replace(d_model=64))  # another shape: checked again
    assert len(calls) == 2


@pytest.mark.slow
@pytest.mark.compiled
@pytest.mark.parametrize("scheme", ["learned", "alibi"])
def test_the_real_compiler_check(scheme):
    """Whatever torch does on this machine, the verdict is a pass or a reasoned fail."""
    result = check_compile(ModelConfig.preset("micro", position=scheme))
    assert result.ok or result.reason.startswith("torch.compile")
    assert result.ok == (result.reason == "")
