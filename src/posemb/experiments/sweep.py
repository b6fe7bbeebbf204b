"""Sweep: one model per positional scheme, same data, budget, seed and size, trained at
length L and evaluated at L, 2L, 4L, 8L (learned tables: with every extension method and
the sliding window). Every model scores the same evaluation text (spans drawn once with
``eval_seed`` from across the validation split, the same targets at every length), so any
two records are a paired comparison. Interrupted sweeps resume: finished models are
skipped, a model interrupted mid-training continues from its checkpoint.

Opt-in, beyond the default cost: ``learned+stretch`` (a table trained at fractional
positions, train.positions=stretch), fine-tuning recipes after each extension method and
their compute-matched baseline (``finetune``: :mod:`.finetune`), and the synthetic tasks
(:mod:`.tasks`: one sweep per task, exact match at L, 2L, 4L).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data import build_tokenizer
from ..eval.length import forward_tokens
from ..eval.progress import TRAIN_COST, Progress
from ..eval.reading import describe, pm, unit
from ..eval.reading import name as config_name
from ..eval.runner import (
    evaluate_run,
    load_eval_text,
    model_provenance,
    record_provenance,
    write_results,
)
from ..eval.tables import eval_report, results_table
from ..eval.text import DEFAULT_SEED, spans_for
from ..files import atomic_write_text
from ..positional.checks import unknown
from ..positional.extend import EXTEND_METHODS
from ..report import Report, markdown_table
from ..runs import build_config, load_run, read_trainer_state, step_reached
from ..train import train
from .finetune import (
    Recipe,
    best_recipe_sentence,
    finetune_batch,
    plan_recipes,
    recipe_config,
    recipe_table,
)

# name -> (scheme, training position recipe)
VARIANTS: dict[str, tuple[str, str]] = {
    "learned": ("learned", "start"),
    "learned+random": ("learned", "random"),
    "sinusoidal": ("sinusoidal", "start"),
    "rope": ("rope", "start"),
    "alibi": ("alibi", "start"),
    "t5": ("t5", "start"),
    "shaw": ("shaw", "start"),
    "nope": ("nope", "start"),
    # opt-in (--schemes learned+stretch): a table trained at fractional positions, used past L
    # through `interpolate` (train.positions=stretch)
    "learned+stretch": ("learned", "stretch"),
}
# what `posemb sweep` trains without --schemes (its cost is the budget's promise)
DEFAULT_VARIANTS: tuple[str, ...] = (
    "learned",
    "learned+random",
    "sinusoidal",
    "rope",
    "alibi",
    "t5",
    "shaw",
    "nope",
)

BUDGETS: dict[str, dict[str, Any]] = {
    # well under a minute per model on a 2-core CPU
    "quick": {
        "preset": "tiny",
        "train_len": 64,
        "tokens": 65536,  # scored tokens per length (131 spans of 512 at L = 64)
        "settings": {
            "model.n_layer": 2,
            "model.n_head": 4,
            "model.d_model": 128,
            "train.batch_size": 16,
            "train.max_steps": 600,
            "train.lr": 3e-3,
            "train.warmup_steps": 50,
            "train.eval_every": 600,
            "train.checkpoint_every": 300,
            "train.eval_batches": 4,
        },
    },
    # one GPU: ~6 layers x 384 wide (nanoGPT's baby GPT), minutes per model
    "full": {
        "preset": "tiny",
        "train_len": 256,
        "tokens": 262144,
        "settings": {
            "model.n_layer": 6,
            "model.n_head": 6,
            "model.d_model": 384,
            "train.batch_size": 64,
            "train.max_steps": 3000,
            "train.lr": 1e-3,
            "train.warmup_steps": 100,
            "train.eval_every": 500,
            "train.checkpoint_every": 500,
            "train.eval_batches": 20,
        },
    },
    # synthetic tasks (--tasks) trained to competence: each model stops at the first
    # evaluation (every 100 steps) whose held-out exact match at L reaches 99% (256 problems
    # drawn apart from training's), or at the step cap; its 2L and 4L numbers are read only
    # when it got there (experiments/tasks.py). Sized for the task table of docs/RESULTS.md
    # on a 2-core CPU (BENCHMARKS.md)
    "competence": {
        "preset": "tiny",
        "train_len": 16,
        "tokens": 65536,  # text only: a task scores TASK_EXAMPLES problems per length
        "settings": {
            "model.n_layer": 2,
            "model.n_head": 4,
            "model.d_model": 64,
            "train.batch_size": 32,
            "train.max_steps": 5000,
            "train.lr": 3e-3,
            "train.warmup_steps": 100,
            "train.eval_every": 100,
            "train.checkpoint_every": 500,
            "train.eval_batches": 8,
            "train.stop_at_accuracy": 0.99,
            "train.compile": "false",  # too small to repay compiling
        },
    },
}


@dataclass
class SweepPlan:
    variants: list[str]
    train_len: int
    eval_lens: list[int]
    budget: str
    data: str
    seed: int = 1337  # training seed (every model)
    progress: bool = False  # training progress bars
    eval_seed: int = DEFAULT_SEED  # the evaluation text's spans: the same for every model
    eval_tokens: int | None = None  # scored tokens per length; None: the budget's
    finetune: list[float] = field(default_factory=list)  # fine-tuning budgets, % of steps
    finetune_len: int | None = None  # T; None: 4 x train_len
    finetune_lr: float | None = None  # fine-tuning peak lr; None: a third of the budget's

    @property
    def scored_tokens(self) -> int:
        return self.eval_tokens or BUDGETS[self.budget]["tokens"]

    @property
    def target_len(self) -> int:
        """The fine-tuning length ``T``."""
        return self.finetune_len or 4 * self.train_len

    @property
    def is_task(self) -> bool:
        return self.data.startswith("synthetic:")

    def settings(self) -> dict[str, Any]:
        """What identifies the sweep (plan.json): a rerun with other settings is refused.
        Without fine-tuning recipes it is what a sweep without them always wrote."""
        skip = ("progress", "eval_tokens", "finetune", "finetune_len", "finetune_lr")
        out = {k: v for k, v in self.__dict__.items() if k not in skip}
        out["eval_tokens"] = self.scored_tokens
        if self.finetune:
            out.update(
                finetune=self.finetune,
                finetune_len=self.target_len,
                finetune_lr=self.finetune_lr,
            )
        return out

    def check_against(self, previous: dict[str, Any], where: Path) -> None:
        """Refuse to continue a sweep folder written with other settings. Schemes and
        fine-tuning budgets may be added (they add models); the rest must match."""
        new = self.settings()
        additive = ("variants", "finetune")
        differ = [k for k in new if k in previous and k not in additive and previous[k] != new[k]]
        if differ:
            raise ValueError(
                f"{where} holds a sweep with other settings ({differ[0]}: {previous[differ[0]]!r}"
                f", not {new[differ[0]]!r}); use another --out to start anew"
            )


def parse_variants(names: list[str] | None) -> list[str]:
    if not names:
        return list(DEFAULT_VARIANTS)
    out = []
    for n in names:
        for part in n.split(","):
            part = part.strip()
            if part not in VARIANTS:
                raise unknown("sweep scheme", part, VARIANTS)
            out.append(part)
    return out


def variant_config(plan: SweepPlan, name: str):
    scheme, recipe = VARIANTS[name]
    budget = BUDGETS[plan.budget]
    L = plan.train_len
    settings = dict(budget["settings"])
    settings.update(
        {
            "model.position": scheme,
            "train.positions": recipe,
            "train.seq_len": L,
            "data.source": plan.data,
            "train.seed": plan.seed,
            "train.progress": plan.progress,
            # a learned table ends at the training length; randomised positions need rows up to 8L
            "model.max_positions": max(plan.eval_lens) if recipe == "random" else L,
        }
    )
    return build_config(budget["preset"], settings)


def _jobs(
    limit: int | None, lengths: list[int], task: bool = False
) -> list[tuple[str | None, str]]:
    """``(method, mode)`` evaluations of one model: past a learned table's end, every
    extension method and (text only: a task is one problem per length) the sliding window;
    otherwise the model as it is."""
    if limit is not None and max(lengths) > limit:
        window = [] if task else [(None, "sliding")]
        return [(m, "nonoverlap") for m in EXTEND_METHODS] + window
    return [(None, "nonoverlap")]


def _limit(cfg) -> int | None:
    return cfg.model.max_positions if cfg.model.has_position_table else None


@dataclass
class _Model:
    """One model of a sweep: its folder, settings (None: made when its turn comes, from a
    trained base) and how it is evaluated."""

    folder: str
    cfg: Any
    label: str  # the records' recipe
    method: str | None = None  # a fine-tune: evaluated with its own extension method only
    recipe: Recipe | None = None


def _models(plan: SweepPlan) -> tuple[list[_Model], dict[str, Any]]:
    """Every model of ``plan`` in training order (the variants, then the recipes)."""
    cfgs = {name: variant_config(plan, name) for name in plan.variants}
    models = [_Model(name, cfg, VARIANTS[name][1]) for name, cfg in cfgs.items()]
    if plan.finetune:
        steps = BUDGETS[plan.budget]["settings"]["train.max_steps"]
        for r in plan_recipes(cfgs, plan.finetune, plan.target_len, steps):
            models.append(_Model(r.folder, None, r.label, r.method, r))
    return models, cfgs


def _model_jobs(plan: SweepPlan, m: _Model, limit: int | None) -> list[tuple[str | None, str]]:
    """A fine-tune: its own method; the baseline: ``interpolate`` past its table (the best
    zero-shot method); a variant: :func:`_jobs`."""
    if m.method is not None:
        return [(m.method, "nonoverlap")]
    if m.recipe is not None:
        past = limit is not None and max(plan.eval_lens) > limit
        return [("interpolate" if past else None, "nonoverlap")]
    return _jobs(limit, plan.eval_lens, plan.is_task)


def _plan_cost(plan: SweepPlan, out: Path, models: list[_Model], cfgs: dict) -> int:
    """The progress bar's total: training still to do and every evaluation still to run."""
    n_spans, span_len = spans_for(plan.eval_lens, plan.scored_tokens), max(plan.eval_lens)
    total = 0
    for m in models:
        run_dir = out / "runs" / m.folder
        if (run_dir / "sweep_eval.json").exists():
            continue
        if m.recipe is None:
            tc, limit = m.cfg.train, _limit(m.cfg)
            steps, tokens = tc.max_steps, tc.batch_size * tc.seq_len
        else:  # a fine-tune's or baseline's step holds a pre-training step's tokens
            base = cfgs[m.recipe.base].train
            steps, tokens = m.recipe.steps, base.batch_size * base.seq_len
            limit = plan.target_len if _limit(cfgs[m.recipe.base]) is not None else None
        left = steps - (step_reached(run_dir) or 0)
        total += TRAIN_COST * max(left, 0) * tokens
        if plan.is_task:
            continue  # a task's evaluation is small beside its training
        for _, mode in _model_jobs(plan, m, limit):
            total += sum(forward_tokens(limit, n_spans, span_len, L, mode) for L in plan.eval_lens)
    return total


