"""Evaluation speed at 8x the training length: tokens/s and peak memory, posemb now against
posemb at a git ref, both measured in one run.

    python benchmarks/eval_speed.py --baseline-ref main
    python benchmarks/eval_speed.py --baseline-ref main --schemes alibi,t5 --repeats 3

The model is the quick sweep's (``posemb sweep --budget quick``: the tiny preset, 2 layers
x 128 wide, byte vocabulary, trained at L = 64) with random weights (speed does not depend
on them), evaluated as the sweep does at 8L = 512: ``eval_nonoverlap`` over 128 windows of
512 tokens (65,536 tokens, the quick budget's), one thread. A learned table is built with
512 rows (the size an extension method gives it). Each measurement is a fresh process
(``--baseline-ref``'s source on ``PYTHONPATH``, or this checkout's), the two sides
alternating, so load on the machine falls on both alike: the ratio is the figure.

Reported per scheme and side: tokens/s (scored tokens over the evaluation's wall time, after
one warm-up pass at L) and peak memory (the process's peak resident set during the
evaluation, less its resident set before it: what evaluation itself adds).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCHEMES = "learned,rope,alibi,t5,shaw"
TRAIN_LEN, FACTOR, WINDOWS = 64, 8, 128

# One measurement, in a fresh process (argv: scheme, eval_len, windows).
PROBE = r"""
import json, resource, sys, time
import numpy as np, torch
torch.set_num_threads(1)
from posemb import ModelConfig, Transformer
from posemb.eval.length import eval_nonoverlap
scheme, L, windows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.manual_seed(0)
rows = L if scheme == "learned" else 256
model = Transformer(ModelConfig.preset("tiny", position=scheme, max_positions=rows)).eval()
tokens = np.random.default_rng(0).integers(0, 256, size=L * windows * 2, dtype=np.int64)
eval_nonoverlap(model, tokens, 64, max_windows=8)  # warm-up at the training length
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rss = int(open("/proc/self/statm").read().split()[1]) * 4096 // 1024  # KiB now
t0 = time.perf_counter()
res = eval_nonoverlap(model, tokens, L, max_windows=windows)
wall = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"tokens": res.tokens, "wall_s": wall, "loss": res.loss,
                  "peak_mib": (max(peak, before) - rss) / 1024}))
"""


def measure(src: Path, scheme: str, eval_len: int, windows: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-c", PROBE, scheme, str(eval_len), str(windows)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    r = json.loads(out.strip().splitlines()[-1])
    r["tokens_per_s"] = r["tokens"] / r["wall_s"]
    return r


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--baseline-ref", help="git ref to compare with (a temporary worktree)")
    p.add_argument("--schemes", default=SCHEMES)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", help="results.json path (default: print only)")
    args = p.parse_args(argv)
    eval_len = TRAIN_LEN * FACTOR
    sides = {"now": REPO / "src"}
    tmp = None
    if args.baseline_ref:
        tmp = Path(tempfile.mkdtemp(prefix="posemb-eval-baseline-"))
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(tmp), args.baseline_ref],
            check=True,
            capture_output=True,
        )
        sides[args.baseline_ref] = tmp / "src"
    report = {"eval_len": eval_len, "windows": WINDOWS, "loadavg_at_start": os.getloadavg()}
    rows = {}
    try:
        for rep in range(args.repeats):
            for scheme in args.schemes.split(","):
                order = list(sides.items())
                if rep % 2:
                    order.reverse()
                for side, src in order:
                    r = measure(src, scheme, eval_len, WINDOWS)
                    rows.setdefault(scheme, {}).setdefault(side, []).append(r)
    finally:
        if tmp is not None:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tmp)])
    report["loadavg_at_end"] = os.getloadavg()
    report["date"] = time.strftime("%Y-%m-%d %H:%M")
    report["results"] = rows
    for scheme, by_side in rows.items():
        line = [f"{scheme:8s}"]
        for side, rs in by_side.items():
            tps = statistics.median(r["tokens_per_s"] for r in rs)
            mib = statistics.median(r["peak_mib"] for r in rs)
            line.append(f"{side}: {tps:8,.0f} tok/s, peak +{mib:6.1f} MiB")
        if len(by_side) == 2:
            now, base = (by_side[k] for k in sides)
            ratios = [a["tokens_per_s"] / b["tokens_per_s"] for a, b in zip(now, base)]
            line.append(f"speed now/{args.baseline_ref} {statistics.median(ratios):.3f}")
            loss_same = all(abs(a["loss"] - b["loss"]) < 1e-6 for a, b in zip(now, base))
            line.append("same losses" if loss_same else "LOSSES DIFFER")
        print(" | ".join(line), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
