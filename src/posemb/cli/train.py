"""Train a model (or continue one with --resume, or start from another run with --init).

Settings come from a preset, a TOML file and --set overrides, applied in that order.
Groups: model.* (architecture and positional scheme), train.* (max_steps, batch_size,
seq_len, lr, eval_every, checkpoint_every, seed, positions=start|random|offset|stretch,
...), data.* (source, tokenizer). Several processes: torchrun --nproc_per_node N -m posemb
train ...

Fine-tune at a longer length: --init RUN starts from RUN's weights and settings (then
--config and --set), with a fresh optimiser, schedule and data stream; --extend METHOD grows
its table to model.max_positions (train.seq_len follows unless set). config.json records
the lineage (source run and step, method, new length). Example:
  posemb train --init runs/a --extend interpolate --set model.max_positions=256
      train.max_steps=60 train.warmup_steps=6 train.lr=1e-3 --out runs/a-256
"""

from __future__ import annotations

import argparse
import math
import os
import sys

from ..positional.extend import EXTEND_METHODS
from .common import UsageError

HELP = "train a model into a run directory"
EXAMPLE = (
    "posemb train --preset tiny --data stdlib --set train.max_steps=200 model.position=rope "
    "--out runs/a"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        metavar="FILE.toml",
        help="experiment file: a .toml path or a shipped config's name, e.g. tiny-learned",
    )
    p.add_argument("--preset", metavar="NAME", help="tiny | shakespeare-char | gpt2-124m")
    p.add_argument(
        "--data",
        metavar="SRC",
        help="stdlib | FILE | DIR | GLOB | synthetic:TASK | hf:NAME (data.source)",
    )
    p.add_argument(
        "--set",
        dest="sets",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="override settings, e.g. train.max_steps=200 model.position=rope",
    )
    p.add_argument("--out", metavar="RUN", help="run directory to create")
    p.add_argument(
        "--resume", metavar="RUN", help="continue the run in RUN from its last checkpoint"
    )
    p.add_argument(
        "--init",
        metavar="RUN|HF_DIR",
        help="start from RUN's weights and settings (a fine-tune; fresh optimiser and schedule); "
        "RUN may be a local Hugging Face model folder: it is fine-tuned with its own code and "
        "objective, --set hf.new_head=true gives a bare encoder a head (docs/HF.md)",
    )
    p.add_argument(
        "--extend",
        metavar="METHOD",
        choices=EXTEND_METHODS,
        help=f"with --init: grow RUN's table to model.max_positions ({', '.join(EXTEND_METHODS)})",
    )


def run(args: argparse.Namespace) -> int:
    from ..runs.config import check_vocabulary
    from ..train import (
        TrainingDiverged,
        TrainingInterrupted,
        build_config,
        init_config,
        parse_sets,
        read_toml,
        train,
    )

    overrides = parse_sets(args.sets)
    if args.data:
        overrides["data.source"] = args.data
    if args.extend and not args.init:
        raise UsageError("--extend METHOD grows the table of the --init RUN: add --init RUN")
    if args.resume:
        if args.config is not None or args.preset or args.out or args.init:
            raise UsageError(
                "--resume RUN continues a run as it was configured; drop "
                "--config/--preset/--out/--init"
            )
        target, cfg = args.resume, None
    else:
        if not args.out:
            raise UsageError("--out RUN is required: the directory the run is written to")
        if args.config is not None and not args.config.strip():
            raise UsageError("--config is empty; pass a .toml experiment file (see configs/)")
        settings = read_toml(args.config) if args.config is not None else {}
        if args.init:
            if args.preset:
                raise UsageError(
                    "--init RUN starts from RUN's settings; drop --preset (use --set to change "
                    "settings)"
                )
            cfg = init_config(args.init, args.extend, {**settings, **overrides})
        else:
            cfg = build_config(args.preset, {**settings, **overrides})
            if "model.vocab_size" in {**settings, **overrides}:
                check_vocabulary(cfg)  # set explicitly: it must hold the tokenizer's ids
        target = args.out
    rank0 = os.environ.get("RANK", "0") == "0"  # under torchrun, rank 0 alone reports
    try:
        result = train(
            cfg, target, resume=bool(args.resume), overrides=overrides if args.resume else None
        )
    except TrainingInterrupted as e:
        if rank0:
            print(f"posemb: {e}", file=sys.stderr)
        return 130
    except TrainingDiverged as e:
        print(f"posemb: error: {e}", file=sys.stderr)
        return 1
    if not rank0:
        return 0
    if args.resume and math.isnan(result.train_loss):  # the loop never ran: the run was complete
        print(
            f"{result.run_dir} is already at step {result.step} (train.max_steps): nothing to "
            f"train; continue it with: posemb train --resume {result.run_dir} "
            f"--set train.max_steps={2 * result.step}"
        )
        return 0
    val = f", val loss {result.val_loss:.4f}" if result.val_loss is not None else ""
    acc = f", val exact match {result.val_accuracy:.3f}" if result.val_accuracy is not None else ""
    print(
        f"trained {result.step} steps in {result.wall_s:.1f}s: train loss "
        f"{result.train_loss:.4f}{val}{acc} "
        f"-> {result.run_dir}"
    )
    return 0