class _Texts:
    """The evaluation text for each tokenizer (every model of a sweep shares one when they
    share the tokenizer): drawn once, fingerprinted once."""

    def __init__(self, plan: SweepPlan, say=print) -> None:
        self.plan, self.say = plan, say
        self.texts: dict[str, tuple[Any, dict]] = {}

    def get(self, cfg, tokenizer) -> tuple[Any, dict]:
        key = tokenizer.fingerprint()
        if key not in self.texts:
            text = load_eval_text(
                cfg,
                tokenizer,
                None,
                self.plan.eval_lens,
                n_tokens=self.plan.scored_tokens,
                seed=self.plan.eval_seed,
            )
            self.texts[key] = (text, text.provenance())
            self.say(f"every model scores {text.summary()}")
        return self.texts[key]


def run_sweep(plan: SweepPlan, out: Path, log=None) -> list[dict]:
    """Train (or resume) every model of ``plan`` under ``out/runs`` and evaluate each on one
    shared evaluation text. Returns every record (without paired comparisons: see
    :func:`write_sweep_outputs`)."""
    models, cfgs = _models(plan)
    if plan.finetune:  # refuse a length the steps cannot hold before writing anything
        for cfg in cfgs.values():
            finetune_batch(cfg.train.batch_size, cfg.train.seq_len, plan.target_len)
        if len(models) == len(cfgs):
            (log or print)(
                f"note: no model of this sweep has a table shorter than {plan.target_len}: "
                "--finetune adds nothing (it fine-tunes learned tables past their end)"
            )
    texts = _Texts(plan, log or print)
    first = cfgs[plan.variants[0]]
    if first.data.tokenizer == "byte":  # known before training: check the lengths first
        texts.get(first, build_tokenizer("byte"))
    out.mkdir(parents=True, exist_ok=True)  # the text passed its checks: the sweep may write
    atomic_write_text(out / "plan.json", json.dumps(plan.settings(), indent=1))
    records: list[dict] = []
    with Progress(_plan_cost(plan, out, models, cfgs), "sweep") as bar:
        say = texts.say = log or bar.write
        for k, m in enumerate(models, 1):
            run_dir = out / "runs" / m.folder
            head = f"[{k}/{len(models)}] {m.folder}"
            done_file = run_dir / "sweep_eval.json"
            if done_file.exists():
                say(f"{head}: finished earlier, skipped")
                records += json.loads(done_file.read_text())
                continue
            cfg = m.cfg
            if cfg is None:  # a recipe: its base is trained by now
                base = m.recipe.base
                cfg = recipe_config(
                    m.recipe, cfgs[base], out / "runs" / base, plan.target_len, plan.finetune_lr
                )
            _train_variant(cfg, run_dir, head, cfg.train.seq_len, say, bar)
            recs = _evaluate_variant(plan, m, cfg, run_dir, texts, bar)
            atomic_write_text(done_file, json.dumps(recs))
            say(_summary_line(plan, recs))
            records += recs
    return records


