"""Plain-language readings of evaluation records that never rank what is tied.

Ties are judged on paired differences (:mod:`posemb.eval.stats`): two configurations
whose losses differ by at most two standard errors of their paired difference are tied,
and configurations with identical losses on every span (a learned table at or below its
own length, whatever the extension method) are one configuration for the reading.
"""

from __future__ import annotations

import math
from typing import Any

from ..runs.config import POSITION_RECIPES
from .stats import paired_difference, paired_key


def recipe_phrase(recipe: str) -> str | None:
    """``random positions`` for a position recipe, the recipe itself otherwise
    (``ft5%@256``), None for the plain ``start``."""
    if recipe == "start":
        return None
    return f"{recipe} positions" if recipe in POSITION_RECIPES else recipe


def name(r: dict[str, Any]) -> str:
    """``learned``, ``learned (random positions, extended by tile)``,
    ``learned (sliding window)``, ``learned (ft5%@256, extended by interpolate)``."""
    method = r["method"]
    extra = [
        recipe_phrase(r["recipe"]),
        None
        if method == "none"
        else (f"overflow={method}" if method in ("clamp", "wrap") else f"extended by {method}"),
        "sliding window" if r["mode"] == "sliding" else None,
    ]
    extra = [x for x in extra if x]
    return r["scheme"] + (f" ({', '.join(extra)})" if extra else "")


def unit(records: list[dict[str, Any]]) -> str:
    """``nats per byte`` when every record scored a byte-level text (one token is one byte),
    ``nats per token`` otherwise."""
    scored = [r for r in records if r.get("loss") is not None]
    tokenizers = {((r.get("provenance") or {}).get("data") or {}).get("tokenizer") for r in scored}
    byte_level = tokenizers == {"byte"} or all("bits_per_byte" in r for r in scored)
    return "nats per byte" if scored and byte_level else "nats per token"


def scale_sentence(records: list[dict[str, Any]]) -> str:
    """For byte-level losses: the uniform guess and bits per byte, to read a loss against."""
    if unit(records) != "nats per byte":
        return ""
    ok = [r["loss"] for r in records if r.get("loss") is not None]
    low = f" ({min(ok):.3f} nats is {min(ok) / math.log(2):.2f} bits per byte)" if ok else ""
    return (
        f"For scale: guessing uniformly among the 256 byte values scores ln 256 = "
        f"{math.log(256):.3f} nats per byte (8 bits); divide by ln 2 = 0.693 for bits per "
        f"byte, the unit byte-level papers report{low}."
    )


def pm(value: float, se: float | None, sign: bool = False) -> str:
    """``2.461 ± 0.012`` (``+0.853 ± 0.031`` with ``sign``)."""
    text = f"{value:+.3f}" if sign else f"{value:.3f}"
    return text + (f" ± {se:.3f}" if se is not None else "")


def describe(records: list[dict[str, Any]]) -> list[str]:
    """A few sentences: the lowest and highest loss at the shortest and the longest length
    (with what is tied to them), then how each configuration changes between the two."""
    ok = [r for r in records if r.get("loss") is not None]
    if not ok:
        return ["No length could be evaluated."]
    metric = "accuracy" if any("accuracy" in r for r in ok) else "loss"
    train_len = ok[0]["train_len"]
    shortest = min(r["eval_len"] for r in ok)
    longest = max(r["eval_len"] for r in ok)
    where = (
        f"At the training length ({train_len} tokens)"
        if shortest == train_len
        else f"At {shortest} tokens, the shortest length evaluated (trained at {train_len}),"
    )
    out = [f"{where} {_spread(ok, shortest, metric)}."]
    if longest != shortest:
        out.append(f"At {longest} tokens {_spread(ok, longest, metric)}.")
        change = _change(ok, shortest, longest)
        if change:
            out.append(change)
    return out


