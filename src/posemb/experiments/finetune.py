"""Sweep recipes that spend training past L: fine-tuning after an extension, and its
compute-matched baseline (opt-in: ``posemb sweep --finetune 2,5,10``).

For every model of a sweep whose table ends before the fine-tuning length ``T`` (default
4L), each extension method is followed by ``K`` fine-tuning steps at ``T`` (``K`` a
percentage of the pre-training steps), as Longformer (RoBERTa 512 → 4,096) and Position
Interpolation (Chen et al. 2023, ~1,000 steps) did. A fine-tuning step holds as many
tokens as a pre-training step (``batch x L / T`` sequences of ``T``), so ``K%`` of the
steps is ``K%`` more tokens. The baseline is the same scheme trained from scratch at ``T``
with the tokens of the largest ``K`` (pre-training + fine-tuning: the same number of
tokens, asserted from the runs' metrics by the tests).

Each fine-tune is a run started from the sweep's model (``train.init``, with its
``lineage`` in config.json) and is evaluated with its own method: lengths up to ``T`` need
no extension, longer ones extend the fine-tuned table again by the same method.

Names: a :class:`Recipe` here is a *sweep recipe* (a model a sweep adds past L). A *position
recipe* is ``train.positions`` (``start``, ``random``, ...). A results record's ``recipe``
field says how its model was trained: the position recipe, or the sweep recipe's label when
there is one (docs/DESIGN.md, "Results records").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..eval.reading import name, pm
from ..positional.extend import EXTEND_METHODS
from ..runs.config import build_config, flat_settings
from ..train import init_config

FINETUNE_LR_SHARE = 1 / 3  # fine-tuning peak lr: a third of the budget's pre-training lr
FINETUNE_WARMUP = 0.1  # warm-up: a tenth of the fine-tuning steps (at least one)


@dataclass(frozen=True)
class Recipe:
    """One model a recipe adds to a sweep.

    Attributes:
        folder: its run folder's name under ``runs/``.
        base: the sweep model it starts from (fine-tune) or re-trains from scratch (baseline).
        method: the extension method of a fine-tune; None for the baseline.
        steps: its training steps.
        label: the ``recipe`` of its records (``ft5%@256``, ``scratch@256``).
    """

    folder: str
    base: str
    method: str | None
    steps: int
    label: str


def percent_text(p: float) -> str:
    """``5.0`` -> ``'5'``, ``2.5`` -> ``'2.5'``."""
    return f"{p:g}"


def finetune_batch(batch_size: int, train_len: int, finetune_len: int) -> int:
    """Sequences of ``finetune_len`` per step holding a pre-training step's tokens.

    Raises:
        ValueError: ``finetune_len`` does not divide ``batch_size x train_len``.
    """
    tokens = batch_size * train_len
    if tokens % finetune_len:
        raise ValueError(
            f"--finetune-len {finetune_len} must divide the tokens of a training step "
            f"({batch_size} x {train_len} = {tokens}), so a fine-tuning step holds as many"
        )
    return tokens // finetune_len


def finetune_steps(percents: list[float], pretrain_steps: int) -> list[tuple[float, int]]:
    """``(percent, steps)`` for each fine-tuning budget: at least one step each."""
    return [(p, max(1, round(pretrain_steps * p / 100))) for p in percents]


def plan_recipes(
    variants: dict[str, Any], percents: list[float], finetune_len: int, pretrain_steps: int
) -> list[Recipe]:
    """The fine-tunes and baselines of every variant whose table ends before ``finetune_len``.

    Args:
        variants: ``{name: RunConfig}`` of the sweep's models.
        percents: fine-tuning budgets in percent of ``pretrain_steps``.
        finetune_len: ``T``.
        pretrain_steps: the sweep's training steps.
    """
    out: list[Recipe] = []
    budgets = finetune_steps(percents, pretrain_steps)
    for variant, cfg in variants.items():
        if not cfg.model.has_position_table or cfg.model.max_positions >= finetune_len:
            continue
        prefix = "" if cfg.train.positions == "start" else f"{cfg.train.positions}+"
        for p, steps in budgets:
            for method in EXTEND_METHODS:
                label = f"{prefix}ft{percent_text(p)}%@{finetune_len}"
                folder = f"{variant}~ft{percent_text(p)}-{method}"
                out.append(Recipe(folder, variant, method, steps, label))
        top = max(steps for _, steps in budgets)
        label = f"{prefix}scratch@{finetune_len}"
        out.append(Recipe(f"{variant}@{finetune_len}", variant, None, pretrain_steps + top, label))
    return out


def finetune_settings(
    pretrain_lr: float, steps: int, finetune_len: int, batch: int, lr: float | None
) -> dict[str, Any]:
    """The ``train.*`` settings of a fine-tune: ``steps`` at ``finetune_len``, a fresh
    warm-up and cosine schedule peaking at ``lr`` (default: a third of ``pretrain_lr``)."""
    peak = lr if lr is not None else pretrain_lr * FINETUNE_LR_SHARE
    return {
        "model.max_positions": finetune_len,
        "train.seq_len": finetune_len,
        "train.batch_size": batch,
        "train.max_steps": steps,
        "train.warmup_steps": max(1, round(steps * FINETUNE_WARMUP)),
        "train.lr": peak,
        "train.min_lr": peak / 10,
        "train.eval_every": steps,
        "train.checkpoint_every": steps,
    }


def recipe_config(recipe: Recipe, base_cfg, base_run: Path, finetune_len: int, lr: float | None):
    """The RunConfig of ``recipe``: a fine-tune of ``base_run`` (which must be trained), or
    the base model's settings from scratch at ``finetune_len`` with the matched steps."""
    tc = base_cfg.train
    batch = finetune_batch(tc.batch_size, tc.seq_len, finetune_len)
    if recipe.method is not None:
        settings = finetune_settings(tc.lr, recipe.steps, finetune_len, batch, lr)
        return init_config(base_run, recipe.method, settings)
    flat = flat_settings(base_cfg)
    flat.update(
        {
            "model.max_positions": max(base_cfg.model.max_positions, finetune_len),
            "train.seq_len": finetune_len,
            "train.batch_size": batch,
            "train.max_steps": recipe.steps,
            "train.checkpoint_every": min(tc.checkpoint_every, recipe.steps),
            "train.eval_every": recipe.steps,
        }
    )
    return build_config(None, flat)


