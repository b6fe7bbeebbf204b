"""The sweep on synthetic tasks: one sweep per task, exact match at L, 2L, 4L.

The setting of Ruoss et al. 2023 ("Randomized Positional Encodings Boost Length
Generalization of Transformers") and Kazemnejad et al. 2023 ("The Impact of Positional
Encoding on Length Generalization in Transformers"): models trained on problems of length L
and tested on longer ones. Each task (copy, reverse, sort, recall: data/synthetic.py) gets
its own sweep folder ``out/TASK`` with results and report; ``out/tasks.md`` puts the exact
match of every task, model and method side by side. Only the answer tokens are scored (the
prompt's labels are -100), and a problem counts as right when every answer token is.

Trained to competence (``--budget competence``, ``train.stop_at_accuracy``): each model
trains until its held-out exact match at L reaches the threshold or the step cap, and its
records carry ``competence`` (the step, or None). A model that never got there is reported
as not having learned the task: its numbers past L are not read as "0 past L".
:func:`competence_table` combines seeds: exact match and answer-token loss over the seeds
that learned the task, with standard errors over seeds and examples.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..eval.reading import pm
from ..files import atomic_write_text
from ..report import markdown_table
from .sweep import SweepPlan, run_sweep, write_sweep_outputs


def run_task_sweeps(plan: SweepPlan, tasks: list[str], out: Path, log=None) -> list[dict]:
    """One sweep per synthetic task (``out/TASK``: the plan trained on ``synthetic:TASK``),
    each with its own results and report; returns every record, each with its ``task``.

    The setting of Ruoss et al. 2023 and Kazemnejad et al. 2023: exact match on the answer
    tokens (the prompt is never scored) at lengths past the training length.
    """
    records: list[dict] = []
    for task in tasks:
        sub = replace(plan, data=f"synthetic:{task}")
        folder = out / task
        if (folder / "plan.json").exists():
            sub.check_against(json.loads((folder / "plan.json").read_text()), folder)
        (log or print)(f"== synthetic:{task} ==")
        recs = run_sweep(sub, folder, log)
        write_sweep_outputs(sub, folder, recs)
        records += [{**r, "task": task} for r in recs]
    return records


NOT_LEARNED = "not learned"


def learned(r: dict) -> bool:
    """Whether the model behind a record learned its task at L: True without a competence
    budget (nothing says otherwise), else whether it reached the threshold."""
    c = r.get("competence")
    return c is None or c.get("step") is not None


def competence_cell(r: dict) -> str:
    """``step 300`` or ``not reached in 1500 steps``; ``-`` without a competence budget."""
    c = r.get("competence")
    if c is None:
        return "-"
    if c["step"] is None:
        return f"not reached in {c['max_steps']} steps"
    return f"step {c['step']}"


def task_table(records: list[dict]) -> tuple[list[str], list[list[object]]]:
    """Rows: (task, scheme, recipe, method); columns: exact match ± standard error by length
    (and, trained to competence, when the model reached it: a model that never did shows
    ``not learned`` past its training length)."""
    lengths = sorted({r["eval_len"] for r in records})
    trained_to = any("competence" in r for r in records)
    header = ["task", "scheme", "recipe", "method"]
    header += ["competence at L"] if trained_to else []
    header += [f"exact match @{L}" for L in lengths]
    keyed: dict[tuple, dict[int, dict]] = {}
    for r in records:
        keyed.setdefault((r["task"], r["scheme"], r["recipe"], r["method"]), {})[r["eval_len"]] = r
    rows = []
    for key, by_len in keyed.items():
        first = next(iter(by_len.values()))
        cells: list[object] = [competence_cell(first)] if trained_to else []
        for L in lengths:
            r = by_len.get(L)
            ok = r is not None and r.get("accuracy") is not None
            if ok and L > r["train_len"] and not learned(r):
                cells.append(NOT_LEARNED)
            else:
                cells.append(pm(r["accuracy"], r.get("accuracy_se")) if ok else (r and "n/a"))
        rows.append([*key, *cells])
    return header, rows


def _combined_accuracy(recs: list[dict]) -> tuple[float, float]:
    """Mean exact match over seeds; its error combines the mean of the seeds' own errors over
    examples (an upper bound: every seed scores the same examples) with the seeds' spread."""
    acc = np.asarray([r["accuracy"] for r in recs], dtype=float)
    se_examples = float(np.mean([r.get("accuracy_se") or 0.0 for r in recs]))
    se_seeds = acc.std(ddof=1) / math.sqrt(len(acc)) if len(acc) > 1 else 0.0
    return float(acc.mean()), math.hypot(se_examples, se_seeds)


