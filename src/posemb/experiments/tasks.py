"""The sweep on synthetic tasks: one sweep per task, exact match at L, 2L, 4L.

The setting of Ruoss et al. 2023 ("Randomized Positional Encodings Boost Length
Generalization of Transformers") and Kazemnejad et al. 2023 ("The Impact of Positional
Encoding on Length Generalization in Transformers"): models trained on problems of length L
and tested on longer ones. Each task (copy, reverse, sort, recall: data/synthetic.py) gets
its own sweep folder ``out/TASK`` with results and report; ``out/tasks.md`` puts the exact
match of every task, model and method side by side. Only the answer tokens are scored (the
prompt's labels are -100), and a problem counts as right when every answer token is.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

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


def task_table(records: list[dict]) -> tuple[list[str], list[list[object]]]:
    """Rows: (task, scheme, recipe, method); columns: exact match ± standard error by length."""
    lengths = sorted({r["eval_len"] for r in records})
    header = ["task", "scheme", "recipe", "method", *[f"exact match @{L}" for L in lengths]]
    keyed: dict[tuple, dict[int, dict]] = {}
    for r in records:
        keyed.setdefault((r["task"], r["scheme"], r["recipe"], r["method"]), {})[r["eval_len"]] = r
    rows = []
    for key, by_len in keyed.items():
        cells: list[object] = []
        for L in lengths:
            r = by_len.get(L)
            ok = r is not None and r.get("accuracy") is not None
            cells.append(pm(r["accuracy"], r.get("accuracy_se")) if ok else (r and "n/a"))
        rows.append([*key, *cells])
    return header, rows


def write_task_outputs(out: Path, records: list[dict]) -> Path:
    """``out/results.json`` (every task's records) and ``out/tasks.md`` (the table)."""
    atomic_write_text(out / "results.json", json.dumps(records, indent=1) + "\n")
    header, rows = task_table(records)
    path = out / "tasks.md"
    atomic_write_text(path, markdown_table(header, rows) + "\n")
    return path
