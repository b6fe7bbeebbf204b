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

A vision transformer (ViT, DeiT, DINOv2, CLIP and SigLIP vision towers) keeps a grid of
patch rows: --image-size N resamples it for N-pixel images with the family's own run-time
method (bicubic; DINOv2 with registers antialiased), so the folder runs at N px without
interpolate_pos_encoding and gives what that flag gives. --method bilinear|tile|
pad-random|crop and --antialias/--no-antialias choose otherwise. The class (and
distillation) rows are kept bit for bit; image_size is rewritten in config.json and
preprocessor_config.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import UsageError, positive_int, seed_int

HELP = "extend the position table of a run or a Hugging Face model directory"
EXAMPLE = (
    "posemb extend ~/models/bert-base-uncased bert-2048 --to 2048 --method tile\n"
    "  posemb extend ~/models/vit-base-patch16-224 vit-384 --image-size 384"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..positional import EXTEND_METHODS, GRID_METHODS

    p.add_argument(
        "src", metavar="SRC", help="a posemb run or a local Hugging Face model directory"
    )
    p.add_argument("dst", metavar="DST", help="the directory to write (must not exist or be empty)")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--to", type=positive_int, metavar="N", help="positions the result serves")
    size.add_argument(
        "--image-size",
        type=positive_int,
        metavar="PX",
        help="a vision model: the image size (pixels) its grid of patches is resampled for",
    )
    p.add_argument(
        "--method",
        choices=sorted(set(EXTEND_METHODS) | set(GRID_METHODS)),
        metavar="METHOD",
        help=f"how new rows are made: {', '.join(EXTEND_METHODS)} (--to); "
        f"{', '.join(GRID_METHODS)} (--image-size; default: the family's own)",
    )
    p.add_argument(
        "--antialias",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="--image-size: resample with (or without) antialiasing (default: as the family)",
    )
    p.add_argument(
        "--allow-shrink",
        action="store_true",
        help="allow --to N or --image-size PX below the current size (crops or shrinks)",
    )
    p.add_argument("--force", action="store_true", help="replace DST if it exists")
    p.add_argument(
        "--seed", type=seed_int, default=0, help="seed of the fresh rows of --method random"
    )


def run(args: argparse.Namespace) -> int:
    from ..interop import extend
    from ..positional import EXTEND_METHODS, GRID_METHODS

    # no --method at all is the library's to refuse, after it has looked at SRC (a vision
    # folder is sent to --image-size first)
    if args.to is not None and args.method is not None and args.method not in EXTEND_METHODS:
        raise UsageError(
            f"--to N grows a table of positions: choose --method from {', '.join(EXTEND_METHODS)}"
        )
    if args.image_size is not None and args.method not in (None, *GRID_METHODS):
        raise UsageError(
            f"--image-size resamples a grid of patches: choose --method from "
            f"{', '.join(GRID_METHODS)} (or leave it out: the family's own)"
        )
    if args.antialias is not None and args.image_size is None:
        raise UsageError("--antialias applies to --image-size (a grid of patches)")
    done = extend(
        Path(args.src),
        Path(args.dst),
        args.to,
        args.method,
        image_size=args.image_size,
        antialias=args.antialias,
        allow_shrink=args.allow_shrink,
        force=args.force,
        seed=args.seed,
    )
    for note in done.notes:
        print(f"posemb: note: {note}", file=sys.stderr)
    if args.image_size is not None:
        (h0, w0), (h1, w1) = done.old_grid, done.new_grid
        verb = "resampled" if args.method in (None, "bicubic", "bilinear") else "resized"
        if (h0, w0) == (h1, w1):
            verb = "kept"  # the same grid: the table is copied as it is
        print(
            f"{verb} {done.kind} grid {h0} x {w0} ({done.old_size} px) -> {h1} x {w1} "
            f"({done.new_size} px) -> {args.dst}"
        )
        return 0
    print(
        f"extended {done.kind} table {done.old} -> {done.new} positions ({args.method}) -> "
        f"{args.dst}"
    )
    return 0
