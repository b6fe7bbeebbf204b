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


@pytest.mark.parametrize("threshold, compiles", [(None, False), (0.0, True)])
def test_auto_compiles_on_the_cpu_only_for_long_runs(monkeypatch, tmp_path, threshold, compiles):
    """train.compile=auto: a short CPU run (the tests', the demo's) stays eager; a run of at
    least AUTO_COMPILE_CPU_FLOPS is compiled after the self-check."""
    from posemb.train import session

    checked, compiled = [], []
    monkeypatch.setattr(
        session,
        "check_compile",
        lambda *a, **k: checked.append(a) or compile_check.CompileCheck(True),
    )
    monkeypatch.setattr(session, "compile_model", lambda m: compiled.append(m) or m)
    if threshold is not None:
        monkeypatch.setattr(session, "AUTO_COMPILE_CPU_FLOPS", threshold)
    cfg = fast_config(train__max_steps=2, train__compile="auto")
    train(cfg, tmp_path / "r")
    assert (len(checked), len(compiled)) == ((1, 1) if compiles else (0, 0))