def _train_variant(cfg, run_dir: Path, head: str, L: int, say, bar: Progress) -> None:
    tc = cfg.train
    step = step_reached(run_dir)
    bar.stage(f"{head}: training")
    if step is not None and (step >= tc.max_steps or _competent_step(run_dir, tc) == step):
        say(f"{head}: trained earlier, evaluating")
        return
    if step is not None:
        say(f"{head}: resuming training at step {step}")
        train(None, run_dir, resume=True)
    else:
        say(f"{head}: training ({tc.max_steps} steps at L={L})")
        if run_dir.exists():  # a start that never reached its first checkpoint
            shutil.rmtree(run_dir)
        train(cfg, run_dir)
    bar.advance(TRAIN_COST * (tc.max_steps - (step or 0)) * tc.batch_size * tc.seq_len)


def _evaluate_variant(
    plan: SweepPlan, m: _Model, cfg, run_dir: Path, texts, bar: Progress
) -> list[dict]:
    model, tokenizer = load_run(run_dir)
    text, text_prov = texts.get(cfg, tokenizer)
    provenance = model_provenance(run_dir, model, cfg)
    common = {
        "recipe": m.label,
        "byte_level": tokenizer.kind == "byte",
        "provenance": record_provenance(text_prov, provenance),
        "progress": bar,
        "memo": {},  # lengths inside the table: one computation for every method
    }
    recs: list[dict] = []
    for method, mode in _model_jobs(plan, m, model.position_limit):
        recs += evaluate_run(model, cfg, text, plan.eval_lens, method=method, mode=mode, **common)
    reached = _competent_step(run_dir, cfg.train)
    for r in recs:  # the recipes' cost: tokens behind the model, lineage included
        r["tokens_trained"] = provenance["tokens_seen"]
        if cfg.train.stop_at_accuracy > 0:  # trained to competence: when it got there (None:
            r["competence"] = {  # never, in max_steps)
                "threshold": cfg.train.stop_at_accuracy,
                "step": reached,
                "max_steps": cfg.train.max_steps,
            }
    return recs


