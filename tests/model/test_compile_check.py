"""The compiled-kernel self-check (model/compile_check.py) and the trainer's use of it.

torch.compile'd CPU kernels can be wrong on some instruction sets; before training a
compiled model on the CPU, posemb compares a compiled one-block copy with eager and falls
back to eager, saying why, when they disagree. The disagreement is simulated here (a
"compiler" that returns wrong logits, or one that fails) so these tests run on every
machine; the tests marked ``compiled`` run the real compiler (and run again under
``ATEN_CPU_CAPABILITY=avx2`` in CI). The trainer's side: tests/train/test_compile_fallback.py.
"""

from __future__ import annotations

import os

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
    assert check_compile(cfg.replace(dropout=0.1)) == CompileCheck(True)  # checked without
    assert len(calls) == 1
    check_compile(cfg.replace(n_layer=5))  # another model: checked again
    check_compile(cfg, shape=(4, 32))  # another batch shape (the trainer's): checked again
    check_compile(cfg, shape=(4, 32), positions=torch.int64)  # with positions: again
    assert len(calls) == 4
    assert check_compile(cfg, shape=(4, 32)).ok and len(calls) == 4


def test_the_check_runs_the_model_as_the_trainer_calls_it(monkeypatch):
    """The compiled copy sees the trainer's batch shape, its positions, and a contiguous
    target per position (the trainer's batch), so the trainer's compile reuses the check's."""
    seen = []

    class Recording(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, ids, positions=None, targets=None):
            aligned = targets.shape == ids.shape and targets.is_contiguous()
            seen.append((tuple(ids.shape), positions, aligned))
            return self.model(ids, positions=positions, targets=targets)

    monkeypatch.setattr(compile_check, "_compile", Recording)
    cfg = ModelConfig.preset("micro", dropout=0.1)
    assert check_compile(cfg, shape=(3, 24), positions=torch.int64).ok  # dropout is off in the copy
    ((shape, positions, aliased),) = seen
    assert shape == (3, 24) and aliased
    assert positions.dtype == torch.int64 and positions.shape == (3, 24)
    # train.positions=stretch passes fractional float positions: so does the check
    assert check_compile(cfg, shape=(3, 24), positions=torch.float32).ok
    positions = seen[-1][1]
    assert positions.dtype == torch.float32 and (positions.frac() != 0).any()


@pytest.mark.slow
@pytest.mark.compiled
@pytest.mark.parametrize("scheme", ["learned", "alibi"])
def test_the_real_compiler_check(scheme):
    """Whatever torch does on this machine, the verdict is a pass or a reasoned fail."""
    result = check_compile(ModelConfig.preset("micro", position=scheme))
    assert result.ok or result.reason.startswith("torch.compile")
    assert result.ok == (result.reason == "")


def test_each_instruction_set_gets_its_own_inductor_cache(monkeypatch, tmp_path):
    """Inductor's cache is keyed without the instruction set: kernels built under AVX2 must
    never be handed to an AVX-512 process (or back), so each gets its own folder."""
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    native = compile_check.use_isa_cache()
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(native)
    assert native.parent == compile_check._default_cache_dir()
    capability = torch.backends.cpu.get_cpu_capability().lower()
    assert native.name.startswith(f"isa-{capability}-")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    assert compile_check.isa_cache_dir() != native
    monkeypatch.delenv("ATEN_CPU_CAPABILITY")
    assert compile_check.isa_cache_dir() == native  # stable


def test_a_cache_folder_of_the_users_own_is_kept(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    assert compile_check.use_isa_cache() == tmp_path
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path)
    # torch's own default (set by torch itself once it has compiled) is not a user's choice
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(compile_check._default_cache_dir()))
    assert compile_check.use_isa_cache() == compile_check.isa_cache_dir()