# -- the table ---------------------------------------------------------------------------------
def _recipe_records(records: list[dict]) -> list[dict]:
    """Records of models that know their training tokens (text, whole windows, scored)."""
    return [
        r
        for r in records
        if r.get("tokens_trained") is not None
        and r["mode"] == "nonoverlap"
        and r.get("loss") is not None
    ]


def recipe_table(
    records: list[dict], train_len: int, pretrain_tokens: int
) -> tuple[list[str], list[list[object]]] | None:
    """Rows: each model and method of the sweep; columns: the loss (exact match for a task)
    at every length, the extra training tokens over the sweep's pre-training, and the
    paired change of the loss from ``L`` to ``4L`` (text). None when no recipe ran."""
    mine = _recipe_records(records)
    # a recipe adds tokens; a run that stopped early (train.stop_at_accuracy) trained fewer
    if not any(r["tokens_trained"] > pretrain_tokens for r in mine):
        return None
    metric = "accuracy" if any("accuracy" in r for r in mine) else "loss"
    lengths = sorted({r["eval_len"] for r in mine})
    four = 4 * train_len
    header = ["scheme", "recipe", "method", *[f"{metric} @{L}" for L in lengths]]
    header += ["extra tokens", f"@{four} - @{train_len}"]
    keyed: dict[tuple, dict[int, dict]] = {}
    for r in mine:
        keyed.setdefault((r["scheme"], r["recipe"], r["method"]), {})[r["eval_len"]] = r
    rows = []
    for key, by_len in keyed.items():
        extra = next(iter(by_len.values()))["tokens_trained"] - pretrain_tokens
        cells: list[object] = [
            pm(by_len[L][metric], by_len[L].get(f"{metric}_se")) if L in by_len else None
            for L in lengths
        ]
        change = by_len.get(four, {}).get("change_from")
        delta = None
        if change and change["eval_len"] == train_len:
            tie = " (tie)" if change["tie"] else ""
            delta = pm(change["diff"], change["diff_se"], sign=True) + tie
        rows.append([*key, *cells, f"{extra:+,}" if extra else "0", delta])
    return header, rows


def best_recipe_sentence(records: list[dict], train_len: int, pretrain_tokens: int) -> str:
    """The lowest loss at ``4L`` and how it compares with the same model's loss at ``L``."""
    four = 4 * train_len
    at_four = [
        r
        for r in _recipe_records(records)
        if r["eval_len"] == four and (r.get("change_from") or {}).get("eval_len") == train_len
    ]
    if not at_four:
        return f"No model was scored at both {train_len} and {four} tokens."
    best = min(at_four, key=lambda r: r["loss"])
    c = best["change_from"]
    verdict = (
        "no worse than" if c["diff"] <= 0 or c["tie"] else "worse than"
    ) + f" its own loss at {train_len} ({pm(c['diff'], c['diff_se'], sign=True)}, paired"
    verdict += ", a tie)" if c["tie"] else ")"
    extra = best["tokens_trained"] - pretrain_tokens
    return (
        f"Lowest loss at {four} tokens (4L): {name(best)}, {pm(best['loss'], best['loss_se'])} "
        f"nats per token, {verdict}; it trained on {extra:+,} tokens beyond the sweep's "
        f"{pretrain_tokens:,}."
    )
