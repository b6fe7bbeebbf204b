"""Task sweeps trained to competence (issue 24): the instrument checked with oracles, the
trainer's stop at a held-out exact match (and its resumption), and the tables that never
read a model that did not learn its task as "0 past L"."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from kit import TINY
from posemb.data.synthetic import PAD, SEP, SyntheticTask
from posemb.eval.runner import EvalTask, evaluate_run
from posemb.experiments import sweep
from posemb.experiments.sweep import SweepPlan
from posemb.experiments.tasks import NOT_LEARNED, competence_table, run_task_sweeps, task_table
from posemb.runs import read_trainer_state, step_reached
from posemb.train import build_config, train
from posemb.train import trainer as trainer_module


class Oracle(nn.Module):
    """Solves copy or reverse from its input at any length, the way a causal model is read:
    the logits at position i put their mass on token i + 1 of the answer. ``wrong``: every
    answer token but ``right_but_last`` ones is off by one letter."""

    def __init__(self, task: str, wrong: bool = False, right_but_last: bool = False) -> None:
        super().__init__()
        self.task, self.wrong, self.right_but_last = task, wrong, right_but_last
        self.config = SimpleNamespace(causal=True)
        self.position_limit = None
        self.anchor = nn.Parameter(torch.zeros(()))  # where the evaluation finds the device

    def position_table(self):
        return None

    def forward(self, ids: torch.Tensor, **_) -> SimpleNamespace:
        b, t = ids.shape
        logits = torch.zeros(b, t, 256)
        for row in range(b):
            seq = ids[row].tolist()
            sep = seq.index(SEP)
            prompt = [v for v in seq[:sep] if v != PAD]
            answer = prompt if self.task == "copy" else prompt[::-1]
            for j, token in enumerate(answer):
                off = self.wrong or (self.right_but_last and j == len(answer) - 1)
                if sep + j < t:  # position sep + j predicts answer token j
                    logits[row, sep + j, token + 1 if off else token] = 30.0
        return SimpleNamespace(logits=logits)


@pytest.mark.parametrize("task", ["copy", "reverse"])
@pytest.mark.parametrize("L", [16, 15])  # 15: problems left-padded
def test_the_evaluation_scores_an_oracle_1_and_a_wrong_one_0_at_every_length(task, L):
    """The sweep's evaluation path (evaluate_run on the sweep's EvalTask): a model that solves
    the task at every length scores 1.0 at L, 2L and 4L, so a 0 there is the model's; one
    wrong at every answer token, or only at the last, scores 0."""
    cfg = build_config("tiny", {**TINY, "train.seq_len": L, "data.source": f"synthetic:{task}"})
    text = EvalTask(SyntheticTask(task), seed=3, examples=40)
    lengths = [L, 2 * L, 4 * L]
    right = evaluate_run(Oracle(task), cfg, text, lengths)
    assert [r["eval_len"] for r in right] == lengths
    assert all(r["accuracy"] == 1.0 and r["accuracy_se"] == 0.0 for r in right)
    assert all(r["loss"] < 1e-6 for r in right)
    wrong = evaluate_run(Oracle(task, wrong=True), cfg, text, lengths)
    assert all(r["accuracy"] == 0.0 and r["loss"] > 20 for r in wrong)
    last = evaluate_run(Oracle(task, right_but_last=True), cfg, text, lengths)
    assert all(r["accuracy"] == 0.0 for r in last)  # exact match: the whole answer
    # every answer token but one is right: the loss is that one token's share of 30 nats
    for r in last:
        n = (r["eval_len"] + 1 - 1) // 2
        assert r["loss"] == pytest.approx(30.0 / n, rel=1e-3)


def _stop_config(tmp_path, **settings):
    return build_config(
        "tiny",
        {
            **TINY,
            "data.source": "synthetic:copy",
            "train.seq_len": 8,
            "train.max_steps": 40,
            "train.eval_every": 5,
            "train.checkpoint_every": 100,
            "train.warmup_steps": 2,
            **settings,
        },
    )


def _scripted_accuracy(monkeypatch, values: list[float]) -> None:
    """The trainer's held-out evaluation returns these exact matches, one a call."""
    real = trainer_module.evaluate
    calls = iter(values)

    def fake(*args, **kwargs):
        loss, _ = real(*args, **kwargs)
        return loss, next(calls)

    monkeypatch.setattr(trainer_module, "evaluate", fake)


def test_training_stops_at_the_held_out_accuracy_and_a_resume_keeps_it(tmp_path, monkeypatch):
    _scripted_accuracy(monkeypatch, [0.2, 0.98, 0.995] + [0.0] * 20)
    run = tmp_path / "run"
    result = train(_stop_config(tmp_path, **{"train.stop_at_accuracy": 0.99}), run)
    assert result.step == 15 == step_reached(run)  # the third evaluation (step 15) reached it
    state = read_trainer_state(run)
    assert state["competence"] == {"step": 15, "val_accuracy": 0.995, "threshold": 0.99}
    assert trainer_module.competence(run)["step"] == 15
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["step"] == 15 and lines[-1]["competence"]["step"] == 15
    # a resume with the same threshold trains no further
    assert train(None, run, resume=True).step == 15
    # asked for more (a higher threshold), it trains on to max_steps
    result = train(None, run, resume=True, overrides={"train.stop_at_accuracy": 1.0})
    assert result.step == 40 and "competence" not in read_trainer_state(run)