def _competent_step(run_dir: Path, tc) -> int | None:
    """The step at which the run's held-out exact match reached ``train.stop_at_accuracy``
    (trainer_state.json's ``competence``, written by the trainer when it stopped there);
    None when it never did or the setting is off."""
    if tc.stop_at_accuracy <= 0:
        return None
    try:
        reached = read_trainer_state(run_dir).get("competence")
    except (OSError, ValueError):
        return None
    if not isinstance(reached, dict) or not isinstance(reached.get("step"), int):
        return None
    return reached["step"] if reached.get("val_accuracy", 0.0) >= tc.stop_at_accuracy else None


def _summary_line(plan: SweepPlan, recs: list[dict]) -> str:
    """``    loss at 64 tokens: 2.461 ± 0.012   lowest at 512: 2.402 ± 0.013, learned (sliding
    window)`` (``at 512: ...`` for a model scored one way)"""
    longest = max(plan.eval_lens)
    at_longest = [r for r in recs if r["loss"] is not None and r["eval_len"] == longest]
    # the shortest length evaluated (the training length when the plan includes it)
    first = min(plan.eval_lens, key=lambda n: (n != plan.train_len, n))
    at_first = next((r for r in recs if r["eval_len"] == first and r["loss"] is not None), None)
    line = f"    loss at {first} tokens: " + (
        pm(at_first["loss"], at_first.get("loss_se")) if at_first else "n/a"
    )
    if at_longest:
        best = min(at_longest, key=lambda r: r["loss"])
        value = pm(best["loss"], best.get("loss_se"))
        one = len(at_longest) == 1  # a model scored one way: nothing to be lowest among
        line += (
            f"   at {longest}: {value}"
            if one
            else (f"   lowest at {longest}: {value}, {config_name(best)}")
        )
    return line


