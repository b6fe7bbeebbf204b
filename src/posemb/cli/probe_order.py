"""Probe whether a model tells two orderings of the same words apart.

Prints, per layer, the cosine similarity of the two texts' mean-pooled hidden states and
the largest difference of any token's representation (matched by token, since the texts
are reorderings of each other), with the model's positions and with positions removed
(NoPE, same weights); then one plain sentence on what that means. RUN may be a run
directory or `preset:NAME` for an untrained model (add --set model.causal=false for an
encoder).
"""

from __future__ import annotations

import argparse
import re

from .common import UsageError, seed_int, utf8_text

SET_ITEM = re.compile(r"[A-Za-z_]+\.[A-Za-z0-9_.]+=")  # a --set KEY=VALUE (group.key=...)

HELP = "compare two orderings of the same tokens, per layer, with and without positions"
EXAMPLE = 'posemb probe-order runs/a "The cat chased the dog" "The dog chased the cat"'


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "run", metavar="RUN", help="run directory, or preset:NAME for an untrained model"
    )
    # optional here so that texts after --set KEY=VALUE (which takes every word after it)
    # are found again by texts(); exactly two are required
    p.add_argument("text_a", nargs="?")
    p.add_argument("text_b", nargs="?")
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
    from ..runs import load_run, parse_sets

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


def texts(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """``(sets, [text_a, text_b])``: ``--set`` takes every word after it, so the words of
    ``--set model.causal=false 'ab' 'ba'`` that are not ``KEY=VALUE`` are the texts."""
    sets = [s for s in args.sets if SET_ITEM.match(s)]
    found = [s for s in args.sets if not SET_ITEM.match(s)]
    found += [t for t in (args.text_a, args.text_b) if t is not None]
    if len(found) != 2:
        raise UsageError(
            f"probe-order compares two texts, got {len(found)}: posemb probe-order RUN TEXT_A "
            "TEXT_B [--set KEY=VALUE ...]"
        )
    return sets, [utf8_text(t, name) for t, name in zip(found, ("TEXT_A", "TEXT_B"))]


def run(args: argparse.Namespace) -> int:
    from ..eval.probe import probe_order

    sets, (text_a, text_b) = texts(args)
    model, tokenizer = load_model_arg(args.run, sets, args.seed)
    r = probe_order(model, tokenizer, text_a, text_b)
    print(f"A: {r.text_a!r}\nB: {r.text_b!r}")
    print(table(r))
    print(r.reading())
    return 0


def table(r) -> str:
    """Per layer: pooled cosine similarity and the largest per-token difference, with the
    model's positions and with positions removed."""
    w, wo = r.with_positions, r.without_positions
    lines = [
        f"{'':>6}  {'with ' + r.scheme + ' positions':>30}  {'positions removed':>30}",
        f"{'layer':>6}  {'cos(pooled A, B)':>16} {'max diff':>13}  "
        f"{'cos(pooled A, B)':>16} {'max diff':>13}",
    ]
    n = len(w.cosine)
    for i in range(n):
        name = "embed" if i == 0 else ("final" if i == n - 1 else str(i))
        lines.append(
            f"{name:>6}  {w.cosine[i]:>16.6f} {_diff(w, i):>13}  "
            f"{wo.cosine[i]:>16.6f} {_diff(wo, i):>13}"
        )
    what = "pooled or per token (matched by token)" if r.same_tokens else "of the pooled states"
    lines.append(f"(max diff: the largest absolute difference, {what}; in float64)")
    return "\n".join(lines)


def _diff(c, i: int) -> str:
    diffs = c.token_diff if c.token_diff is not None else c.pooled_diff
    return f"{max(diffs[i], c.pooled_diff[i]):.3g}"
