"""Train one model per positional scheme and compare them past the training length.

Same data, budget, seed and size for every scheme; each is trained at --train-len L and
evaluated at L, 2L, 4L, 8L (learned tables with every extension method and a sliding
window), every model on the same held-out text: spans drawn with --eval-seed from across
the validation split, the same target tokens at every length, so results are paired and
each loss has a standard error over spans. --budget quick fits in about 10 minutes on a
2-core CPU; --budget full is sized for one GPU. Rerunning the same command resumes an
interrupted sweep.
Schemes: learned, learned+random (randomised positions), sinusoidal, rope, alibi, t5, shaw,
nope (the default: all of these), and learned+stretch (opt-in: a table trained at
fractional positions, train.positions=stretch, used past L through `interpolate`).

A Hugging Face model folder instead (--hf HF_DIR): its tables grown by each extension method
to --to positions (default 4x its own), scored at 1x, 2x, 4x its length as they are and
after fine-tuning on each --finetune-tokens budget (its own objective: next tokens, or
masked tokens for an encoder), beside the folder read through a sliding window: hf.md.

Opt-in recipes and tasks (they cost more than the default; see BENCHMARKS.md):
  --finetune 2,5,10   each extension method followed by 2%/5%/10% of the training steps at
                      --finetune-len T (default 4L), and a model trained from scratch at T
                      with the same tokens (the compute-matched baseline): recipes.md
  --tasks copy,reverse,recall
                      the sweep on each synthetic task instead of text: exact match on the
                      answer tokens at L, 2L, 4L (out/TASK/, out/tasks.md)
  --tasks copy,reverse --budget competence
                      each model trained until it solves the task at L (99% held-out exact
                      match, or the step cap): a model that never does is marked "not
                      learned", not scored 0 past L (benchmarks/task_competence.py: seeds)
"""

from __future__ import annotations

import argparse
import math

from .common import UsageError, length_list, positive_float, positive_int, seed_int


def percent_list(text: str) -> list[float]:
    """``"2,5,10"`` -> ``[2.0, 5.0, 10.0]``: percentages above 0."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated percentages like 2,5,10, got {text!r}"
        ) from None
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected percentages above 0 like 2,5,10, got {text!r}")
    return values


def task_list(text: str) -> list[str]:
    """``"copy,reverse"`` -> the synthetic tasks named, each checked."""
    from ..data.synthetic import TASKS
    from ..positional.checks import unknown

    names = [v.strip() for v in text.split(",") if v.strip()]
    for n in names:
        if n not in TASKS:
            raise argparse.ArgumentTypeError(str(unknown("synthetic task", n, TASKS)))
    if not names:
        raise argparse.ArgumentTypeError(f"expected tasks like {','.join(TASKS)}, got {text!r}")
    return names


def token_list(text: str) -> list[int]:
    """``"0,20000"`` -> ``[0, 20000]``: token budgets of 0 or more."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated token counts like 0,20000,80000, got {text!r}"
        ) from None
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected token counts >= 0 like 0,20000, got {text!r}")
    return sorted(set(values))


def method_list(text: str) -> list[str]:
    """``"tile,interpolate"`` -> the extension methods named, each checked."""
    from ..positional.checks import unknown
    from ..positional.extend import EXTEND_METHODS

    names = [v.strip() for v in text.split(",") if v.strip()]
    for n in names:
        if n not in EXTEND_METHODS:
            raise argparse.ArgumentTypeError(str(unknown("extension method", n, EXTEND_METHODS)))
    if not names:
        raise argparse.ArgumentTypeError(f"expected methods like tile,interpolate, got {text!r}")
    return names


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
    p.add_argument(
        "--eval-lens", type=length_list, default=None, help="default: L,2L,4L,8L (tasks: L,2L,4L)"
    )
    p.add_argument(
        "--budget",
        choices=("quick", "full", "competence"),
        default="quick",
        help="quick: about 10 minutes on a 2-core CPU; full: sized for one GPU; competence "
        "(--tasks): each model trains until its held-out exact match at L reaches 99%% (or "
        "a step cap) and is read past L only if it got there",
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
        "--finetune",
        type=percent_list,
        metavar="PCTS",
        help="fine-tuning budgets in %% of the training steps after each extension method, "
        "e.g. 2,5,10 (with the compute-matched baseline)",
    )
    p.add_argument(
        "--finetune-len",
        type=positive_int,
        metavar="T",
        help="length the recipes fine-tune (and the baseline trains) at (default: 4L)",
    )
    p.add_argument(
        "--finetune-lr",
        type=positive_float,
        metavar="LR",
        help="peak learning rate of the fine-tunes (default: a third of the budget's)",
    )
    p.add_argument(
        "--tasks",
        type=task_list,
        metavar="TASKS",
        help="synthetic tasks to sweep instead of text, e.g. copy,reverse,recall "
        "(exact match at L, 2L, 4L)",
    )
    _add_hf_arguments(p)
    p.add_argument(
        "--out", required=True, metavar="DIR", help="where to write the runs and the results"
    )


