"""``train.compile=true`` on the CPU goes through the compiled-kernel self-check
(model/compile_check.py): where torch's compiled kernels disagree with eager, the run is
the eager run, bit for bit, with one warning saying why."""

from __future__ import annotations

import json

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
    """Stands for torch.compile's wrapper: the same module behind ``_orig_mod``; counts
    its calls in ``calls["forward"]``."""

    def __init__(self, model, calls):
        super().__init__()
        self._orig_mod = model
        self.calls = calls

    def forward(self, *args, **kwargs):
        self.calls["forward"] += 1
        return self._orig_mod(*args, **kwargs)


@pytest.fixture
def fake_compile(monkeypatch, tmp_path):
    """The policy's compilation and check, counted and instant; its own cost records."""
    from posemb.train import compile_policy

    calls = {"checked": 0, "compiled": 0, "forward": 0}

    def check(*a, **k):
        calls["checked"] += 1
        return compile_check.CompileCheck(True)

    def compile_(m):
        calls["compiled"] += 1
        return Compiled(m, calls)

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
    assert calls == {"checked": 0, "compiled": 0, "forward": 0} and d["compiled"] is False
    assert "too few to time" in d["reason"] and d["eager_step_s"] is None
    assert capsys.readouterr().out.count("compile: eager: ") == 1


def test_auto_stays_eager_where_compiling_cannot_pay_back(
    fake_compile, monkeypatch, tmp_path, capsys
):
    """The saving expected from compiling (GAIN_PRIOR of the timed eager steps, over the
    steps left, while no gain was measured here) against its expected cost: a cost no run of
    40 steps can repay keeps it eager, without compiling anything."""
    policy, calls = fake_compile
    monkeypatch.setattr(policy, "COLD_COMPILE_S", 1e9)
    train(fast_config(train__max_steps=60, train__compile="auto"), tmp_path / "r")
    d = decision(tmp_path / "r")
    assert calls == {"checked": 0, "compiled": 0, "forward": 0} and d["compiled"] is False
    assert d["eager_step_s"] > 0 and d["cache"] == "cold" and d["expected_compile_s"] == 1e9
    assert d["at_step"] == policy.WARMUP + policy.TIMED and d["steps_left"] == 60 - d["at_step"]
    assert d["expected_gain"] == policy.GAIN_PRIOR and d["gain_from"] == "assumed"
    assert "would save about" in d["reason"] and "Inductor cache cold" in d["reason"]
    assert f"({policy.GAIN_PRIOR:.0%} of " in d["reason"]
    assert "assumed until measured here" in d["reason"]
    assert capsys.readouterr().out.count("compile: eager: compiling would save") == 1


@pytest.mark.parametrize("min_gain, kept", [(-1.0, True), (1.0, False)])
def test_auto_compiles_then_keeps_it_only_where_the_compiled_steps_are_faster(
    fake_compile, monkeypatch, tmp_path, min_gain, kept
):
    """A compilation expected to pay (cost 0) happens after the self-check; then, after one
    warm-up step, compiled and eager steps are taken in turn (TIMED of each) and the run
    goes on compiled only if those were MIN_GAIN faster. The measured cost is kept in the
    cache folder: the next run knows the cache is warm."""
    policy, calls = fake_compile
    monkeypatch.setattr(policy, "COLD_COMPILE_S", 0.0)
    monkeypatch.setattr(policy, "MIN_GAIN", min_gain)
    steps = 60
    train(fast_config(train__max_steps=steps, train__compile="auto"), tmp_path / "r")
    d = decision(tmp_path / "r")
    assert calls["checked"] == 1 and calls["compiled"] == 1
    assert d["compiled"] is kept and d["compiled_step_s"] > 0 and d["compile_s"] >= 0
    assert f"({d['measured_gain']:+.0%})" in d["reason"]
    assert ("not faster here" in d["reason"]) is not kept
    assert f"{policy.TIMED} of each in turn" in d["reason"]
    # eager steps before the decision; then a compiled warm-up, one timed compiled step,
    # and pairs in turn (eager, eager, compiled, compiled, ...), the second of each timed
    decided = policy.WARMUP + policy.TIMED
    comparing = 2 + 2 * (2 * policy.TIMED - 1)
    compiled_then = 2 + 2 * (policy.TIMED - 1)
    after = steps - decided - comparing  # steps after the comparison
    assert after > 0
    assert calls["forward"] == compiled_then + (after if kept else 0)
    train(fast_config(train__max_steps=60, train__compile="auto"), tmp_path / "again")
    assert decision(tmp_path / "again")["cache"] == "warm"


