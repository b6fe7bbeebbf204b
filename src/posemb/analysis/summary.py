"""All diagnostics of one table, their JSON summary and a plain reading of them.

``analyze_table`` runs every function of :mod:`posemb.analysis.table` on the position rows
(reserved offset rows split off and reported on their own); ``plain_reading`` turns the
numbers into sentences a person can act on: which rows never trained, how the trained rows
are organised, and what stands out in the row norms (a jump, outlier rows) with what it
usually means.

Notation: ``n`` positions, ``d`` width, ``k`` principal components.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .table import (
    JUMP_MIN_EFFECT,
    JUMP_MIN_RELATIVE,
    JUMP_MIN_SHARPNESS,
    JUMP_WINDOW,
    OUTLIER_MIN_RELATIVE,
    OUTLIER_MIN_Z,
    OUTLIER_WINDOW,
    HeuristicUntrained,
    NormFeatures,
    PCAResult,
    SpectrumResult,
    adjacent_cosine,
    as_float64,
    cosine_by_distance,
    dominant_offsets,
    format_percent,
    format_ranges,
    nearest_neighbor_offsets,
    norm_features,
    offset_histogram,
    pca,
    row_norms,
    spectrum,
    summarize_spectrum,
    to_ranges,
    untrained_rows,
    untrained_rows_heuristic,
)


@dataclass
class TableAnalysis:
    """Every diagnostic of a table's position rows (positions, not table rows:
    row = offset + position).

    Attributes:
        weight: ``[n, d]`` float64 position rows.
        offset: reserved rows before them (not analysed, see ``reserved``).
        pca: principal components (``k = 3``).
        spectrum: per-dimension FFT over positions.
        norms: ``[n]`` row norms.
        adjacent: ``[n - 1]`` cosine of each row with the next.
        by_distance: ``[m + 1]`` mean cosine at distance ``0 .. m``.
        nn_offsets: ``[n]`` offset ``j - i`` of each row's most similar other row.
        trained_nn_offsets: the same among trained rows only (when some rows are untrained).
        untrained: positions whose rows never moved (exact) or look so (heuristic), and the
            positions past those the run's training sequences reached, when known.
        untrained_method: ``"exact"`` or ``"heuristic"``.
        not_initial: untrained positions whose rows are not their initial values (made by
            extending the table, or shrunk by weight decay): never trained all the same.
        heuristic: the heuristic's details when it was used.
        reserved: facts about the reserved rows (norms, whether they moved).
        norm_features: a jump in the trained rows' norms and their outlier rows.
    """

    weight: Tensor
    offset: int
    pca: PCAResult
    spectrum: SpectrumResult
    norms: Tensor
    adjacent: Tensor
    by_distance: Tensor
    nn_offsets: Tensor
    untrained: list[int]
    untrained_method: str
    heuristic: HeuristicUntrained | None = None
    trained_nn_offsets: Tensor | None = None
    reserved: dict[str, Any] = field(default_factory=dict)
    norm_features: NormFeatures = field(default_factory=lambda: NormFeatures(None, []))
    not_initial: list[int] = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        return int(self.weight.shape[0])

    @property
    def dim(self) -> int:
        return int(self.weight.shape[1])

    @property
    def trained_adjacent(self) -> Tensor:
        """Adjacent cosines of pairs where neither row is untrained."""
        keep = torch.ones(self.n_rows, dtype=torch.bool)
        keep[self.untrained] = False
        return self.adjacent[keep[:-1] & keep[1:]]

    def to_json(self) -> dict[str, Any]:
        """Every number, JSON-able (what ``analysis.json`` holds)."""
        ratio = self.pca.explained_variance_ratio
        trained_adj = self.trained_adjacent
        out: dict[str, Any] = {
            "n_rows": self.n_rows,
            "offset": self.offset,
            "table_rows": self.offset + self.n_rows,
            "dim": self.dim,
            "rows_are": "positions (table row = offset + position)",
            "explained_variance_ratio": [round(float(v), 6) for v in ratio[:16]],
            "explained_variance_2d": float(ratio[:2].sum()),
            "explained_variance_3d": float(ratio[:3].sum()),
            "untrained": {
                "method": self.untrained_method,
                "count": len(self.untrained),
                "rows": self.untrained,
                "ranges": [list(r) for r in to_ranges(self.untrained)],
            },
            "cosine": {
                "mean_adjacent": float(self.adjacent.mean()),
                "mean_adjacent_trained": float(trained_adj.mean()) if trained_adj.numel() else None,
                "by_distance": [round(float(v), 6) for v in self.by_distance],
            },
            "nearest_neighbor_offsets": {
                "histogram": {str(k): v for k, v in offset_histogram(self.nn_offsets).items()},
                "dominant": dominant_offsets(self.nn_offsets),
                "fraction_adjacent": float((self.nn_offsets.abs() == 1).double().mean()),
            },
            "norms": _describe(self.norms),
            "spectrum": summarize_spectrum(self.spectrum),
            "reserved": self.reserved,
        }
        if self.heuristic is not None:
            out["untrained"]["heuristic"] = {
                "rule": "runs (>= 2 rows) of rows whose largest |cosine| with a neighbour is below "
                "weak_threshold, holding one below threshold, while the other rows are smooth "
                "(median adjacent cosine >= 0.5)",
                "threshold": self.heuristic.threshold,
                "weak_threshold": self.heuristic.weak_threshold,
                "table_smooth": self.heuristic.smooth,
                "median_adjacent_cosine_of_other_rows": self.heuristic.median_adjacent_cosine,
            }
        if self.trained_nn_offsets is not None:
            out["nearest_neighbor_offsets"]["trained_rows_only"] = {
                "dominant": dominant_offsets(self.trained_nn_offsets),
                "fraction_adjacent": float((self.trained_nn_offsets.abs() == 1).double().mean()),
            }
        if self.untrained:
            keep = torch.ones(self.n_rows, dtype=torch.bool)
            keep[self.untrained] = False
            out["norms"]["trained"] = _describe(self.norms[keep]) if keep.any() else None
            out["norms"]["untrained"] = _describe(self.norms[~keep])
        out["norms"].update(_norm_features_json(self.norm_features))
        return out


def analyze_table(
    table: Tensor,
    offset: int = 0,
    initial: Tensor | None = None,
    max_distance: int = 64,
    trained_positions: int | None = None,
) -> TableAnalysis:
    """Run every diagnostic on ``table[offset:]``.

    Args:
        table: ``[offset + n, d]`` the stored table, reserved rows included.
        offset: reserved leading rows, excluded from the diagnostics and reported apart.
        initial: ``[offset + n, d]`` its exact initial values when known: untrained rows are
            then the rows equal to them (exact); otherwise a heuristic is used and said so.
        max_distance: longest distance for the mean cosine by distance.
        trained_positions: how many leading positions the run's training sequences (and
            those of the runs it started from) reached, when known: the positions past them
            are untrained whatever their rows hold (a table extended by copying or
            resampling has rows unlike a fresh initialisation that never trained).
    """
    if table.dim() != 2:
        raise ValueError(
            f"a position table must be 2-D [positions, width], got shape {tuple(table.shape)}"
        )
    if not 0 <= offset <= table.shape[0] - 2:
        raise ValueError(
            f"offset {offset} leaves fewer than 2 positions in a table of {table.shape[0]} rows"
        )
    w = as_float64(table[offset:])  # [n, d]
    heuristic, not_initial = None, []
    if initial is not None:
        untrained = untrained_rows(table[offset:], initial[offset:])
        method = "exact"
    else:
        heuristic = untrained_rows_heuristic(w)
        untrained, method = heuristic.rows, "heuristic"
    if trained_positions is not None and trained_positions < w.shape[0]:
        past = set(range(max(trained_positions, 0), w.shape[0]))
        not_initial = sorted(past - set(untrained)) if method == "exact" else []
        untrained = sorted(set(untrained) | past) if method == "exact" else sorted(past)
        method, heuristic = "exact", None
    trained = torch.ones(w.shape[0], dtype=torch.bool)  # [n]
    trained[untrained] = False
    norms = row_norms(w)  # [n]
    trained_nn = (
        nearest_neighbor_offsets(w, among=trained)
        if untrained and int(trained.sum()) >= 2
        else None
    )
    reserved: dict[str, Any] = {"rows": list(range(offset))}
    if offset:
        reserved["norms"] = [float(v) for v in table[:offset].detach().cpu().double().norm(dim=1)]
        if initial is not None:
            reserved["untrained"] = untrained_rows(table[:offset], initial[:offset])
    return TableAnalysis(
        weight=w,
        offset=offset,
        pca=pca(w, 3),
        spectrum=spectrum(w),
        norms=norms,
        adjacent=adjacent_cosine(w),
        by_distance=cosine_by_distance(w, max_distance),
        nn_offsets=nearest_neighbor_offsets(w),
        untrained=untrained,
        untrained_method=method,
        heuristic=heuristic,
        trained_nn_offsets=trained_nn,
        reserved=reserved,
        not_initial=not_initial,
        norm_features=norm_features(norms, trained),
    )


def plain_reading(
    a: TableAnalysis, context: dict[str, Any] | None = None, *, patches: bool = False
) -> list[str]:
    """Which rows never trained (and why), how the trained rows are organised, then what
    stands out in the row norms, when something does: outlier rows and a jump, each with
    what it usually means. ``patches``: the positions are image patches (a ViT's), whose
    first one is not a special first position."""
    sentences = [_untrained_sentence(a, context or {}), _structure_sentence(a)]
    f = a.norm_features
    if f.outliers:
        sentences.append(_outlier_sentence(f, patches))
    if f.jump is not None:
        sentences.append(_jump_sentence(f))
    return sentences


def _outlier_sentence(f: NormFeatures, patches: bool) -> str:
    """Which rows' norms stand apart from their neighbours', and what an odd first row means."""
    rows = [o.position for o in f.outliers]
    shown = f.outliers[:4]
    norms = ", ".join(f"{o.norm:.2f} (neighbours {o.neighbours:.2f})" for o in shown)
    more = ", …" if len(f.outliers) > len(shown) else ""
    one = len(rows) == 1
    sentence = (
        f"The row norm{'' if one else 's'} of position{'' if one else 's'} "
        f"{format_ranges(rows)} {'is an outlier' if one else 'are outliers'}: "
        f"{norms}{more}, more than {OUTLIER_MIN_Z:g} robust standard deviations from the "
        "neighbouring rows"
    )
    if rows[0] == 0 and not patches:
        return sentence + (
            "; an outlier first row usually means a special first position: every input "
            "starts there ([CLS] or a beginning-of-text token), or the model uses it as an "
            "attention sink."
        )
    return sentence + (
        "; such a position is set apart from its neighbours in training (a token that always "
        "sits there, or a position trained more or less often)."
    )


def _jump_sentence(f: NormFeatures) -> str:
    """Where the row norms change level, and what such a change point usually means."""
    j = f.jump
    assert j is not None
    size = f"{j.effect:.1f}" if j.effect < 100 else "over 100"
    return (
        f"Row norms jump between positions {j.previous} and {j.position}: mean {j.before:.2f} "
        f"before, {j.after:.2f} from {j.position} on ({size} standard deviations); a "
        "jump between neighbouring positions usually means a change of training length: the "
        f"rows from {j.position} on trained for fewer steps (BERT, for one, trained most "
        "steps on 128-token sequences, then on 512)."
    )


def _never_trained_sentence(a: TableAnalysis, ctx: dict[str, Any]) -> str:
    """Untrained positions some of whose rows are not their initial values."""
    rows, n = a.untrained, a.n_rows
    sentence = f"Positions {format_ranges(rows)} ({len(rows)} of {n}) were never trained"
    seq_len, trained = ctx.get("seq_len"), ctx.get("trained_positions")
    if trained is not None and rows and rows[0] == trained:
        sentence += ": no training sequence of this run or the runs it started from reached "
        sentence += f"past position {trained - 1} (train.seq_len={seq_len})"
    return (
        sentence + f"; rows {format_ranges(a.not_initial)} of them are not their initial "
        "values: made when the table was extended (copied or resampled from other rows) or "
        "shrunk by weight decay, not learned."
    )


def _untrained_sentence(a: TableAnalysis, ctx: dict[str, Any]) -> str:
    n, rows = a.n_rows, a.untrained
    where = format_ranges(rows)
    if a.untrained_method == "heuristic":
        h = a.heuristic
        assert h is not None
        if not h.smooth:
            return (
                "Untrained rows cannot be told apart here (heuristic, initial values unknown): "
                "the table is not smooth enough (median adjacent cosine "
                f"{h.median_adjacent_cosine:.2f}) for rows left at a random init to stand out."
            )
        if not rows:
            return (
                "No rows look untrained (heuristic, initial values unknown: every row is similar "
                "to a neighbour, as trained rows are)."
            )
        return (
            f"Positions {where} look untrained ({len(rows)} of {n}; heuristic, initial values "
            f"unknown: their cosine to each neighbour is below {h.threshold:.2f} while the rest "
            "of the table is smooth)."
        )
    if not rows:
        extra = ""
        if ctx.get("positions") in ("random", "offset"):
            extra = (
                f" (train.positions={ctx['positions']} spreads training over rows past "
                "train.seq_len)"
            )
        return (
            f"Every one of the {n} rows moved from its initial value: the whole table was "
            f"trained{extra}."
        )
    if a.not_initial:
        return _never_trained_sentence(a, ctx)
    seq_len, tail = ctx.get("seq_len"), to_ranges(rows)[-1]
    sentence = f"Positions {where} ({len(rows)} of {n}) never moved from initialisation"
    if (
        seq_len is not None
        and ctx.get("positions") == "start"
        and len(to_ranges(rows)) == 1
        and tail[1] == n - 1
    ):
        first = tail[0]
        if first == seq_len:
            return (
                sentence
                + f": training never saw sequences longer than {seq_len} (train.seq_len={seq_len})."
            )
        if first == seq_len - 1 and ctx.get("causal"):
            return (
                sentence + f": training never saw sequences longer than {seq_len} "
                f"(train.seq_len={seq_len}), and position {seq_len - 1}, the last of every "
                "training sequence, predicted no next token (a run trained before posemb read "
                "windows of seq_len + 1 tokens), so its row got no gradient either."
            )
    return sentence + " (exact: compared with the initial table)."


def _structure_sentence(a: TableAnalysis) -> str:
    adj = a.trained_adjacent if a.untrained and a.trained_adjacent.numel() else a.adjacent
    which = "adjacent trained rows" if adj is not a.adjacent else "adjacent rows"
    mean = float(adj.mean())
    pca2 = float(a.pca.explained_variance_ratio[:2].sum())
    nn = a.trained_nn_offsets if a.trained_nn_offsets is not None else a.nn_offsets
    top = dominant_offsets(nn, 1)[0]
    among = " of trained rows" if a.trained_nn_offsets is not None else " of rows"
    if mean >= 0.5:
        head = f"Neighbouring positions are similar (mean cosine of {which} {mean:.2f})"
    elif mean >= 0.2:
        head = f"Neighbouring positions are somewhat similar (mean cosine of {which} {mean:.2f})"
    else:
        head = (
            f"Neighbouring positions are nearly unrelated (mean cosine of {which} {mean:.2f}), "
            "as in a table still close to a random init"
        )
    return (
        f"{head}; the first two principal components hold {pca2:.0%} of the variance, and the "
        f"most common nearest-neighbour offset is {top['offset']:+d} "
        f"({format_percent(top['fraction'])}{among})."
    )


def _describe(x: Tensor) -> dict[str, float]:
    return {
        "mean": float(x.mean()),
        "std": float(x.std()) if x.numel() > 1 else 0.0,
        "min": float(x.min()),
        "max": float(x.max()),
        "argmax": int(x.argmax()),
    }


def _norm_features_json(f: NormFeatures) -> dict[str, Any]:
    """The jump and outlier rows of the norms, with the rules that found them."""
    j = f.jump
    return {
        "jump": None
        if j is None
        else {
            "position": j.position,
            "previous": j.previous,
            "mean_before": j.before,
            "mean_after": j.after,
            "effect_sd": _finite(j.effect),
        },
        "outliers": [
            {"position": o.position, "norm": o.norm, "neighbours": o.neighbours, "z": _finite(o.z)}
            for o in f.outliers
        ],
        "rules": {
            "jump": f"the split of the trained rows' norms with the largest |mean difference| / "
            f"pooled sd, when >= {JUMP_MIN_EFFECT:g}, >= {JUMP_MIN_RELATIVE:.0%} of the median "
            f"norm, and sharp (the medians of {JUMP_WINDOW} rows each side differ by >= "
            f"{JUMP_MIN_SHARPNESS:.0%} of it)",
            "outlier": f"a trained row whose norm is > {OUTLIER_MIN_Z:g} robust sd (1.4826 MAD) "
            f"and >= {OUTLIER_MIN_RELATIVE:.0%} of the median norm from the running median of "
            f"the {2 * OUTLIER_WINDOW + 1} rows around it",
        },
    }


def _finite(x: float) -> float | None:
    """``x``, or None for an infinite score (no spread at all): JSON has no infinity."""
    return x if math.isfinite(x) else None
