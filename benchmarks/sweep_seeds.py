"""Combine sweeps that differ only in their training seed (docs/RESULTS.md's tables).

    python benchmarks/sweep_seeds.py runs/sweep-1337 runs/sweep-1 runs/sweep-2

Every sweep must have scored the same text (one fingerprint), so each span's loss can be
averaged over seeds. For each configuration and length it prints the mean over seeds with a
standard error that combines the text and the training:

    se = sqrt(se_spans**2 + se_seeds**2)

``se_spans``: the standard error over spans of the span losses averaged over seeds (how much
another draw of text would move the number); ``se_seeds``: the standard deviation of the
seeds' means over sqrt(seeds) (how much another training seed would). Paired differences
(the change from the shortest length, and chosen pairs of configurations) are combined the
same way from per-span differences. A difference is a tie when within 2 of its errors.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np


def load(folder: Path) -> dict[tuple, dict]:
    records = json.loads((folder / "results.json").read_text())
    return {(r["scheme"], r["recipe"], r["method"], r["mode"], r["eval_len"]): r for r in records}


def combined(per_seed_units: np.ndarray) -> tuple[float, float, float, float]:
    """``[seeds, spans]`` -> (mean, se, se_spans, se_seeds)."""
    seeds, spans = per_seed_units.shape
    over_seeds = per_seed_units.mean(axis=0)  # [spans]
    se_spans = over_seeds.std(ddof=1) / math.sqrt(spans)
    means = per_seed_units.mean(axis=1)  # [seeds]
    se_seeds = means.std(ddof=1) / math.sqrt(seeds) if seeds > 1 else 0.0
    return float(means.mean()), math.hypot(se_spans, se_seeds), se_spans, se_seeds


def units(runs: list[dict], key: tuple) -> np.ndarray | None:
    rows = [r.get(key) for r in runs]
    if any(r is None or r.get("loss") is None for r in rows):
        return None
    return np.asarray([r["span_losses"] for r in rows])  # [seeds, spans]


def fmt(mean: float, se: float, sign: bool = False) -> str:
    return (f"{mean:+.3f}" if sign else f"{mean:.3f}") + f" ± {se:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sweeps", nargs="+", type=Path)
    ap.add_argument(
        "--pair",
        nargs=2,
        action="append",
        default=[],
        metavar=("A", "B"),
        help="configurations 'scheme|recipe|method|mode' to compare at every length",
    )
    args = ap.parse_args()
    runs = [load(f) for f in args.sweeps]
    prints = {r["provenance"]["data"]["fingerprint"] for run in runs for r in run.values()}
    if len(prints) != 1:
        raise SystemExit(f"the sweeps scored different texts ({len(prints)} fingerprints)")
    keys = list(runs[0])
    lengths = sorted({k[4] for k in keys})
    configs = list(dict.fromkeys(k[:4] for k in keys))
    first = lengths[0]
    print("| scheme | recipe | method | mode | " + " | ".join(f"loss @{L}" for L in lengths) + " |")
    print("|---" * (4 + len(lengths)) + "|")
    for c in configs:
        cells = []
        for L in lengths:
            u = units(runs, (*c, L))
            cells.append("n/a" if u is None else fmt(*combined(u)[:2]))
        print("| " + " | ".join(c) + " | " + " | ".join(cells) + " |")
    print(f"\nChange from {first} (paired; '=' marks a tie)\n")
    print("| scheme | recipe | method | mode | " + " | ".join(f"@{L}" for L in lengths[1:]) + " |")
    print("|---" * (3 + len(lengths)) + "|")
    for c in configs:
        cells = []
        base = units(runs, (*c, first))
        for L in lengths[1:]:
            u = units(runs, (*c, L))
            if u is None or base is None:
                cells.append("n/a")
                continue
            mean, se, *_ = combined(u - base)
            cells.append(fmt(mean, se, sign=True) + (" =" if abs(mean) <= 2 * se else ""))
        print("| " + " | ".join(c) + " | " + " | ".join(cells) + " |")
    for a, b in args.pair:
        ka, kb = tuple(a.split("|")), tuple(b.split("|"))
        print(f"\n{a} minus {b} (paired):")
        for L in lengths:
            ua, ub = units(runs, (*ka, L)), units(runs, (*kb, L))
            if ua is None or ub is None:
                continue
            mean, se, s_text, s_seed = combined(ua - ub)
            per_seed = ", ".join(f"{d:+.3f}" for d in (ua - ub).mean(axis=1))
            tie = "tie" if abs(mean) <= 2 * se else "differs"
            print(
                f"  @{L}: {fmt(mean, se, sign=True)} ({tie}; text {s_text:.3f}, seeds "
                f"{s_seed:.3f}; per seed {per_seed})"
            )


if __name__ == "__main__":
    main()
