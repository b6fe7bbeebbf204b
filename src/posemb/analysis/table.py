"""Diagnostics of a learned position table: pure functions on a ``[n, d]`` tensor.

Every function takes the table's position rows (reserved offset rows already removed),
copies them to the CPU in float64 and returns plain tensors, lists or dataclasses; nothing
here reads files or draws. Row ``i`` is position ``i``.

What learned tables tend to show (Wang & Chen 2020, "What Do Position Embeddings Learn?";
Ke et al. 2021): neighbouring rows are similar, the table lies close to a low-dimensional
curve (PCA), single dimensions oscillate like sinusoids of different frequencies, and rows
past the longest training sequence never move from their initial values.

Notation: ``n`` positions (rows), ``d`` width, ``f`` frequencies (``n // 2 + 1``).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import torch
from torch import Tensor

_EPS = 1e-12  # a zero row has cosine 0 with everything


def as_float64(weight: Tensor) -> Tensor:
    """The table as a detached CPU float64 ``[n, d]`` tensor (checked: 2-D, finite, ``n >= 2``)."""
    if not torch.is_tensor(weight) or weight.dim() != 2:
        shape = tuple(weight.shape) if torch.is_tensor(weight) else type(weight).__name__
        raise ValueError(f"a position table must be a 2-D [positions, width] tensor, got {shape}")
    if weight.shape[0] < 2 or weight.shape[1] < 1:
        raise ValueError(
            f"a position table needs at least 2 rows and 1 column, got shape {tuple(weight.shape)}"
        )
    w = weight.detach().to("cpu", torch.float64)
    if not torch.isfinite(w).all():
        bad = int((~torch.isfinite(w)).any(dim=1).nonzero()[0])
        raise ValueError(
            f"the position table has non-finite values (first in row {bad}); the weights are "
            "damaged"
        )
    return w


def _unit_rows(w: Tensor) -> Tensor:
    return w / w.norm(dim=1, keepdim=True).clamp_min(_EPS)


def row_norms(weight: Tensor) -> Tensor:
    """L2 norm of every row: ``[n, d] -> [n]``."""
    return as_float64(weight).norm(dim=1)


def cosine_similarity_matrix(weight: Tensor) -> Tensor:
    """Cosine similarity of every pair of rows: ``[n, d] -> [n, n]`` (zero rows: 0)."""
    u = _unit_rows(as_float64(weight))
    return u @ u.T  # [n, n]


def adjacent_cosine(weight: Tensor) -> Tensor:
    """Cosine similarity of each row with the next: ``[n, d] -> [n - 1]``."""
    u = _unit_rows(as_float64(weight))
    return (u[:-1] * u[1:]).sum(dim=1)


def cosine_by_distance(weight: Tensor, max_distance: int) -> Tensor:
    """Mean cosine similarity of row pairs ``|i - j| = k`` for ``k = 0 .. max_distance``.

    Returns ``[min(max_distance, n - 1) + 1]``; entry 0 is 1 for non-zero rows.
    """
    u = _unit_rows(as_float64(weight))
    n = u.shape[0]
    m = min(max_distance, n - 1)
    out = torch.zeros(m + 1, dtype=torch.float64)
    for k in range(m + 1):  # [n - k] diagonals: memory O(n d), time O(m n d)
        out[k] = (u[: n - k] * u[k:]).sum(dim=1).mean()
    return out


@dataclass
class PCAResult:
    """Principal components of the centred table.

    Attributes:
        projections: ``[n, k]`` each row's coordinates on the first ``k`` components (the
            trajectory: positions traced through the table's main directions).
        components: ``[k, d]`` unit directions; sign fixed so the largest entry is positive.
        explained_variance_ratio: ``[min(n, d)]`` share of the variance per component,
            descending, summing to 1 (all 0 for a constant table).
    """

    projections: Tensor
    components: Tensor
    explained_variance_ratio: Tensor


def pca(weight: Tensor, k: int = 3) -> PCAResult:
    """PCA of the rows via ``torch.linalg.svd`` of the centred table ``X = W - mean(W)``.

    ``X = U S Vᵀ``; projections ``U[:, :k] S[:k]``, explained variance ``S² / Σ S²``.
    """
    w = as_float64(weight)
    x = w - w.mean(dim=0, keepdim=True)  # [n, d]
    u, s, vh = torch.linalg.svd(x, full_matrices=False)  # [n, r], [r], [r, d]; r = min(n, d)
    total = float((s**2).sum())
    ratio = s**2 / total if total > 0 else torch.zeros_like(s)
    k = min(k, s.shape[0])
    comps = vh[:k].clone()
    sign = torch.sign(comps.gather(1, comps.abs().argmax(dim=1, keepdim=True))).squeeze(1)
    sign[sign == 0] = 1.0
    comps = comps * sign[:, None]
    proj = u[:, :k] * s[:k] * sign  # [n, k]
    return PCAResult(projections=proj, components=comps, explained_variance_ratio=ratio)


@dataclass
class SpectrumResult:
    """Per-dimension spectrum over positions.

    Attributes:
        magnitude: ``[d, f]`` ``|rfft|`` of each centred column over the ``n`` positions.
        frequencies: ``[f]`` cycles per position (``k / n``); index 0 is the constant term.
        dominant_frequency: ``[d]`` the strongest non-zero frequency of each dimension.
        dominant_period: ``[d]`` its period in positions (``1 / frequency``).
        peak_energy_fraction: ``[d]`` share of a dimension's energy (``Σ|X_k|²``, ``k >= 1``)
            in the dominant bin and its ``halfwidth`` neighbours: 1 for a pure sinusoid,
            about ``(2·halfwidth + 1) / f`` for noise; 0 for a constant column.
    """

    magnitude: Tensor
    frequencies: Tensor
    dominant_frequency: Tensor
    dominant_period: Tensor
    peak_energy_fraction: Tensor


def spectrum(weight: Tensor, halfwidth: int = 1) -> SpectrumResult:
    """FFT magnitude over positions for every dimension, with each one's dominant frequency.

    A sinusoid whose frequency falls between two bins leaks into its neighbours, so the
    peak's energy counts ``halfwidth`` bins on each side.
    """
    w = as_float64(weight)
    n = w.shape[0]
    x = w - w.mean(dim=0, keepdim=True)  # [n, d]
    mag = torch.fft.rfft(x, dim=0).abs().T  # [d, f]
    freqs = torch.arange(mag.shape[1], dtype=torch.float64) / n
    power = mag[:, 1:] ** 2  # [d, f - 1]: without the constant term
    peak = power.argmax(dim=1)  # [d]
    lo = (peak - halfwidth).clamp_min(0)
    hi = (peak + halfwidth).clamp_max(power.shape[1] - 1)
    idx = torch.arange(power.shape[1])[None, :]
    window = (idx >= lo[:, None]) & (idx <= hi[:, None])  # [d, f - 1]
    total = power.sum(dim=1)
    frac = torch.where(
        total > 0, (power * window).sum(dim=1) / total.clamp_min(_EPS), torch.zeros_like(total)
    )
    dom = freqs[1:][peak]  # [d]
    return SpectrumResult(mag, freqs, dom, 1.0 / dom.clamp_min(_EPS), frac)


def summarize_spectrum(spec: SpectrumResult, threshold: float = 0.5, top: int = 8) -> dict:
    """How sinusoid-like the dimensions are, as JSON-able numbers.

    A dimension counts as sinusoid-like when at least ``threshold`` of its energy sits in
    its dominant peak. ``common_periods`` lists the most frequent dominant periods among them.
    """
    frac = spec.peak_energy_fraction
    like = frac >= threshold
    periods = Counter(round(float(p), 2) for p in spec.dominant_period[like])
    return {
        "threshold": threshold,
        "sinusoid_like_dims": int(like.sum()),
        "sinusoid_like_fraction": float(like.double().mean()),
        "mean_peak_energy_fraction": float(frac.mean()),
        "median_dominant_period": float(spec.dominant_period.median()),
        "common_periods": [{"period": p, "dims": c} for p, c in periods.most_common(top)],
    }


# -- untrained rows --------------------------------------------------------------------------------
def untrained_rows(weight: Tensor, initial: Tensor) -> list[int]:
    """Rows bit-identical to their initial values (exact equality, no tolerance).

    A row that got no gradient stays exactly at its init under Adam(W) without weight decay
    (the update ``m / (√v + ε)`` is 0 when ``m = v = 0``); posemb's trainer exempts position
    tables from decay by default, so equality is exact, not approximate.
    """
    if weight.shape != initial.shape:
        raise ValueError(
            f"table shape {tuple(weight.shape)} differs from its initial shape "
            f"{tuple(initial.shape)}"
        )
    same = (weight.detach().cpu() == initial.detach().cpu().to(weight.dtype)).all(dim=1)
    return same.nonzero().flatten().tolist()


@dataclass
class HeuristicUntrained:
    """Rows that *look* untrained when the initial values are unknown.

    Attributes:
        rows: flagged rows (ascending).
        threshold: ``τ``, the strong threshold on a row's largest ``|cos|`` with a neighbour.
        weak_threshold: ``τ_weak``, the threshold that grows a flagged region.
        smooth: whether the other rows are smooth enough for the test to mean anything.
        median_adjacent_cosine: median cosine of adjacent pairs among the unflagged rows.
    """

    rows: list[int]
    threshold: float
    weak_threshold: float
    smooth: bool
    median_adjacent_cosine: float


def untrained_rows_heuristic(
    weight: Tensor, threshold: float | None = None, min_run: int = 2, smooth_at: float = 0.5
) -> HeuristicUntrained:
    """A heuristic for rows that never trained, when the init is unknown.

    Trained tables are smooth (adjacent rows similar), while rows left at a random init are
    unrelated to their neighbours: for independent random ``d``-vectors the cosine is about
    ``N(0, 1/d)``. With ``m_i`` the largest ``|cos|`` of row ``i`` with a neighbour (all-zero
    rows: 0), a run of consecutive rows with ``m_i < τ_weak`` is flagged when it holds a row
    with ``m_i < τ`` and is at least ``min_run`` long (one odd row, like GPT-2's position 0,
    is not a region). ``τ`` defaults to ``3/√d`` clipped to ``[0.05, 0.35]``; ``τ_weak =
    min(2τ, median adjacent cosine / 2)`` but at least ``τ`` (hysteresis: a chance
    similarity between two random rows does not split a region). Nothing is flagged unless
    the remaining rows are smooth (median adjacent cosine ``>= smooth_at``).
    """
    w = as_float64(weight)
    n, d = w.shape
    tau = float(threshold) if threshold is not None else min(0.35, max(0.05, 3.0 / math.sqrt(d)))
    cos = adjacent_cosine(w)  # [n - 1]
    tau_weak = max(tau, min(2 * tau, float(cos.median()) / 2))
    zero = torch.zeros(1, dtype=torch.float64)
    m = torch.maximum(torch.cat([zero, cos.abs()]), torch.cat([cos.abs(), zero]))  # [n]
    strong = set((m < tau).nonzero().flatten().tolist())
    rows = [
        i
        for a, b in to_ranges((m < tau_weak).nonzero().flatten().tolist())
        if b - a + 1 >= min_run and strong.intersection(range(a, b + 1))
        for i in range(a, b + 1)
    ]
    keep = torch.ones(n, dtype=torch.bool)
    keep[rows] = False
    pair_kept = keep[:-1] & keep[1:]
    median = float(cos[pair_kept].median()) if pair_kept.any() else float("nan")
    smooth = bool(pair_kept.any()) and median >= smooth_at
    return HeuristicUntrained(rows if smooth else [], tau, tau_weak, smooth, median)


# -- nearest neighbours ----------------------------------------------------------------------------
def nearest_neighbor_offsets(
    weight: Tensor, among: Tensor | None = None, chunk: int = 1024
) -> Tensor:
    """For each row ``i``, the offset ``j - i`` of its most cosine-similar other row ``j``.

    Args:
        weight: ``[n, d]`` table.
        among: optional ``[n]`` bool mask: only these rows are candidates ``j`` and only their
            offsets are returned (e.g. the trained rows); default all rows.
        chunk: rows per block, so memory stays ``O(chunk · n)``.

    Returns:
        LongTensor ``[n]`` (``[among.sum()]`` with a mask). Ties go to the lowest ``j``.
    """
    u = _unit_rows(as_float64(weight))
    n = u.shape[0]
    mask = torch.ones(n, dtype=torch.bool) if among is None else among.to(torch.bool)
    if int(mask.sum()) < 2:
        raise ValueError(
            f"nearest neighbours need at least 2 candidate rows, got {int(mask.sum())}"
        )
    rows = mask.nonzero().flatten()
    out = torch.empty(rows.numel(), dtype=torch.long)
    for start in range(0, rows.numel(), chunk):
        block = rows[start : start + chunk]
        sims = u[block] @ u.T  # [c, n]
        sims[:, ~mask] = -math.inf
        sims[torch.arange(block.numel()), block] = -math.inf  # not itself
        out[start : start + block.numel()] = sims.argmax(dim=1) - block
    return out


def offset_histogram(offsets: Tensor) -> dict[int, int]:
    """``{offset: count}`` sorted by offset."""
    return dict(sorted(Counter(int(o) for o in offsets).items()))


def dominant_offsets(offsets: Tensor, top: int = 5) -> list[dict]:
    """The ``top`` most common nearest-neighbour offsets with their counts and shares."""
    n = max(int(offsets.numel()), 1)
    counts = Counter(int(o) for o in offsets).most_common(top)
    return [{"offset": o, "count": c, "fraction": c / n} for o, c in counts]


# -- helpers ---------------------------------------------------------------------------------------
def to_ranges(rows: list[int]) -> list[tuple[int, int]]:
    """``[3, 4, 5, 9]`` -> ``[(3, 5), (9, 9)]`` (inclusive ranges of sorted, distinct ints)."""
    out: list[tuple[int, int]] = []
    for r in sorted(set(rows)):
        if out and r == out[-1][1] + 1:
            out[-1] = (out[-1][0], r)
        else:
            out.append((r, r))
    return out


def format_ranges(rows: list[int], limit: int = 6) -> str:
    """``[3, 4, 5, 9]`` -> ``"3–5, 9"``; more than ``limit`` ranges end with ``…``."""
    parts = [f"{a}" if a == b else f"{a}–{b}" for a, b in to_ranges(rows)]
    more = len(parts) - limit
    return ", ".join(parts[:limit]) + (f", … ({more} more ranges)" if more > 0 else "")
