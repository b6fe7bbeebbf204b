"""Export a run as a Hugging Face causal LM (AutoModelForCausalLM.from_pretrained(DST) loads it).

Each scheme goes to the architecture that computes exactly what the run computes:
learned and sinusoidal -> GPT-2, rope and nope -> GPT-NeoX, alibi -> MPT (bias=false,
activation gelu). The run must be causal with LayerNorm; a field with no exact counterpart
exits 2, naming each one (t5 and shaw have none). Tokenizers: a BPE run's tokenizer.json
and a byte run's tokenizer are written for transformers (AutoTokenizer loads them); a char
tokenizer cannot be expressed and is only kept as posemb_tokenizer.json. Written:
config.json, model.safetensors, tokenizer files (and, for an imported run, its
generation_config.json, special tokens and dtype). See docs/HF.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "export a run as a Hugging Face causal LM (GPT-2, GPT-NeoX or MPT)"
EXAMPLE = "posemb export-hf runs/a hf/a   # then AutoModelForCausalLM.from_pretrained('hf/a')"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN", help="a posemb run directory")
    p.add_argument("dst", metavar="DST", help="the directory to write (must not exist or be empty)")
    p.add_argument("--force", action="store_true", help="replace DST if it exists")


def run(args: argparse.Namespace) -> int:
    from ..files import read_json
    from ..interop import export_run

    for note in export_run(Path(args.run_dir), Path(args.dst), force=args.force):
        print(f"posemb: note: {note}", file=sys.stderr)
    (name,) = read_json(Path(args.dst) / "config.json")["architectures"]
    print(f"exported {args.run_dir} -> {args.dst} ({name})")
    return 0