def cost_record(tmp_path) -> dict:
    """The one figures file the policy keeps in its (fake) Inductor cache folder."""
    (path,) = (tmp_path / "inductor" / "posemb-compile-costs").iterdir()
    return json.loads(path.read_text())


def test_the_measured_gain_is_recorded_and_decides_the_next_run(
    fake_compile, monkeypatch, tmp_path
):
    """A compiled run records the gain it measured beside its compile seconds; the next run
    of the same model and shape expects that gain instead of the prior. A gain measured at
    or below zero keeps the next run eager even with a free (warm) compilation: it is not
    compiled and timed again only to be reverted."""
    policy, calls = fake_compile
    monkeypatch.setattr(policy, "COLD_COMPILE_S", 0.0)
    monkeypatch.setattr(policy, "MIN_GAIN", -1.0)
    train(fast_config(train__max_steps=60, train__compile="auto"), tmp_path / "r")
    first = decision(tmp_path / "r")
    figures = cost_record(tmp_path)
    assert first["gain_from"] == "assumed" and set(figures) == {"cold_s", "gain"}
    measured = first["measured_gain"]
    assert figures["gain"] == pytest.approx(measured, abs=1e-4)
    train(fast_config(train__max_steps=60, train__compile="auto"), tmp_path / "again")
    again = decision(tmp_path / "again")
    assert again["gain_from"] == "measured" and again["cache"] == "warm"
    assert again["expected_gain"] == pytest.approx(min(max(measured, 0.0), 1.0), abs=1e-4)

    (path,) = (tmp_path / "inductor" / "posemb-compile-costs").iterdir()
    path.write_text(json.dumps({"warm_s": 0.0, "gain": -0.03}))
    checked = calls["checked"]
    train(fast_config(train__max_steps=60, train__compile="auto"), tmp_path / "lost")
    lost = decision(tmp_path / "lost")
    assert lost["compiled"] is False and calls["checked"] == checked
    assert lost["expected_gain"] == 0.0 and "0% of " in lost["reason"]
    assert "as measured here before" in lost["reason"]


@pytest.mark.parametrize(
    "text", ["not json", "[1, 2]", '{"cold_s": "NaN", "gain": "x"}', '{"gain": null}']
)
def test_a_damaged_record_counts_as_nothing_measured(fake_compile, monkeypatch, tmp_path, text):
    """A figures file that is not a JSON object of finite numbers is read as no record:
    the cold cost and the prior, never an error or a string taken for a number."""
    policy, _ = fake_compile
    cfg = fast_config(train__max_steps=60, train__compile="auto")
    monkeypatch.setattr(policy, "COLD_COMPILE_S", 0.0)
    train(cfg, tmp_path / "first")  # compiles: writes this model and shape's record
    (path,) = (tmp_path / "inductor" / "posemb-compile-costs").iterdir()
    path.write_text(text)
    monkeypatch.setattr(policy, "COLD_COMPILE_S", 1e9)
    train(cfg, tmp_path / "r")
    d = decision(tmp_path / "r")
    assert d["cache"] == "cold" and d["expected_compile_s"] == 1e9
    assert d["gain_from"] == "assumed" and d["expected_gain"] == policy.GAIN_PRIOR


def test_auto_never_compiles_a_run_that_ends_before_the_comparison(
    fake_compile, monkeypatch, tmp_path
):
    """A compilation that is free and expected to pay still needs the steps that compare
    compiled with eager: fewer left, and the run stays eager, saying why."""
    policy, calls = fake_compile
    monkeypatch.setattr(policy, "COLD_COMPILE_S", 0.0)
    steps = policy.WARMUP + policy.TIMED + policy.COMPARING
    train(fast_config(train__max_steps=steps, train__compile="auto"), tmp_path / "r")
    d = decision(tmp_path / "r")
    assert calls["compiled"] == 0 and d["compiled"] is False
    assert f"{policy.COMPARING} steps left: too few to compare" in d["reason"]
