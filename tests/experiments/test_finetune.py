"""posemb sweep's opt-in recipes and tasks: fine-tuning after each extension method, the
compute-matched baseline, learned+stretch, and the synthetic tasks (exact match on answer
tokens only). The default sweep is unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from kit import tiny_quick_budget
from posemb.cli.main import main
from posemb.data import SyntheticTask
from posemb.eval.runner import EvalTask, evaluate_run
from posemb.experiments import sweep
from posemb.positional import EXTEND_METHODS

L, T = 16, 64  # training length of the sweep's models; the fine-tuning length (4L)


@pytest.fixture(autouse=True)
def _tiny_budget(monkeypatch):
    """TINY trained 10 steps at L (one evaluation, at the end), 200 tokens scored: the
    fine-tuning budgets below are percentages of these 10 steps."""
    tiny_quick_budget(
        monkeypatch,
        train_len=L,
        tokens=200,
        settings={
            "train.max_steps": 10,
            "train.eval_every": 10,
            "train.checkpoint_every": 10,
            "train.eval_batches": 1,
        },
    )


def last_tokens(run: Path) -> int:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return json.loads(lines[-1])["tokens"]


def sweep_args(corpus: Path, out: Path, *extra: str) -> list[str]:
    return ["sweep", "--schemes", "learned", "--data", str(corpus), *extra, "--out", str(out)]


def test_fine_tunes_after_every_method_and_the_compute_matched_baseline(tmp_path, corpus, capsys):
    out = tmp_path / "s"
    assert main(sweep_args(corpus, out)) == 0  # a plain sweep first: the recipes reuse it
    base = out / "runs" / "learned" / "model.safetensors"
    stamp = base.stat().st_mtime_ns
    capsys.readouterr()
    assert main(sweep_args(corpus, out, "--finetune", "20,50")) == 0
    printed = capsys.readouterr().out
    assert base.stat().st_mtime_ns == stamp, "the base model was trained again"
    runs = out / "runs"
    pretrain = last_tokens(runs / "learned")
    assert pretrain == 10 * 4 * L
    # a fine-tuning step holds a training step's tokens: 20% and 50% of 10 steps at T
    for pct, steps in (("20", 2), ("50", 5)):
        for method in EXTEND_METHODS:
            run = runs / f"learned~ft{pct}-{method}"
            assert last_tokens(run) == steps * 4 * L
            cfg = json.loads((run / "config.json").read_text())
            assert cfg["model"]["max_positions"] == T and cfg["train"]["seq_len"] == T
            assert cfg["lineage"]["method"] == method
            assert cfg["lineage"]["source"] == str((runs / "learned").resolve())
    # the baseline: from scratch at T with the tokens of pre-training + the largest budget
    baseline = runs / f"learned@{T}"
    assert last_tokens(baseline) == pretrain + last_tokens(runs / "learned~ft50-tile")
    assert json.loads((baseline / "config.json").read_text()).get("lineage") is None
    records = json.loads((out / "results.json").read_text())
    ft = [r for r in records if r["recipe"] == f"ft50%@{T}"]
    assert {r["method"] for r in ft} == set(EXTEND_METHODS)  # each evaluated by its own method
    assert {r["eval_len"] for r in ft} == {L, 2 * L, 4 * L, 8 * L}
    assert all(r["tokens_trained"] == pretrain + 5 * 4 * L for r in ft)
    scratch = [r for r in records if r["recipe"] == f"scratch@{T}"]
    assert {r["method"] for r in scratch} == {"interpolate"}  # past its table at 8L only
    recipes = (out / "recipes.md").read_text()
    assert f"| learned | ft20%@{T} | tile |" in recipes and "extra tokens" in recipes
    assert f"Lowest loss at {T} tokens (4L)" in recipes and recipes in printed + "\n"
    assert "Recipes past L" in (out / "report.md").read_text()


def test_default_sweep_is_unchanged_and_recipes_are_opt_in():
    assert sweep.parse_variants(None) == list(sweep.DEFAULT_VARIANTS)
    assert "learned+stretch" in sweep.VARIANTS and "learned+stretch" not in sweep.DEFAULT_VARIANTS
    plan = sweep.SweepPlan(sweep.parse_variants(None), 64, [64, 128], "quick", "stdlib")
    assert sorted(plan.settings()) == [
        "budget",
        "data",
        "eval_lens",
        "eval_seed",
        "eval_tokens",
        "seed",
        "train_len",
        "variants",
    ]
    with_recipes = sweep.SweepPlan(["learned"], 64, [64], "quick", "stdlib", finetune=[5.0])
    assert with_recipes.settings()["finetune_len"] == 256  # 4L


def test_stretch_variant_trains_at_fractional_positions_with_a_table_of_L_rows():
    plan = sweep.SweepPlan(["learned+stretch"], L, [L, 4 * L], "quick", "stdlib")
    cfg = sweep.variant_config(plan, "learned+stretch")
    assert cfg.train.positions == "stretch" and cfg.model.max_positions == L


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--finetune", "5", "--finetune-len", "48"], "--finetune-len 48 must divide"),
        (["--finetune-len", "64"], "add it"),
        (["--finetune", "0"], "percentages above 0"),
        (["--tasks", "copy", "--data", "x.txt"], "drop --data"),
        (["--tasks", "cpy"], "Did you mean 'copy'"),
    ],
)
def test_bad_recipe_options_exit_2(tmp_path, corpus, capsys, extra, needle):
    args = ["sweep", "--schemes", "learned", *extra, "--out", str(tmp_path / "s")]
    if "--data" not in extra and "--tasks" not in extra:
        args[3:3] = ["--data", str(corpus)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err
    assert not (tmp_path / "s").exists()


def test_changed_finetune_settings_are_refused_but_more_budgets_are_added(tmp_path):
    plan = sweep.SweepPlan(["learned"], L, [L], "quick", "stdlib", finetune=[5.0])
    old = plan.settings()
    sweep.SweepPlan(["learned"], L, [L], "quick", "stdlib", finetune=[5.0, 10.0]).check_against(
        old, tmp_path
    )
    other = sweep.SweepPlan(["learned"], L, [L], "quick", "stdlib", finetune=[5.0], finetune_lr=1.0)
    with pytest.raises(ValueError, match="finetune_lr"):
        other.check_against(old, tmp_path)


# -- tasks -------------------------------------------------------------------------------------
def test_task_sweep_writes_a_sweep_per_task_and_the_exact_match_table(tmp_path, capsys):
    out = tmp_path / "tasks"
    args = ["sweep", "--schemes", "learned,alibi", "--tasks", "copy,recall", "--out", str(out)]
    assert main(args) == 0
    table = (out / "tasks.md").read_text()
    assert "| task | scheme | recipe | method | exact match @16 |" in table
    assert "| recall | alibi | start | none |" in table and table in capsys.readouterr().out
    records = json.loads((out / "results.json").read_text())
    assert {r["task"] for r in records} == {"copy", "recall"}
    assert {r["eval_len"] for r in records} == {L, 2 * L, 4 * L}  # tasks: L, 2L, 4L
    assert all(r["mode"] == "nonoverlap" for r in records)  # no sliding window on a task
    assert all(0 <= r["accuracy"] <= 1 for r in records if r["loss"] is not None)
    for task in ("copy", "recall"):
        plan = json.loads((out / task / "plan.json").read_text())
        assert plan["data"] == f"synthetic:{task}"
        assert (out / task / "report.html").exists()


class Oracle(torch.nn.Module):
    """A stand-in model for the evaluation: it predicts each answer token of a task right
    (and, ``wrong_prompt``, every prompt token wrong), or gets the last answer token wrong."""

    def __init__(self, task: SyntheticTask, wrong_prompt: bool, last_wrong: bool) -> None:
        super().__init__()
        self.task, self.wrong_prompt, self.last_wrong = task, wrong_prompt, last_wrong
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # the device the evaluation asks for
        self.config = SimpleNamespace(max_positions=1 << 20, causal=True)
        self.position_limit = None

    def position_table(self):
        return None

    def forward(self, ids):
        # a causal model at length t reads the first t tokens of a problem t + 1 tokens long
        # (posemb.eval.length.eval_task): logits[i] predict the problem's token i + 1
        b, t = ids.shape
        full, answer = self._problems(ids)  # [b, t + 1] each: the problems, their answers
        target = full[:, 1:]  # [b, t]
        guess = torch.where(self.wrong_prompt & ~answer[:, 1:], target + 1, target)
        if self.last_wrong:
            guess[:, -1] = guess[:, -1] + 1  # the logits predicting the last answer token
        logits = torch.full((b, t, 256), -10.0)
        logits.scatter_(2, guess.clamp(0, 255).unsqueeze(-1), 10.0)
        return SimpleNamespace(logits=logits)

    def _problems(self, ids):
        # each whole problem, regenerated from the answer rule, and where its answer is
        rows, masks = [], []
        for row in ids.tolist():
            text = bytes(row).decode()
            prompt = text.split("|")[0] if "|" in text else text  # recall: "…?k", its value cut
            answer = self.task.answer(prompt)
            full = prompt + ("|" if "|" in text else "") + answer
            rows.append(list(full.encode()))
            masks.append([False] * (len(full) - len(answer)) + [True] * len(answer))
        return torch.tensor(rows), torch.tensor(masks)


@pytest.mark.parametrize(
    "wrong_prompt, last_wrong, expected", [(True, False, 1.0), (False, True, 0.0)]
)
@pytest.mark.parametrize("task", ["copy", "recall"])
def test_tasks_score_exact_match_on_the_answer_tokens_only(
    task, wrong_prompt, last_wrong, expected
):
    """Every prompt token wrong but the answer right: exact match 1; every token right but
    the last answer token: 0."""
    t = SyntheticTask(task)
    model = Oracle(t, wrong_prompt, last_wrong)
    cfg = SimpleNamespace(
        model=SimpleNamespace(position="learned"),
        train=SimpleNamespace(positions="start", seq_len=L),
    )
    text = EvalTask(t, seed=0, examples=16)
    (rec,) = evaluate_run(model, cfg, text, [2 * L])
    assert rec["accuracy"] == expected and rec["tokens"] > 0
