"""Probe whether a model tells two orderings of the same words apart.

Prints, per layer, the cosine similarity of the two texts' mean-pooled hidden states with
the model's positions and with positions removed (NoPE, same weights). RUN may be a run
directory or `preset:NAME` for an untrained model (add --set model.causal=false for an
encoder).
"""

from __future__ import annotations

import argparse

from .common import seed_int

HELP = "compare two orderings of the same tokens, per layer, with and without positions"
EXAMPLE = 'posemb probe-order runs/a "The cat chased the dog" "The dog chased the cat"'


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "run", metavar="RUN", help="run directory, or preset:NAME for an untrained model"
    )
    p.add_argument("text_a")
    p.add_argument("text_b")
    p.add_argument(
        "--set",
        dest="sets",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="model.* overrides for preset:NAME (e.g. model.causal=false model.position=nope)",
    )
    p.add_argument(
        "--seed",
        type=seed_int,
        default=0,
        help="initialisation seed for preset:NAME (0 .. 2**63 - 1)",
    )


def load_model_arg(run: str, sets: list[str], seed: int = 0):
    """A run directory, or ``preset:NAME`` built untrained with the byte tokenizer."""
    import torch

    from ..data import build_tokenizer
    from ..model import ModelConfig, Transformer
    from ..train.checkpoint import load_run
    from ..train.config import parse_sets

    if run.startswith("preset:"):
        overrides = {}
        for key, value in parse_sets(sets).items():
            if not key.startswith("model."):
                raise ValueError(f"only model.* settings apply to an untrained preset, got {key!r}")
            overrides[key[len("model.") :]] = value
        torch.manual_seed(seed)
        return Transformer(
            ModelConfig.preset(run.split(":", 1)[1], **overrides)
        ).eval(), build_tokenizer("byte")
    if sets:
        raise ValueError("--set applies to preset:NAME only; a trained run keeps its settings")
    return load_run(run)


def run(args: argparse.Namespace) -> int:
    from ..eval.probe import probe_order

    model, tokenizer = load_model_arg(args.run, args.sets, args.seed)
    r = probe_order(model, tokenizer, args.text_a, args.text_b)
    print(f"A: {r.text_a!r}\nB: {r.text_b!r}")
    print(f"{'layer':>6}  {'cos(A,B) with positions':>24}  {'without positions':>18}")
    n = len(r.with_positions)
    for i, (w, wo) in enumerate(zip(r.with_positions, r.without_positions)):
        name = "embed" if i == 0 else ("final" if i == n - 1 else str(i))
        print(f"{name:>6}  {w:>24.6f}  {wo:>18.6f}")
    print(r.reading())
    return 0
