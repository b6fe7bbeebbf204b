"""Train one model per positional scheme and compare them past the training length.

Same data, budget, seed and size for every scheme; each is trained at --train-len L and
evaluated at L, 2L, 4L, 8L (learned tables with every extension method and a sliding
window), every model on the same held-out text: spans drawn with --eval-seed from across
the validation split, the same target tokens at every length, so results are paired and
each loss has a standard error over spans. --budget quick fits in about 10 minutes on a
2-core CPU; --budget full is sized for one GPU. Rerunning the same command resumes an
interrupted sweep.
Schemes: learned, learned+random (randomised positions), sinusoidal, rope, alibi, t5, shaw, nope.
"""

from __future__ import annotations

import argparse

from .common import UsageError, length_list, positive_int, seed_int

HELP = "train every scheme with one budget and compare losses at 1x/2x/4x/8x the training length"
EXAMPLE = (
    "posemb sweep --schemes learned,learned+random,rope,alibi --train-len 64 --budget quick "
    "--out runs/sweep"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..eval.text import DEFAULT_SEED

    p.add_argument(
        "--schemes", nargs="+", metavar="NAME", help="default: all (comma or space separated)"
    )
    p.add_argument("--train-len", type=positive_int, default=None, help="L (default: the budget's)")
    p.add_argument("--eval-lens", type=length_list, default=None, help="default: L,2L,4L,8L")
    p.add_argument(
        "--budget",
        choices=("quick", "full"),
        default="quick",
        help="quick: about 10 minutes on a 2-core CPU; full: sized for one GPU",
    )
    p.add_argument(
        "--data",
        default="stdlib",
        metavar="SRC",
        help="training and evaluation text: stdlib | FILE | DIR | GLOB | synthetic:TASK | hf:NAME",
    )
    p.add_argument(
        "--seed", type=seed_int, default=1337, help="training seed of every model (0 .. 2**63 - 1)"
    )
    p.add_argument(
        "--eval-seed",
        type=seed_int,
        default=DEFAULT_SEED,
        help=f"seed of the evaluation spans (default {DEFAULT_SEED}; the same for every model)",
    )
    p.add_argument(
        "--tokens",
        type=positive_int,
        metavar="N",
        help="scored tokens per length (default: the budget's, 65,536 for quick)",
    )
    p.add_argument(
        "--out", required=True, metavar="DIR", help="where to write the runs and the results"
    )


def run(args: argparse.Namespace) -> int:
    import json
    import sys
    from pathlib import Path

    from ..eval.reading import describe
    from ..eval.sweep import BUDGETS, SweepPlan, parse_variants, run_sweep, write_sweep_outputs

    L = args.train_len or BUDGETS[args.budget]["train_len"]
    if L < 2:
        raise UsageError(f"--train-len must be at least 2 tokens, got {L}")
    plan = SweepPlan(
        parse_variants(args.schemes),
        L,
        args.eval_lens or [L, 2 * L, 4 * L, 8 * L],
        args.budget,
        args.data,
        args.seed,
        progress=sys.stderr.isatty(),
        eval_seed=args.eval_seed,
        eval_tokens=args.tokens,
    )
    out = Path(args.out)
    previous = out / "plan.json"
    if previous.exists():
        old = json.loads(previous.read_text())
        new = plan.settings()
        if {k: old.get(k) for k in new if k != "variants"} != {
            k: v for k, v in new.items() if k != "variants"
        }:
            raise UsageError(
                f"{out} holds a sweep with other settings ({old}); use another --out to start anew"
            )
    records = run_sweep(plan, out)
    md, page = write_sweep_outputs(plan, out, records)
    print((out / "results.md").read_text())
    print(" ".join(describe(records)))
    print(f"wrote {out / 'results.json'}, {page}")
    return 0