def _groups(records: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Records at one length, identical ones (same losses on every unit) merged into one."""
    groups: list[tuple[list[str], dict[str, Any]]] = []
    for r in sorted(records, key=lambda r: r["loss"]):
        for names, first in groups:
            if _identical(r, first):
                names.append(name(r))
                break
        else:
            groups.append(([name(r)], r))
    return [(_merged(names, first), first) for names, first in groups]


def _identical(a: dict[str, Any], b: dict[str, Any]) -> bool:
    units = a.get("span_losses") or a.get("example_losses")
    return (
        a["scheme"] == b["scheme"]
        and a["recipe"] == b["recipe"]
        and units is not None
        and units == (b.get("span_losses") or b.get("example_losses"))
        and a.get("accuracy") == b.get("accuracy")
    )


def _merged(names: list[str], r: dict[str, Any]) -> str:
    """One name, or ``learned (all 7 ways past its end give the same loss at this length)``
    for identical records: within its table no way past the end changes anything."""
    if len(names) == 1:
        return names[0]
    phrase = recipe_phrase(r["recipe"])
    recipe = f"{phrase}; " if phrase else ""
    return (
        f"{r['scheme']} ({recipe}all {len(names)} ways past its end give the same loss at this "
        "length)"
    )


def _tied(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Paired tie; records that cannot be paired are tied only when equal."""
    if a is b:
        return True
    if paired_key(a) is None or paired_key(a) != paired_key(b):
        return a["loss"] == b["loss"]
    return paired_difference(a, b)["tie"]


def _value(r: dict[str, Any], metric: str) -> str:
    if metric == "accuracy":
        return pm(r["accuracy"], r.get("accuracy_se")) + " exact match"
    return pm(r["loss"], r.get("loss_se")) + " " + unit([r])


def _spread(records: list[dict[str, Any]], length: int, metric: str) -> str:
    """The best and worst at ``length``, each with the configurations tied to it."""
    groups = _groups([r for r in records if r["eval_len"] == length])
    if metric == "accuracy":
        groups.sort(key=lambda g: -g[1]["accuracy"])
    if len(groups) == 1:
        return f"the {metric} of {groups[0][0]} is {_value(groups[0][1], metric)}"
    best, worst = groups[0], groups[-1]
    same = metric == "accuracy" and len({g[1]["accuracy"] for g in groups}) == 1
    if same or all(_tied(best[1], g[1]) for g in groups):
        return (
            f"all {len(groups)} configurations tie (each within 2 standard errors of the paired "
            f"difference from the best, {best[0]}: {_value(best[1], metric)})"
        )
    word = ("highest", "lowest") if metric == "accuracy" else ("lowest", "highest")
    return (
        f"the {word[0]} {metric} is {best[0]} ({_value(best[1], metric)})"
        f"{_with(best, groups)}; the {word[1]} {worst[0]} ({_value(worst[1], metric)})"
        f"{_with(worst, groups)}"
    )


def _with(anchor: tuple[str, dict[str, Any]], groups: list[tuple[str, dict[str, Any]]]) -> str:
    tied = [g[0] for g in groups if g is not anchor and _tied(anchor[1], g[1])]
    return f", tied with {', '.join(tied)}" if tied else ""


def _change(records: list[dict[str, Any]], shortest: int, longest: int) -> str:
    """How each configuration's loss moves from ``shortest`` to ``longest`` (paired)."""
    rises, falls, flat = [], [], []
    for r in records:
        c = r.get("change_from")
        if r["eval_len"] != longest or not c or c["eval_len"] != shortest:
            continue
        item = f"{name(r)}: {pm(c['diff'], c['diff_se'], sign=True)}"
        (flat if c["tie"] else rises if c["diff"] > 0 else falls).append(item)
    if not (rises or falls or flat):
        return ""
    parts = []
    if rises:
        parts.append("rises for " + "; ".join(rises))
    if falls:
        parts.append("falls for " + "; ".join(falls))
    if flat:
        parts.append("does not change beyond 2 standard errors for " + "; ".join(flat))
    return (
        f"From {shortest} to {longest} tokens (paired over the same targets), the loss "
        + ", and ".join(parts)
        + "."
    )
