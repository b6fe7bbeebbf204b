"""Import a local Hugging Face GPT-2, GPT-NeoX or MPT directory as a posemb run.

Reads config.json and model.safetensors (or its shards; pickled pytorch_model.bin is
refused) and writes a run with the same logits: config.json, model.safetensors, the
tokenizer (tokenizer.json, or one built from vocab.json + merges.txt; else posemb's byte
tokenizer with a warning), hf_metadata.json (token ids, special tokens,
generation_config.json and dtype, which export-hf writes back) and a step-0 checkpoint,
so generate, eval, analyze and fine-tuning with `posemb train --resume DST --data SRC
--set train.max_steps=N train.lr=LR` work on it. A folder export-hf wrote comes back with
the run's own settings. Variants posemb cannot compute identically (GPT-NeoX with
use_parallel_residual=true or partial rotary, ...) exit 2 naming each field. Nothing is
downloaded: fetch the model first (e.g. huggingface-cli download gpt2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "import a local Hugging Face GPT-2, GPT-NeoX or MPT directory as a run"
EXAMPLE = (
    "posemb import-hf ~/models/gpt2 runs/gpt2 && "
    "posemb generate runs/gpt2 --prompt Hello --temperature 0"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "hf_dir",
        metavar="HF_DIR",
        help="a local GPT-2, GPT-NeoX or MPT directory (config.json + model.safetensors)",
    )
    p.add_argument(
        "dst", metavar="DST", help="the run directory to write (must not exist or be empty)"
    )
    p.add_argument("--force", action="store_true", help="replace DST if it exists")


def run(args: argparse.Namespace) -> int:
    from ..interop import import_hf_dir

    for note in import_hf_dir(Path(args.hf_dir), Path(args.dst), force=args.force):
        print(
            f"posemb: {note}" if note.startswith("warning") else f"posemb: note: {note}",
            file=sys.stderr,
        )
    print(f"imported {args.hf_dir} -> {args.dst}")
    return 0
