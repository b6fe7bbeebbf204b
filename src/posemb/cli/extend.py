"""Extend (or crop) the position table of a posemb run or a local Hugging Face model directory.

SRC is a posemb run (learned scheme) or a Hugging Face directory with safetensors weights
of one of 31 families with learned tables (GPT-2, GPT-Neo, OPT, BERT, RoBERTa,
XLM-RoBERTa, ELECTRA, ALBERT, BART, Whisper, ...: the table in docs/HF.md). N counts
usable positions: RoBERTa-likes, OPT and BART keep their 2 reserved rows in front (tables
of N+2 rows; RoBERTa's max_position_embeddings becomes N+2, OPT's N); encoder-decoder
models grow both tables. Config limits, position_ids buffers and the limits repeated in
tokenizer, sentence-transformers and generation files are updated; other files are
copied; SRC is never modified.
A shard name or a link that leads outside SRC is refused (see docs/HF.md).

Methods that keep every trained row (random, tile, repeat-last, extrapolate) leave outputs
on inputs shorter than the old limit unchanged; interpolate and cubic resample the table,
so every position moves and the model usually needs some fine-tuning.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import positive_int, seed_int

HELP = "extend the position table of a run or a Hugging Face model directory"
EXAMPLE = "posemb extend ~/models/bert-base-uncased bert-2048 --to 2048 --method tile"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..positional import EXTEND_METHODS

    p.add_argument(
        "src", metavar="SRC", help="a posemb run or a local Hugging Face model directory"
    )
    p.add_argument("dst", metavar="DST", help="the directory to write (must not exist or be empty)")
    p.add_argument(
        "--to", type=positive_int, required=True, metavar="N", help="positions the result serves"
    )
    p.add_argument("--method", required=True, choices=EXTEND_METHODS, help="how new rows are made")
    p.add_argument(
        "--allow-shrink", action="store_true", help="allow N below the current size (crops)"
    )
    p.add_argument("--force", action="store_true", help="replace DST if it exists")
    p.add_argument(
        "--seed", type=seed_int, default=0, help="seed of the fresh rows of --method random"
    )


def run(args: argparse.Namespace) -> int:
    from ..interop import extend

    done = extend(
        Path(args.src),
        Path(args.dst),
        args.to,
        args.method,
        allow_shrink=args.allow_shrink,
        force=args.force,
        seed=args.seed,
    )
    for note in done.notes:
        print(f"posemb: note: {note}", file=sys.stderr)
    print(
        f"extended {done.kind} table {done.old} -> {done.new} positions ({args.method}) -> "
        f"{args.dst}"
    )
    return 0
