"""Generate text from a trained run (reproducible with --seed).

Long generations (more than 256 new tokens) show a progress bar with an estimate of the
time left on stderr when stderr is a terminal.
"""

from __future__ import annotations

import argparse

import torch

from .common import existing_run, non_negative_float, positive_int, seed_int

HELP = "sample text from a run"
PROGRESS_FROM = 256  # longer generations show a progress bar (stderr, terminals only)
EXAMPLE = 'posemb generate runs/a --prompt "def main(" --max-new-tokens 200 --temperature 0.8 --top-k 40 --seed 1'


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=existing_run, metavar="RUN")
    p.add_argument("--prompt", required=True, help="text to continue")
    p.add_argument("--max-new-tokens", type=positive_int, default=200)
    p.add_argument("--temperature", type=non_negative_float, default=1.0, help="0 = greedy")
    p.add_argument("--top-k", type=positive_int, default=None)
    p.add_argument("--seed", type=seed_int, default=0, help="0 .. 2**63 - 1")


def generate_text(
    model,
    tokenizer,
    prompt: str,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> str:
    """Continue ``prompt``; ``progress`` shows a bar on stderr when it is a terminal."""
    ids = tokenizer.encode(prompt)
    if not ids:
        raise ValueError("the prompt encodes to no tokens; give a non-empty --prompt")
    device = next(model.parameters()).device
    x = torch.tensor([ids], device=device)
    g = torch.Generator(device=device).manual_seed(seed)
    # a model's vocabulary may be padded past the tokenizer's (nanoGPT-style): never sample padding
    vocab = min(tokenizer.vocab_size, model.config.vocab_size)
    out = model.generate(
        x,
        max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        generator=g,
        vocab_size=vocab,
        progress=progress,
    )
    return tokenizer.decode(out[0].tolist())


def run(args: argparse.Namespace) -> int:
    from ..train.checkpoint import load_run
    from .common import device

    model, tokenizer = load_run(args.run_dir, device())
    print(
        generate_text(
            model,
            tokenizer,
            args.prompt,
            args.max_new_tokens,
            args.temperature,
            args.top_k,
            args.seed,
            progress=args.max_new_tokens > PROGRESS_FROM,
        )
    )
    return 0