def _combined_loss(recs: list[dict]) -> tuple[float, float]:
    """Mean answer-token loss; error: each example's loss averaged over seeds (its standard
    error over examples) combined with the seeds' spread."""
    units = np.asarray([r["example_losses"] for r in recs], dtype=float)  # [seeds, examples]
    over_seeds = units.mean(axis=0)
    se_examples = over_seeds.std(ddof=1) / math.sqrt(units.shape[1]) if units.shape[1] > 1 else 0.0
    means = units.mean(axis=1)
    se_seeds = means.std(ddof=1) / math.sqrt(len(means)) if len(means) > 1 else 0.0
    return float(means.mean()), math.hypot(se_examples, se_seeds)


def _steps_cell(recs: list[dict]) -> str:
    """Each seed's step of competence, ``-`` for a seed that never reached it."""
    steps = [(r.get("competence") or {}).get("step") for r in recs]
    return ", ".join("-" if s is None else str(s) for s in steps)


def competence_table(seeds: list[list[dict]]) -> tuple[list[str], list[list[object]]]:
    """One task sweep's records per training seed (the same examples scored by each) ->
    a row per (task, scheme, recipe, method): how many seeds learned the task at L, the step
    each got there, then exact match and answer-token loss by length, mean ± standard error
    over seeds and examples. The numbers are over the seeds that learned the task; a
    configuration that no seed learned shows its numbers at L (all seeds) and ``not
    learned`` past it, never a 0."""
    keyed: dict[tuple, dict[int, list[dict]]] = {}
    for recs in seeds:
        for r in recs:
            key = (r["task"], r["scheme"], r["recipe"], r["method"])
            keyed.setdefault(key, {}).setdefault(r["eval_len"], []).append(r)
    lengths = sorted({L for by_len in keyed.values() for L in by_len})
    header = ["task", "scheme", "recipe", "method", "learned at L", "steps to competence"]
    header += [f"exact match @{L}" for L in lengths] + [f"loss @{L}" for L in lengths]
    rows = []
    for key, by_len in keyed.items():
        first = by_len[lengths[0]] if lengths[0] in by_len else next(iter(by_len.values()))
        ok = [i for i, r in enumerate(first) if learned(r)]
        exact, loss = [], []
        for L in lengths:
            recs = [r for r in by_len.get(L, []) if r.get("accuracy") is not None]
            use = [recs[i] for i in ok if i < len(recs)] or recs
            if not recs or (not ok and L > recs[0]["train_len"]):
                exact.append(NOT_LEARNED if recs else "n/a")
                loss.append(NOT_LEARNED if recs else "n/a")
                continue
            exact.append(pm(*_combined_accuracy(use)))
            loss.append(pm(*_combined_loss(use)))
        rows.append([*key, f"{len(ok)}/{len(first)}", _steps_cell(first), *exact, *loss])
    return header, rows


def write_task_outputs(out: Path, records: list[dict]) -> Path:
    """``out/results.json`` (every task's records) and ``out/tasks.md`` (the table)."""
    atomic_write_text(out / "results.json", json.dumps(records, indent=1) + "\n")
    header, rows = task_table(records)
    path = out / "tasks.md"
    atomic_write_text(path, markdown_table(header, rows) + "\n")
    return path
