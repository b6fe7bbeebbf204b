"""Generate text from a trained run (reproducible with --seed).

Long generations (more than 256 new tokens) show a progress bar with an estimate of the
time left on stderr when stderr is a terminal.
"""

from __future__ import annotations

import argparse

from .common import existing_run, non_negative_float, positive_int, seed_int, utf8_text

HELP = "sample text from a run"
PROGRESS_FROM = 256  # longer generations show a progress bar (stderr, terminals only)
EXAMPLE = (
    'posemb generate runs/a --prompt "def main(" --max-new-tokens 200 --temperature 0.8 '
    "--top-k 40 --seed 1"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=existing_run, metavar="RUN")
    p.add_argument("--prompt", required=True, help="text to continue")
    p.add_argument("--max-new-tokens", type=positive_int, default=200, help="tokens to add")
    p.add_argument("--temperature", type=non_negative_float, default=1.0, help="0 = greedy")
    p.add_argument(
        "--top-k",
        type=positive_int,
        default=None,
        help="sample from the K most likely tokens only (default: from all)",
    )
    p.add_argument("--seed", type=seed_int, default=0, help="0 .. 2**63 - 1")


def run(args: argparse.Namespace) -> int:
    from ..model.generation import generate_text
    from ..runs import load_run
    from .common import device

    prompt = utf8_text(args.prompt)
    model, tokenizer = load_run(args.run_dir, device())
    print(
        generate_text(
            model,
            tokenizer,
            prompt,
            args.max_new_tokens,
            args.temperature,
            args.top_k,
            args.seed,
            progress=args.max_new_tokens > PROGRESS_FROM,
        )
    )
    return 0
