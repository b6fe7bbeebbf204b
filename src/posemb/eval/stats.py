"""Standard errors, paired differences and ties between evaluation records.

Each record keeps one mean loss per unit it was measured on (``span_losses``: per span of
the evaluation text; ``example_losses``: per example of a synthetic task). Two records
measured on the same units (the same text fingerprint, or the same task examples) are a
paired comparison: the difference of their means has the standard error of the mean of
the per-unit differences, much smaller than either record's own standard error when the
two move together (as losses on the same text do).

A difference is a **tie** when it is within :data:`TIE_SE` standard errors of zero
(``|diff| <= 2 * se``); an exactly zero difference is always a tie.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

TIE_SE = 2.0  # a paired difference within this many standard errors of zero is a tie


def mean_se(values: Sequence[float] | np.ndarray) -> tuple[float, float | None]:
    """``(mean, standard error of the mean)``; the error is None for a single value.

    The standard error is ``s / sqrt(n)`` with ``s`` the sample standard deviation
    (``ddof = 1``).
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("no values: a mean needs at least one")
    se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else None
    return float(v.mean()), se


def is_tie(diff: float, se: float | None) -> bool:
    """``|diff| <= 2 se`` (and a zero difference whatever the error)."""
    return diff == 0 or (se is not None and abs(diff) <= TIE_SE * se)


def units(record: dict[str, Any]) -> list[float] | None:
    """The per-unit losses of a record (spans or examples), or None."""
    return record.get("span_losses") or record.get("example_losses")


def paired_key(record: dict[str, Any]) -> tuple | None:
    """Records with equal keys were measured on the same units (None: not pairable)."""
    prov = record.get("provenance") or {}
    data = prov.get("data") or {}
    if record.get("loss") is None or not units(record):
        return None
    if "span_losses" in record:
        return ("text", data.get("fingerprint"))
    return ("task", data.get("task"), data.get("seed"), record["eval_len"], len(units(record)))


def paired_difference(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """``a``'s loss minus ``b``'s, paired over their units: ``{"diff", "diff_se", "tie"}``.

    Raises:
        ValueError: the records were not measured on the same units.
    """
    ka, kb = paired_key(a), paired_key(b)
    if ka is None or ka != kb or (ka[0] == "text" and ka[1] is None):
        raise ValueError(
            "these records were not measured on the same text (or examples): "
            "compare records of one eval/sweep run"
        )
    ua, ub = units(a), units(b)
    if len(ua) != len(ub):
        raise ValueError(f"records with {len(ua)} and {len(ub)} units cannot be paired")
    diff, se = mean_se(np.asarray(ua) - np.asarray(ub))
    return {"diff": diff, "diff_se": se, "tie": is_tie(diff, se)}


def add_comparisons(records: list[dict[str, Any]], name) -> None:
    """Add to each record, in place, its paired difference from

    - ``change_from``: the same configuration at the shortest length evaluated (text only:
      every length scores the same targets; tasks at other lengths are other problems);
    - ``vs_best``: the record with the lowest loss at the same length on the same units.

    ``name(record)`` names a configuration (scheme, recipe, method, mode).
    """
    for r in records:
        r.pop("change_from", None)
        r.pop("vs_best", None)
    ok = [r for r in records if paired_key(r) is not None]
    shortest: dict[tuple, dict] = {}
    for r in ok:
        key = (paired_key(r), name(r))
        if key not in shortest or r["eval_len"] < shortest[key]["eval_len"]:
            shortest[key] = r
    best: dict[tuple, dict] = {}
    for r in ok:
        key = (paired_key(r), r["eval_len"])
        if key not in best or r["loss"] < best[key]["loss"]:
            best[key] = r
    for r in ok:
        first = shortest[(paired_key(r), name(r))]
        if "span_losses" in r and first is not r:
            r["change_from"] = {"eval_len": first["eval_len"], **paired_difference(r, first)}
        top = best[(paired_key(r), r["eval_len"])]
        r["vs_best"] = {"name": name(top), **paired_difference(r, top)}