def _add_hf_arguments(p: argparse.ArgumentParser) -> None:
    """``--hf HF_DIR`` and the settings of its sweep."""
    hf = p.add_argument_group("a Hugging Face model folder (--hf)")
    hf.add_argument("--hf", metavar="HF_DIR", help="sweep this model's extension methods")
    hf.add_argument(
        "--finetune-tokens",
        type=token_list,
        metavar="N,...",
        help="fine-tuning budgets in training tokens after each method, e.g. 0,20000,80000 "
        "(0: the extended model as it is; default 0)",
    )
    hf.add_argument("--to", type=positive_int, metavar="N", help="positions after extension")
    hf.add_argument(
        "--methods", type=method_list, metavar="M,...", help="extension methods (default: all)"
    )
    hf.add_argument(
        "--batch-size", type=positive_int, default=8, help="fine-tuning sequences a step"
    )
    hf.add_argument("--lr", type=positive_float, default=1e-4, help="fine-tuning peak rate")


def sweep_folder(out):
    """``out`` written by this sweep alone (:func:`posemb.runs.claim.work_folder`): a second
    sweep to it is refused while this one runs; a failure before any model was trained or
    scored removes what it wrote, so the same command starts afresh (later, it resumes)."""
    from ..runs.claim import work_folder

    def trained(folder) -> bool:
        names = ("trainer_state.json", "sweep_eval.json")
        return any(p.name in names for p in folder.rglob("*") if p.parent.parent.name == "runs")

    return work_folder(out, keep=trained)


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from ..eval.reading import describe
    from ..experiments.sweep import (
        BUDGETS,
        SweepPlan,
        parse_variants,
        run_sweep,
        write_sweep_outputs,
    )
    from ..files import read_json

    if args.hf:
        return _run_hf(args)
    if args.finetune_tokens or args.to or args.methods:
        raise UsageError("--finetune-tokens/--to/--methods sweep a Hugging Face folder: add --hf")
    L = args.train_len or BUDGETS[args.budget]["train_len"]
    if L < 2:
        raise UsageError(f"--train-len must be at least 2 tokens, got {L}")
    if args.tasks and args.data != "stdlib":
        raise UsageError("--tasks trains on each synthetic task: drop --data")
    if args.budget == "competence" and not args.tasks:
        raise UsageError("--budget competence trains to an exact match: add --tasks")
    if (args.finetune_len or args.finetune_lr) and not args.finetune:
        raise UsageError("--finetune-len/--finetune-lr set the recipes of --finetune PCTS: add it")
    default_lens = [L, 2 * L, 4 * L] if args.tasks else [L, 2 * L, 4 * L, 8 * L]
    plan = SweepPlan(
        parse_variants(args.schemes),
        L,
        args.eval_lens or default_lens,
        args.budget,
        args.data,
        args.seed,
        progress=sys.stderr.isatty(),
        eval_seed=args.eval_seed,
        eval_tokens=args.tokens,
        finetune=args.finetune or [],
        finetune_len=args.finetune_len,
        finetune_lr=args.finetune_lr,
    )
    out = Path(args.out)
    if args.tasks:
        with sweep_folder(out):
            return _run_tasks(plan, args.tasks, out)
    if (out / "plan.json").exists():
        plan.check_against(read_json(out / "plan.json"), out)
    with sweep_folder(out):
        records = run_sweep(plan, out)
        md, page = write_sweep_outputs(plan, out, records)
    print((out / "results.md").read_text())
    if (out / "recipes.md").exists():
        print((out / "recipes.md").read_text())
    print(" ".join(describe(records)))
    print(f"wrote {out / 'results.json'}, {page}")
    return 0


def _run_tasks(plan, tasks: list[str], out) -> int:
    from ..experiments.tasks import run_task_sweeps, write_task_outputs

    records = run_task_sweeps(plan, tasks, out)
    table = write_task_outputs(out, records)
    print(table.read_text())
    print(f"wrote {out / 'results.json'}, {table} and a report per task ({', '.join(tasks)})")
    return 0


def _run_hf(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from ..experiments.hf_sweep import HFSweepPlan, run_hf_sweep, write_hf_sweep
    from ..positional.extend import EXTEND_METHODS

    other = [f for f, v in (("--schemes", args.schemes), ("--tasks", args.tasks),
             ("--finetune", args.finetune), ("--train-len", args.train_len)) if v]  # fmt: skip
    if other:
        raise UsageError(f"{other[0]} sweeps posemb's own schemes; with --hf drop it")
    plan = HFSweepPlan(
        args.hf,
        to=args.to,
        eval_lens=args.eval_lens,
        methods=args.methods or list(EXTEND_METHODS),
        budgets=args.finetune_tokens or [0],
        data=args.data,
        seed=args.seed,
        eval_seed=args.eval_seed,
        eval_tokens=args.tokens,
        batch_size=args.batch_size,
        lr=args.lr,
        progress=sys.stderr.isatty(),
    )
    out = Path(args.out)
    with sweep_folder(out):
        records = run_hf_sweep(plan, out)
        _, page = write_hf_sweep(plan, out, records)
    print((out / "hf.md").read_text())
    print(f"wrote {out / 'results.json'}, {page}")
    return 0