def test_a_threshold_never_reached_trains_to_max_steps(tmp_path, monkeypatch):
    _scripted_accuracy(monkeypatch, [0.5] * 20)
    run = tmp_path / "run"
    assert train(_stop_config(tmp_path, **{"train.stop_at_accuracy": 0.99}), run).step == 40
    assert trainer_module.competence(run) is None


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan")])
def test_stop_at_accuracy_is_a_fraction(bad):
    with pytest.raises(ValueError, match="stop_at_accuracy"):
        build_config("tiny", {"train.stop_at_accuracy": bad})


def _record(scheme, L, acc, losses, step, train_len=8):
    return {
        "task": "copy",
        "scheme": scheme,
        "recipe": "start",
        "method": "none",
        "train_len": train_len,
        "eval_len": L,
        "accuracy": acc,
        "accuracy_se": 0.01,
        "example_losses": losses,
        "competence": {"threshold": 0.99, "step": step, "max_steps": 500},
    }


def test_competence_table_reads_past_L_only_the_seeds_that_learned():
    # rope learned at seeds 0 and 2 (steps 100, 300), not at seed 1; nope at none
    seeds = []
    for i, step in enumerate([100, None, 300]):
        acc_L = 1.0 if step else 0.4
        seeds.append(
            [
                _record("rope", 8, acc_L, [0.1, 0.3], step),
                _record("rope", 16, 0.5 if step else 0.0, [2.0, 4.0], step),
                _record("nope", 8, 0.1 * i, [3.0, 3.0], None),
                _record("nope", 16, 0.0, [3.2, 3.4], None),
            ]
        )
    header, rows = competence_table(seeds)
    assert header[4:8] == [
        "learned at L",
        "steps to competence",
        "exact match @8",
        "exact match @16",
    ]
    rope, nope = rows
    assert rope[4:6] == ["2/3", "100, -, 300"]
    assert rope[6].startswith("1.000") and rope[7].startswith("0.500")  # not 0.333: seed 1 out
    assert rope[8].startswith("0.200") and rope[9].startswith("3.000")
    assert nope[4:6] == ["0/3", "-, -, -"]
    assert nope[6].startswith("0.100")  # at L: every seed, to show how far it got
    assert nope[7] == nope[9] == NOT_LEARNED  # past L: not a 0
    # one seed's table says the same
    header, rows = task_table([*seeds[1]])
    assert "competence at L" in header
    by_scheme = {r[1]: r for r in rows}
    assert by_scheme["rope"][4] == "not reached in 500 steps"
    assert by_scheme["rope"][-1] == NOT_LEARNED and by_scheme["rope"][-2].startswith("0.400")


def test_a_competence_sweep_records_when_each_model_got_there(tmp_path, monkeypatch):
    """End to end on tiny models: a model whose held-out exact match reaches the threshold
    stops there and is scored past L; one that never does is marked; a rerun skips both."""
    settings = {
        **TINY,
        "train.max_steps": 10,
        "train.eval_every": 5,
        "train.checkpoint_every": 10,
        "train.warmup_steps": 2,
        "train.stop_at_accuracy": 0.99,
        "train.compile": "false",
    }
    budget = {"preset": "tiny", "train_len": 8, "tokens": 100, "settings": settings}
    monkeypatch.setitem(sweep.BUDGETS, "competence", budget)
    real = trainer_module.evaluate

    def fake(model, *args, **kwargs):  # learned "learns" at its second evaluation, alibi never
        loss, _ = real(model, *args, **kwargs)
        return loss, 1.0 if model.config.position == "learned" else 0.0

    monkeypatch.setattr(trainer_module, "evaluate", fake)
    plan = SweepPlan(["learned", "alibi"], 8, [8, 16], "competence", "stdlib", 1)
    records = run_task_sweeps(plan, ["copy"], tmp_path / "out", log=lambda _: None)
    by_scheme = {r["scheme"]: r for r in records if r["eval_len"] == 16}
    assert by_scheme["learned"]["competence"]["step"] == 5
    assert by_scheme["alibi"]["competence"] == {"threshold": 0.99, "step": None, "max_steps": 10}
    assert step_reached(tmp_path / "out" / "copy" / "runs" / "learned") == 5
    header, rows = task_table(records)
    alibi = next(r for r in rows if r[1] == "alibi")
    assert alibi[-1] == NOT_LEARNED
    # a model that stopped early is no fine-tuning recipe, and a task reads in exact match
    copy = tmp_path / "out" / "copy"
    report = (copy / "report.md").read_text()
    assert not (copy / "recipes.md").exists() and "Recipes past L" not in report
    assert "Exact match on the answer tokens" in report and "nats per" not in report
    said: list[str] = []
    (tmp_path / "out" / "copy" / "runs" / "learned" / "sweep_eval.json").unlink()
    again = run_task_sweeps(plan, ["copy"], tmp_path / "out", log=said.append)
    assert any("learned: trained earlier, evaluating" in s for s in said)
    assert step_reached(tmp_path / "out" / "copy" / "runs" / "learned") == 5
    assert len(again) == len(records)


def test_the_competence_budget_needs_tasks(tmp_path, capsys):
    from posemb.cli.main import main

    assert main(["sweep", "--budget", "competence", "--out", str(tmp_path / "o")]) == 2
    assert "--budget competence trains to an exact match: add --tasks" in capsys.readouterr().err
