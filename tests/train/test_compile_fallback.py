"""``train.compile=true`` on the CPU goes through the compiled-kernel self-check
(model/compile_check.py): where torch's compiled kernels disagree with eager, the run is
the eager run, bit for bit, with one warning saying why."""

from __future__ import annotations

import pytest
import torch

from kit import assert_same_tensors, fast_config, run_tensors
from posemb.model import compile_check
from posemb.model.compile_check import check_compile
from posemb.train import train
from posemb.train import trainer as trainer_mod


class WrongLogits(torch.nn.Module):
    """Stands for a miscompiled model: the logits are off by 1e-2."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, *args, **kwargs):
        out = self.model(*args, **kwargs)
        out.logits = out.logits + 1e-2
        return out


@pytest.fixture(autouse=True)
def _fresh_results(monkeypatch):
    monkeypatch.setattr(compile_check, "_RESULTS", {})


def test_training_falls_back_to_eager_with_one_warning(monkeypatch, capsys, tmp_path):
    """train.compile=true on a CPU whose compiled kernels are wrong: the run is the eager
    run, bit for bit, and stderr says why once."""
    monkeypatch.setattr(compile_check, "_compile", WrongLogits)
    compiled = []
    monkeypatch.setattr(trainer_mod.torch, "compile", lambda m, **k: compiled.append(m) or m)
    train(fast_config(train__max_steps=3, train__compile="true"), tmp_path / "c")
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "training eagerly" in warnings[0], err
    assert "disagree with eager" in warnings[0]
    assert compiled == []  # the model was not compiled
    train(fast_config(train__max_steps=3, train__compile="false"), tmp_path / "e")
    assert_same_tensors(run_tensors(tmp_path / "c"), run_tensors(tmp_path / "e"))


@pytest.mark.slow
@pytest.mark.compiled
def test_compiled_cpu_training_runs_after_the_check(tmp_path, capsys):
    result = train(fast_config(train__max_steps=2, train__compile="true"), tmp_path / "r")
    assert result.step == 2 and torch.isfinite(torch.tensor(result.train_loss))
    verdict = check_compile(fast_config().model)  # cached: the trainer's own verdict
    err = capsys.readouterr().err
    assert ("training eagerly" in err) == (not verdict.ok)


class Compiled(torch.nn.Module):
    """Stands for torch.compile's wrapper: the same module behind ``_orig_mod``."""

    def __init__(self, model):
        super().__init__()
        self._orig_mod = model

    def forward(self, *args, **kwargs):
        return self._orig_mod(*args, **kwargs)


@pytest.fixture
def fake_compile(monkeypatch, tmp_path):
    """The policy's compilation and check, counted and instant; its own cost records."""
    from posemb.train import compile_policy

    calls = {"checked": 0, "compiled": 0}

    def check(*a, **k):
        calls["checked"] += 1
        return compile_check.CompileCheck(True)

    def compile_(m):
        calls["compiled"] += 1
        return Compiled(m)

    monkeypatch.setattr(compile_policy, "check_compile", check)
    monkeypatch.setattr(compile_policy, "compile_model", compile_)
    monkeypatch.setattr(compile_policy, "use_isa_cache", lambda: tmp_path / "inductor")
    return compile_policy, calls


def decision(run_dir):
    from posemb.runs import read_trainer_state

    return read_trainer_state(run_dir)["compile"]


def test_auto_leaves_a_run_too_short_to_time_eager(fake_compile, tmp_path, capsys):
    policy, calls = fake_compile
    steps = 2 * (policy.WARMUP + policy.TIMED)
    train(fast_config(train__max_steps=steps, train__compile="auto"), tmp_path / "r")
    d = decision(tmp_path / "r")
    assert calls == {"checked": 0, "compiled": 0} and d["compiled"] is False
    assert "too few to time" in d["reason"] and d["eager_step_s"] is None
    assert capsys.readouterr().out.count("compile: eager: ") == 1


def test_auto_stays_eager_where_compiling_cannot_pay_back(
    fake_compile, monkeypatch, tmp_path, capsys
):
    """The most a compilation could save (MAX_GAIN of the timed eager steps, over the steps
    left) against its expected cost: a cost no run of 40 steps can repay keeps it eager,
    without compiling anything."""
    policy, calls = fake_compile
    monkeypatch.setattr(policy, "COLD_COMPILE_S", 1e9)
    train(fast_config(train__max_steps=40, train__compile="auto"), tmp_path / "r")
    d = decision(tmp_path / "r")
    assert calls == {"checked": 0, "compiled": 0} and d["compiled"] is False
    assert d["eager_step_s"] > 0 and d["cache"] == "cold" and d["expected_compile_s"] == 1e9
    assert d["at_step"] == policy.WARMUP + policy.TIMED and d["steps_left"] == 40 - d["at_step"]
    assert "would save at most" in d["reason"] and "Inductor cache cold" in d["reason"]
    assert capsys.readouterr().out.count("compile: eager: compiling would save") == 1


@pytest.mark.parametrize("min_gain, kept", [(-1.0, True), (1.0, False)])
def test_auto_compiles_then_keeps_it_only_where_the_compiled_steps_are_faster(
    fake_compile, monkeypatch, tmp_path, min_gain, kept
):
    """A compilation expected to pay (cost 0) happens after the self-check; the compiled
    steps are timed against the eager ones and the run goes back to eager unless they are
    MIN_GAIN faster. The measured cost is kept in the cache folder: the next run knows the
    cache is warm."""
    policy, calls = fake_compile
    monkeypatch.setattr(policy, "COLD_COMPILE_S", 0.0)
    monkeypatch.setattr(policy, "MIN_GAIN", min_gain)
    train(fast_config(train__max_steps=40, train__compile="auto"), tmp_path / "r")
    d = decision(tmp_path / "r")
    assert calls == {"checked": 1, "compiled": 1}
    assert d["compiled"] is kept and d["compiled_step_s"] > 0 and d["compile_s"] >= 0
    assert ("not faster here" in d["reason"]) is not kept
    train(fast_config(train__max_steps=40, train__compile="auto"), tmp_path / "again")
    assert decision(tmp_path / "again")["cache"] == "warm"