def sweep_report(
    plan: SweepPlan,
    out: Path,
    records: list[dict],
    title: str = "posemb sweep: length generalisation by positional scheme",
) -> Report:
    """Write results.json/csv/md and the plots; return the report (not yet written: the demo
    adds to it)."""
    write_results(out, records)
    header, rows = results_table(records)
    atomic_write_text(out / "results.md", markdown_table(header, rows) + "\n")
    intro = (
        f"{len(plan.variants)} models ({', '.join(plan.variants)}), budget {plan.budget}, same "
        f"data ({plan.data}), seed ({plan.seed}) and size, trained at L={plan.train_len} and "
        f"evaluated at {', '.join(map(str, plan.eval_lens))} tokens on the same held-out text. "
        + (
            "Exact match on the answer tokens, ± its standard error over examples."
            if any("accuracy" in r for r in records)
            else f"Loss: mean {unit(records)}, ± its standard error over spans."
        )
    )
    report = eval_report(out, records, title, intro, describe(records))
    steps = BUDGETS[plan.budget]["settings"]
    pretrain = steps["train.max_steps"] * steps["train.batch_size"] * plan.train_len
    table = recipe_table(records, plan.train_len, pretrain)
    if table is not None:
        header, rows = table
        reading = best_recipe_sentence(records, plan.train_len, pretrain)
        atomic_write_text(
            out / "recipes.md", markdown_table(header, rows) + "\n\n" + reading + "\n"
        )
        report.table(
            f"Recipes past L (fine-tuned at {plan.target_len}): loss by length, the extra "
            "training tokens, and the paired change from L to 4L",
            header,
            rows,
        )
        report.reading.append(reading)
    return report


def write_sweep_outputs(plan: SweepPlan, out: Path, records: list[dict]) -> tuple[Path, Path]:
    return sweep_report(plan, out, records).write(out)
