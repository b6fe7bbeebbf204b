"""Export a run as a Hugging Face GPT-2 directory (GPT2LMHeadModel.from_pretrained(DST) loads it).

The run must be GPT-2 shaped: learned table (no offset, overflow 'error'), causal,
LayerNorm, biases; activation gelu_tanh (GPT-2's gelu_new), gelu, relu or silu; tied or
untied embeddings. Anything else exits 2 naming each field. Tokenizers: a BPE run's
tokenizer.json and a byte run's tokenizer are written for transformers (AutoTokenizer
loads them); a char tokenizer cannot be expressed and is only kept as
posemb_tokenizer.json. Written: config.json, model.safetensors, tokenizer files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "export a run as a Hugging Face GPT-2 directory"
EXAMPLE = "posemb export-hf runs/a hf/a   # then GPT2LMHeadModel.from_pretrained('hf/a')"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN", help="a posemb run directory")
    p.add_argument("dst", metavar="DST", help="the directory to write (must not exist or be empty)")
    p.add_argument("--force", action="store_true", help="replace DST if it exists")


def run(args: argparse.Namespace) -> int:
    from ..interop import export_run

    for note in export_run(Path(args.run_dir), Path(args.dst), force=args.force):
        print(f"posemb: note: {note}", file=sys.stderr)
    print(f"exported {args.run_dir} -> {args.dst} (GPT2LMHeadModel)")
    return 0
