"""Combine sweeps that differ only in their training seed (docs/RESULTS.md's tables).

    python benchmarks/sweep_seeds.py runs/sweep-1337 runs/sweep-1 runs/sweep-2
    python benchmarks/sweep_seeds.py runs/ft-1337 runs/ft-1 runs/ft-2 \\
        --pair "learned|ft10%@256|interpolate|nonoverlap@256" "learned|start|none|sliding@64"
    python benchmarks/sweep_seeds.py runs/tasks-1337 runs/tasks-1 runs/tasks-2

One folder per seed, or several joined by ``,`` (one seed's sweeps, scored on the same
text, so that their models can be paired; ``FOLDER=LABEL`` relabels a folder's recipe): a
sweep's ``--out`` or an evaluation's (its ``results.json``; a task sweep's
``out/TASK/results.json``, every task it ever ran). Every seed
must have scored the same text, or the same examples of a task (one fingerprint per task),
so each span's (example's) loss can be averaged over seeds. For each configuration and
length it prints the mean over seeds with a standard error that combines the text and the
training:

    se = sqrt(se_spans**2 + se_seeds**2)

``se_spans``: the standard error over spans (examples) of the losses averaged over seeds
(how much another draw of text would move the number); ``se_seeds``: the standard deviation
of the seeds' means over sqrt(seeds) (how much another training seed would). Paired
differences (the change from the shortest length, and chosen pairs of configurations) are
combined the same way from per-span differences. A difference is a tie when within 2 of its
errors.

A configuration that only some seeds ran (a smaller scheme set for some seeds) is combined
over those, and the ``seeds`` column says how many. Recipes (``--finetune``) add a column:
the tokens each model trained on beyond the fewest of the sweep. Task sweeps add the exact
match (the fraction of examples whose answer tokens are all right): its error combines the
mean of the seeds' own standard errors (an upper bound, as every seed scores the same
examples) with the seeds' spread the same way.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np


def records(folder: Path) -> list[dict]:
    """A sweep's records; a task sweep's from its per-task folders (a task sweep's own
    results.json holds only the tasks of its last command)."""
    files = sorted(folder.glob("*/results.json")) or [folder / "results.json"]
    if not files[0].exists():
        raise SystemExit(f"{folder} has no results.json (nor TASK/results.json): run the sweep")
    return [r for f in files for r in json.loads(f.read_text())]


def task_of(r: dict) -> str:
    return r.get("task") or r["provenance"]["data"].get("task") or ""


def load(folders: str) -> dict[tuple, dict]:
    """``{(task, scheme, recipe, method, mode, eval_len): record}`` of one seed's sweeps
    (folders joined by ``,``; ``FOLDER=LABEL`` names the recipe of every record of that
    folder, e.g. a ``posemb eval`` of a run trained outside the sweep); task is "" for text."""
    out = {}
    for spec in folders.split(","):
        folder, _, label = spec.partition("=")
        for r in records(Path(folder)):
            recipe = label or r["recipe"]
            out[(task_of(r), r["scheme"], recipe, r["method"], r["mode"], r["eval_len"])] = r
    return out


def combined(per_seed_units: np.ndarray) -> tuple[float, float, float, float]:
    """``[seeds, spans]`` -> (mean, se, se_spans, se_seeds)."""
    seeds, spans = per_seed_units.shape
    over_seeds = per_seed_units.mean(axis=0)  # [spans]
    se_spans = over_seeds.std(ddof=1) / math.sqrt(spans)
    means = per_seed_units.mean(axis=1)  # [seeds]
    se_seeds = means.std(ddof=1) / math.sqrt(seeds) if seeds > 1 else 0.0
    return float(means.mean()), math.hypot(se_spans, se_seeds), se_spans, se_seeds


def scored(r: dict | None) -> bool:
    return r is not None and r.get("loss") is not None


def seeds_with(runs: list[dict], *keys: tuple) -> list[int]:
    """The seeds (indexes into ``runs``) that scored every one of ``keys``."""
    return [i for i, run in enumerate(runs) if all(scored(run.get(k)) for k in keys)]


def units(runs: list[dict], key: tuple, seeds: list[int]) -> np.ndarray:
    """``[seeds, spans]``: span losses (text) or answer-token losses per example (tasks)."""
    rows = [runs[i][key] for i in seeds]
    field = "span_losses" if "span_losses" in rows[0] else "example_losses"
    return np.asarray([r[field] for r in rows])


def exact_match(runs: list[dict], key: tuple, seeds: list[int]) -> tuple[float, float]:
    """Mean exact match over seeds and its error (see the module docstring)."""
    acc = np.asarray([runs[i][key]["accuracy"] for i in seeds])
    se_examples = float(np.mean([runs[i][key].get("accuracy_se") or 0.0 for i in seeds]))
    se_seeds = acc.std(ddof=1) / math.sqrt(len(acc)) if len(acc) > 1 else 0.0
    return float(acc.mean()), math.hypot(se_examples, se_seeds)


def fmt(mean: float, se: float, sign: bool = False) -> str:
    return (f"{mean:+.3f}" if sign else f"{mean:.3f}") + f" ± {se:.3f}"


def check_fingerprints(runs: list[dict]) -> None:
    by_task: dict[str, set] = {}
    for run in runs:
        for k, r in run.items():
            by_task.setdefault(k[0], set()).add(r["provenance"]["data"]["fingerprint"])
    for task, prints in by_task.items():
        if len(prints) != 1:
            what = f"task {task}" if task else "text"
            raise SystemExit(f"the sweeps scored different {what} ({len(prints)} fingerprints)")


def extra_tokens(runs: list[dict], configs: list[tuple], first: int) -> dict[tuple, int]:
    """Tokens each configuration trained on beyond the fewest (only when they differ)."""
    seen = {}
    for c in configs:
        r = next((run[(*c, first)] for run in runs if (*c, first) in run), None)
        if r is not None and r.get("tokens_trained") is not None:
            seen[c] = r["tokens_trained"]
    if len(set(seen.values())) < 2:
        return {}
    least = min(seen.values())
    return {c: t - least for c, t in seen.items()}


def table(runs: list[dict], configs: list[tuple], lengths: list[int], tasks: bool) -> None:
    first = lengths[0]
    extra = extra_tokens(runs, configs, first)
    names = ["task"] * tasks + ["scheme", "recipe", "method", "mode", "seeds"]
    tail = ["extra tokens"] * bool(extra)
    print("| " + " | ".join([*names, *(f"loss @{L}" for L in lengths), *tail]) + " |")
    print("|---" * (len(names) + len(lengths) + len(tail)) + "|")
    for c in configs:
        cells = []
        for L in lengths:
            seeds = seeds_with(runs, (*c, L))
            cells.append(fmt(*combined(units(runs, (*c, L), seeds))[:2]) if seeds else "n/a")
        cells += [f"{extra[c]:+,}" if c in extra else "n/a"] * bool(extra)
        n = len(seeds_with(runs, *((*c, L) for L in lengths)))
        print("| " + " | ".join([*c[1 - tasks :], str(n), *cells]) + " |")
    print(f"\nChange from {first} (paired; '=' marks a tie)\n")
    print("| " + " | ".join([*names[:-1], *(f"@{L}" for L in lengths[1:])]) + " |")
    print("|---" * (len(names) - 1 + len(lengths) - 1) + "|")
    for c in configs:
        cells = []
        for L in lengths[1:]:
            seeds = seeds_with(runs, (*c, first), (*c, L))
            if not seeds:
                cells.append("n/a")
                continue
            d = units(runs, (*c, L), seeds) - units(runs, (*c, first), seeds)
            mean, se, *_ = combined(d)
            cells.append(fmt(mean, se, sign=True) + (" =" if abs(mean) <= 2 * se else ""))
        print("| " + " | ".join([*c[1 - tasks :], *cells]) + " |")


def accuracy_table(runs: list[dict], configs: list[tuple], lengths: list[int]) -> None:
    print("\nExact match (answer tokens all right)\n")
    print(
        "| task | scheme | recipe | method | seeds | " + " | ".join(f"@{L}" for L in lengths) + " |"
    )
    print("|---" * (5 + len(lengths)) + "|")
    for c in configs:
        cells = []
        for L in lengths:
            seeds = seeds_with(runs, (*c, L))
            cells.append(fmt(*exact_match(runs, (*c, L), seeds)) if seeds else "n/a")
        n = len(seeds_with(runs, *((*c, L) for L in lengths)))
        print("| " + " | ".join([*c[:4], str(n), *cells]) + " |")


def parse_config(text: str, tasks: bool) -> tuple[tuple, int | None]:
    """``'scheme|recipe|method|mode[@LEN]'`` (tasks: ``'task|...'``) -> (config, length)."""
    head, _, at = text.rpartition("@") if text.rsplit("@", 1)[-1].isdigit() else (text, "", "")
    parts = tuple(head.split("|"))
    return (parts if tasks else ("", *parts)), (int(at) if at else None)


def pair(runs: list[dict], a: str, b: str, lengths: list[int], tasks: bool) -> None:
    (ka, at_a), (kb, at_b) = parse_config(a, tasks), parse_config(b, tasks)
    fixed = at_a is not None or at_b is not None
    print(f"\n{a} minus {b} (paired):")
    for L in [None] if fixed else lengths:
        key_a, key_b = (*ka, at_a or L), (*kb, at_b or L)
        seeds = seeds_with(runs, key_a, key_b)
        if not seeds:
            continue
        d = units(runs, key_a, seeds) - units(runs, key_b, seeds)
        mean, se, s_text, s_seed = combined(d)
        per_seed = ", ".join(f"{x:+.3f}" for x in d.mean(axis=1))
        tie = "tie" if abs(mean) <= 2 * se else "differs"
        print(
            f"  {'' if fixed else f'@{L}: '}{fmt(mean, se, sign=True)} ({tie}; text {s_text:.3f}, "
            f"seeds {s_seed:.3f}; {len(seeds)} seeds: {per_seed})"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "sweeps", nargs="+", help="one sweep folder per seed (or several joined by ',')"
    )
    ap.add_argument(
        "--pair",
        nargs=2,
        action="append",
        default=[],
        metavar=("A", "B"),
        help="configurations 'scheme|recipe|method|mode' (tasks: 'task|scheme|...') to "
        "compare at every length, or at the lengths named by an '@LEN' suffix on either",
    )
    args = ap.parse_args()
    runs = [load(f) for f in args.sweeps]
    check_fingerprints(runs)
    keys = list(dict.fromkeys(k for run in runs for k in run))
    tasks = any(k[0] for k in keys)
    lengths = sorted({k[5] for k in keys})
    configs = list(dict.fromkeys(k[:5] for k in keys))
    table(runs, configs, lengths, tasks)
    if tasks:
        accuracy_table(runs, configs, lengths)
    for a, b in args.pair:
        pair(runs, a, b, lengths, tasks)


if __name__ == "__main__":
    main()
