"""The task table of docs/RESULTS.md: every scheme trained to competence, then scored past L.

    python benchmarks/task_competence.py --out runs/competence            # 3 seeds
    python benchmarks/task_competence.py --out runs/competence --seeds 1337

For each training seed, ``posemb sweep --tasks copy,reverse --budget competence`` (one
sweep folder ``OUT/seed-S``): each scheme trains on each task at L = 16 until its held-out
exact match at L reaches 99% (checked every 100 steps on 256 problems drawn apart from
training's) or the step cap, then is scored on 128 fixed problems at L, 2L, 4L (the learned
table with every extension method). ``OUT/competence.md`` is the table over seeds: how many
seeds learned each task, the step each got there, exact match and answer-token loss with
standard errors over seeds and examples; a configuration no seed learned is marked ``not
learned`` past L. Interrupted, the same command resumes (finished models are kept);
``--table-only`` writes the table from the models finished so far (each row says how many
seeds it holds).

The schemes are the published set-ups at CPU scale: randomised positions as Ruoss et al.
2023 train them (sorted positions drawn from [0, 4L)), NoPE and T5's bias as Kazemnejad
et al. 2023 compare them, the learned table (every extension method), RoPE and ALiBi.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from posemb.experiments.sweep import BUDGETS, SweepPlan
from posemb.experiments.tasks import competence_table, run_task_sweeps, write_task_outputs
from posemb.report import markdown_table

SCHEMES = ("learned", "learned+random", "rope", "alibi", "t5", "nope")


def sweep_seed(seed: int, args: argparse.Namespace) -> list[dict]:
    L = args.train_len
    plan = SweepPlan(
        list(args.schemes), L, [L, 2 * L, 4 * L], "competence", "stdlib", seed, progress=False
    )
    out = args.out / f"seed-{seed}"
    records = run_task_sweeps(plan, list(args.tasks), out)
    write_task_outputs(out, records)
    return records


def finished(seed: int, args: argparse.Namespace) -> list[dict]:
    """The records of the models of ``OUT/seed-S`` scored so far (``--table-only``)."""
    records = []
    for task in args.tasks:
        for name in args.schemes:
            done = args.out / f"seed-{seed}" / task / "runs" / name / "sweep_eval.json"
            if done.exists():
                records += [{**r, "task": task} for r in json.loads(done.read_text())]
    return records


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seeds", default="1337,1,2", help="training seeds, comma separated")
    p.add_argument("--tasks", default="copy,reverse", help="synthetic tasks, comma separated")
    p.add_argument("--schemes", default=",".join(SCHEMES), help="sweep schemes, comma separated")
    p.add_argument("--train-len", type=int, default=BUDGETS["competence"]["train_len"])
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1: a model this small steps 7x faster on a busy 2-core machine)",
    )
    p.add_argument("--table-only", action="store_true", help="no training: the finished models")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    args.tasks = args.tasks.split(",")
    args.schemes = args.schemes.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    start = time.perf_counter()
    per_seed = [(finished if args.table_only else sweep_seed)(s, args) for s in seeds]
    wall = time.perf_counter() - start
    header, rows = competence_table(per_seed)
    cap = BUDGETS["competence"]["settings"]["train.max_steps"]
    note = (
        f"seeds {', '.join(map(str, seeds))}; L = {args.train_len}; competence: held-out exact "
        f"match >= 0.99 at L, checked every 100 steps, step cap {cap}; numbers over the seeds "
        f"that learned the task; wall {wall:.0f} s this command ({args.threads} torch thread), "
        f"load average "
        f"{os.getloadavg()[0]:.2f} at its end"
    )
    text = markdown_table(header, rows) + "\n\n" + note + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "competence.md").write_text(text)
    (args.out / "competence.json").write_text(
        json.dumps({"header": header, "rows": rows, "note": note}, indent=1) + "\n"
    )
    print(text)


if __name__ == "__main__":
    main()
