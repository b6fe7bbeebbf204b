"""Does ``train.compile=auto`` pay for itself? Each run beside the same run never compiled.

    python benchmarks/compile_policy.py                            # the three cases below
    ATEN_CPU_CAPABILITY=avx2 python benchmarks/compile_policy.py   # with AVX2 kernels
    python benchmarks/compile_policy.py --cases short-cold --steps 200   # a quick check

Every case trains posemb on nanoGPT's CPU recipe for shakespeare_char (the settings of
``nanogpt_side_by_side.py``: 4 layers x 128, T=64, batch 12, exact GELU) twice **at the same
time, one thread each**: ``train.compile=auto`` and ``train.compile=false``, the same seed,
each process pinned to a core of its own when the machine has two (``taskset``), so that a
compilation uses no time of the other side's core. Inductor's cache is a folder of this
benchmark's own (``TORCHINDUCTOR_CACHE_DIR``), empty at the start:

1. ``short-cold``: the recipe's 2,000 steps with the empty cache (what a first run gets);
2. ``threshold-cold``: the fewest steps for which ``auto`` compiles with that empty cache,
   plus 10%: computed from case 1's timed eager step and the policy's own constants
   (``COLD_COMPILE_S`` / ``GAIN_PRIOR``), or ``--threshold-steps``. This is where compiling
   pays least; if the gain assumed before it is measured were too high, this run would be
   the slower one. (An eager step timed on a busier machine than the case's own start
   overstates it, and the run stays eager: time short-cold on a quiet machine);
3. ``short-warm``: 2,000 steps again, with the cache case 2 filled and the gain it measured.

Reported for each: both wall times (process start to exit) and their ratio false / auto
(above 1: ``auto`` was faster), each side's median step, and ``auto``'s decision as its
``trainer_state.json`` records it. Both sides train the same model to the same loss (the
final training losses are printed: compiling changes the time, not the result). Results go
to ``benchmarks/results/compile-policy-TIME/`` (``results.json``, the logs).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

from nanogpt_side_by_side import (
    DEFAULT_DATA,
    REPO,
    machine,
    posemb_run,
    posemb_steps,
    run_together,
)

sys.path.insert(0, str(REPO / "src"))
from posemb.train import compile_policy  # noqa: E402 - the policy's own constants

CASES = ("short-cold", "threshold-cold", "short-warm")
SHORT = 2000  # the recipe's steps


def threshold_steps(eager_step_s: float) -> int:
    """The fewest steps for which ``auto`` compiles with an empty cache, plus 10%."""
    p = compile_policy
    left = p.COLD_COMPILE_S / (p.GAIN_PRIOR * eager_step_s)
    return math.ceil(1.1 * left) + p.WARMUP + p.TIMED + 1


def run_case(name: str, steps: int, data: Path, out: Path, cache: Path) -> dict:
    """``auto`` and ``false`` trained at the same time, one core each."""
    every = max(250, steps // 8)
    runs = []
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    for i, setting in enumerate(("auto", "false")):
        sets = [f"train.compile={setting}"]
        run = posemb_run(setting, REPO / "src", data, steps, every, out / f"{name}-{setting}", sets)
        run.env["TORCHINDUCTOR_CACHE_DIR"] = str(cache)
        if len(cores) >= 2:
            run.cmd = ["taskset", "-c", str(cores[i]), *run.cmd]
        runs.append(run)
    run_together(runs)
    result = {"case": name, "steps": steps}
    for run in runs:
        folder = out / f"{name}-{run.name}"
        run.step_s = posemb_steps(folder)
        state = json.loads((folder / "trainer_state.json").read_text())
        rows = (folder / "metrics.jsonl").read_text().splitlines()
        last = json.loads(rows[-1])
        result[run.name] = {
            "wall_s": round(run.wall_s, 2),
            "median_step_ms": round(statistics.median(run.step_s) * 1e3, 3),
            "final_train_loss": last.get("train_loss", last.get("loss")),
            "compile": state.get("compile"),
        }
    result["false_over_auto_wall"] = round(result["false"]["wall_s"] / result["auto"]["wall_s"], 4)
    return result


def case_line(r: dict) -> str:
    a, f = r["auto"], r["false"]
    d = a["compile"] or {}
    return (
        f"{r['case']} ({r['steps']:,} steps): auto {a['wall_s']:.1f} s, false {f['wall_s']:.1f} s "
        f"-> false/auto {r['false_over_auto_wall']:.3f}x; median step auto "
        f"{a['median_step_ms']:.1f} ms, false {f['median_step_ms']:.1f} ms; final loss "
        f"{a['final_train_loss']} / {f['final_train_loss']}\n"
        f"  auto: {'compiled' if d.get('compiled') else 'eager'}: {d.get('reason')}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {CASES}")
    p.add_argument("--steps", type=int, default=SHORT, help="steps of the short cases")
    p.add_argument(
        "--threshold-steps",
        type=int,
        help="steps of threshold-cold (default: from short-cold's timed eager step)",
    )
    p.add_argument("--data", default=str(DEFAULT_DATA), help="tinyshakespeare.txt")
    p.add_argument("--out", help="results folder (default benchmarks/results/compile-policy-TIME)")
    args = p.parse_args(argv)
    cases = [c for c in args.cases.split(",") if c]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        p.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    data = Path(args.data)
    if not data.is_file():
        p.error(f"no text at {data}: give --data PATH (tinyshakespeare.txt)")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out or REPO / "benchmarks" / "results" / f"compile-policy-{stamp}")
    out.mkdir(parents=True, exist_ok=False)
    cache = out / "inductor"
    report = {"machine": machine(), "cases": []}
    eager_s = None
    for name in cases:
        if name == "threshold-cold":
            if eager_s is None and args.threshold_steps is None:
                p.error("threshold-cold needs short-cold first (its timed eager step)")
            steps = args.threshold_steps or threshold_steps(eager_s)
        else:
            steps = args.steps
        r = run_case(name, steps, data, out, cache)
        eager_s = eager_s or (r["auto"]["compile"] or {}).get("eager_step_s")
        report["cases"].append(r)
        print(case_line(r), flush=True)
        (out / "results.json").write_text(json.dumps(report, indent=1))
    report["machine"]["loadavg_at_end"] = os.getloadavg()
    (out / "results.json").write_text(json.dumps(report, indent=1))
    print(f"results: {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
