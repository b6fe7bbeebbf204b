"""Past 64 for two Hugging Face models, end to end on a CPU: docs/RESULTS.md ("Hugging Face
models past their end").

    python benchmarks/hf_end_to_end.py --out runs/hf-e2e               # about 40 min, 2 cores
    python benchmarks/hf_end_to_end.py --out runs/hf-e2e --seeds 1     # one fine-tuning seed

1. Two tokenizers trained on the standard library's train split (``stdlib``, posemb's
   built-in text): byte-level BPE for the GPT-2-shaped model, WordPiece with ``[MASK]`` for
   the BERT-shaped one (1,024 ids each).
2. Two random models built by ``transformers`` with a **short table of 64 positions**
   (``GPT2LMHeadModel`` and ``BertForMaskedLM``: 2 layers, 4 heads, 128 wide), written as
   Hugging Face folders, then pretrained at 64 tokens with ``posemb train --init FOLDER``
   (no extension: the models' own code and objectives, posemb's trainer).
3. For each fine-tuning seed, ``posemb sweep --hf PRETRAINED --to 256``: the tables grown by
   ``random``, ``tile`` (Longformer's copy) and ``interpolate``, scored at 64, 128, 256 as they
   are and after fine-tuning at 256 on two budgets of tokens, beside the pretrained folder
   read through a sliding window of 64.
4. ``benchmarks/sweep_seeds.py`` combines the seeds: mean ± a standard error that combines
   the text and the seeds, and the paired difference of copied (``tile``) and random rows.

Nothing is downloaded. The command lines run are printed, and the pretrained folders and
sweeps stay under ``--out``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import hf_folders

REPO = Path(__file__).resolve().parents[1]
N, TO = 64, 256
VOCAB = 1024
SHAPES = {
    "gpt2": (
        "GPT2LMHeadModel",
        dict(n_layer=2, n_head=4, n_embd=128, n_positions=N, bos_token_id=0, eos_token_id=0,
             resid_pdrop=0.0, embd_pdrop=0.0,
             attn_pdrop=0.0),
    ),
    "bert": (
        "BertForMaskedLM",
        dict(num_hidden_layers=2, num_attention_heads=4, hidden_size=128, intermediate_size=512,
             max_position_embeddings=N, hidden_dropout_prob=0.0,
             attention_probs_dropout_prob=0.0),
    ),
}  # fmt: skip
PRETRAIN = [
    "train.seq_len=64",
    "train.batch_size=16",
    "train.lr=1e-3",
    "train.min_lr=1e-4",
    "train.warmup_steps=50",
    "train.eval_every=500",
    "train.checkpoint_every=500",
]


def random_folder(kind: str, folder: Path) -> Path:
    cls, fields = SHAPES[kind]
    return hf_folders.random_folder(kind, folder, cls, fields, VOCAB, N, ("<|endoftext|>",))


def posemb(*args: str) -> None:
    cmd = [sys.executable, "-m", "posemb", *args]
    print("$ posemb " + " ".join(args), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    print(f"  ({time.perf_counter() - t0:.0f} s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", required=True, help="folder of the models, sweeps and tables")
    p.add_argument("--models", default="gpt2,bert", help="gpt2, bert or both")
    p.add_argument("--pretrain-steps", type=int, default=3000)
    p.add_argument("--seeds", default="1,2,3", help="fine-tuning seeds")
    p.add_argument("--budgets", default="0,65536,262144", help="fine-tuning tokens")
    p.add_argument("--methods", default="random,tile,interpolate")
    p.add_argument("--tokens", type=int, default=32768, help="scored tokens per length")
    args = p.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for kind in args.models.split(","):
        pre = out / f"{kind}-pretrained"
        if not (pre / "trainer_state.json").exists():
            start = random_folder(kind, out / f"{kind}-random")
            sets = [*PRETRAIN, f"train.max_steps={args.pretrain_steps}"]
            posemb("train", "--init", str(start), "--set", *sets, "--out", str(pre))
        sweeps = []
        for seed in args.seeds.split(","):
            sweep = out / f"{kind}-sweep-{seed}"
            posemb("sweep", "--hf", str(pre), "--to", str(TO), "--methods", args.methods,
                   "--finetune-tokens", args.budgets, "--seed", seed, "--lr", "3e-4",
                   "--tokens", str(args.tokens), "--out", str(sweep))  # fmt: skip
            sweeps.append(str(sweep))
        pairs = ["--pair", f"{kind}|ft 262,144 tokens|tile|nonoverlap",
                 f"{kind}|ft 262,144 tokens|random|nonoverlap",
                 "--pair", f"{kind}|extended|tile|nonoverlap", f"{kind}|extended|random|nonoverlap",
                 "--pair", f"{kind}|ft 262,144 tokens|tile|nonoverlap",
                 f"{kind}|ft 262,144 tokens|interpolate|nonoverlap"]  # fmt: skip
        table = subprocess.run(
            [sys.executable, str(REPO / "benchmarks" / "sweep_seeds.py"), *sweeps, *pairs],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        (out / f"{kind}-seeds.md").write_text(table, encoding="utf-8")
        print(table, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
