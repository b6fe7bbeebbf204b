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


# -- row norms: jumps and outliers -----------------------------------------------------------------
JUMP_MIN_EFFECT = 3.0  # the levels differ by at least this many pooled standard deviations
JUMP_MIN_RELATIVE = 0.05  # ... and by at least 5% of the median norm
JUMP_MIN_SHARPNESS = 0.5  # the local step (medians of JUMP_WINDOW rows each side) holds half of it
JUMP_WINDOW = 4
JUMP_MIN_SEGMENT = 8  # rows on each side of a jump
OUTLIER_MIN_Z = 6.0  # robust z-score (median / MAD) of a row's norm against its neighbours'
OUTLIER_MIN_RELATIVE = 0.1  # ... and at least 10% of the median norm away from them
OUTLIER_WINDOW = 5  # neighbours on each side in the running median
NORM_MIN_ROWS = 8  # fewer rows: no verdict
_MAD_TO_SD = 1.4826  # MAD x this estimates the standard deviation of a normal sample


@dataclass
class NormJump:
    """A change point in the row norms: the rows from ``position`` on sit at another level.

    Attributes:
        position: the first position after the jump.
        previous: the last position before it (``position - 1`` unless rows were left out).
        before: mean norm of the rows before the jump.
        after: mean norm of the rows from ``position`` on.
        effect: ``|after - before|`` in pooled standard deviations of the two sides.
    """

    position: int
    previous: int
    before: float
    after: float
    effect: float


@dataclass
class NormOutlier:
    """A row whose norm stands apart from its neighbours'.

    Attributes:
        position: the row's position.
        norm: its norm.
        neighbours: the running median of the norms around it (its own included).
        z: ``(norm - neighbours) / (1.4826 · MAD)`` of every row's such residual.
    """

    position: int
    norm: float
    neighbours: float
    z: float


@dataclass
class NormFeatures:
    """What stands out in a table's row norms (:func:`norm_features`)."""

    jump: NormJump | None
    outliers: list[NormOutlier]


def norm_features(norms: Tensor, keep: Tensor | None = None) -> NormFeatures:
    """Outlier rows and the largest jump in the row norms ``[n]``, among the rows ``keep``
    (``[n]`` bool; default all: pass the trained rows, untrained rows have their own test).

    Outliers (:func:`norm_outliers`) are found first and left out of the jump test
    (:func:`norm_jump`), so one odd row (often position 0) does not inflate the spread.
    Both report positions, i.e. indices into ``norms``. Fewer than ``NORM_MIN_ROWS`` rows:
    nothing is reported.
    """
    x = norms.detach().to("cpu", torch.float64).flatten()
    mask = torch.ones(x.numel(), dtype=torch.bool) if keep is None else keep.to(torch.bool)
    positions = mask.nonzero().flatten()  # [m]
    if positions.numel() < NORM_MIN_ROWS:
        return NormFeatures(None, [])
    x = x[positions]  # [m]
    outliers = norm_outliers(x)
    rest = torch.ones(x.numel(), dtype=torch.bool)
    rest[[o.position for o in outliers]] = False
    jump = norm_jump(x[rest])
    kept = positions[rest]
    for o in outliers:
        o.position = int(positions[o.position])
    if jump is not None:
        jump.position, jump.previous = int(kept[jump.position]), int(kept[jump.previous])
    return NormFeatures(jump, outliers)


def norm_outliers(norms: Tensor) -> list[NormOutlier]:
    """Rows whose norm stands apart from their neighbours' (``[n]`` norms in position order).

    Each row's residual is its norm minus the running median of the ``2·OUTLIER_WINDOW + 1``
    norms around it (a median follows steps and trends, and one odd row does not move it);
    the spread is the MAD of all residuals. A row is an outlier when its robust z-score
    ``|residual| / (1.4826 · MAD)`` exceeds ``OUTLIER_MIN_Z`` and the residual is at least
    ``OUTLIER_MIN_RELATIVE`` of the median norm (a near-constant table's tiny wobbles are
    not outliers).
    """
    x = norms.detach().to("cpu", torch.float64).flatten()
    if x.numel() < NORM_MIN_ROWS:
        return []
    w = OUTLIER_WINDOW
    pad = torch.full((w,), math.nan, dtype=torch.float64)
    windows = torch.cat([pad, x, pad]).unfold(0, 2 * w + 1, 1)  # [n, 2w + 1]
    local = windows.nanmedian(dim=1).values  # [n]
    r = x - local  # [n]
    scale = _MAD_TO_SD * float((r - r.median()).abs().median())
    big = r.abs() >= OUTLIER_MIN_RELATIVE * float(x.median())
    z = r.abs() / scale if scale > 0 else torch.where(big, math.inf, 0.0).double()
    rows = ((z > OUTLIER_MIN_Z) & big).nonzero().flatten().tolist()
    return [NormOutlier(i, float(x[i]), float(local[i]), float(z[i])) for i in rows]


def norm_jump(norms: Tensor) -> NormJump | None:
    """The largest change point of the norms ``[n]``, or None when no jump is large.

    Over every split ``k`` leaving ``JUMP_MIN_SEGMENT`` rows each side, the effect
    ``|mean(x[k:]) - mean(x[:k])| / pooled sd`` (Cohen's d); the split maximising it is a
    jump when the effect is at least ``JUMP_MIN_EFFECT``, the difference at least
    ``JUMP_MIN_RELATIVE`` of the median norm, and the step is sharp: the medians of the
    ``JUMP_WINDOW`` rows on each side differ by at least ``JUMP_MIN_SHARPNESS`` of it (a
    smooth trend splits into two levels too, but has no step between neighbours).
    """
    x = norms.detach().to("cpu", torch.float64).flatten()
    n, s = x.numel(), JUMP_MIN_SEGMENT
    if n < 2 * s:
        return None
    c = x - x.mean()  # centred: the sums below lose nothing
    zero = torch.zeros(1, dtype=torch.float64)
    s1, s2 = torch.cat([zero, c.cumsum(0)]), torch.cat([zero, (c * c).cumsum(0)])  # [n + 1]
    k = torch.arange(s, n - s + 1, dtype=torch.float64)  # [splits]
    ki = k.long()
    mean_a, mean_b = s1[ki] / k, (s1[-1] - s1[ki]) / (n - k)
    ss = s2[-1] - k * mean_a**2 - (n - k) * mean_b**2  # within-side sum of squares
    sd = (ss.clamp_min(0) / (n - 2)).sqrt()
    diff = (mean_b - mean_a).abs()
    inf = torch.where(diff > 0, math.inf, 0.0)  # no spread at all: any difference is a jump
    effect = torch.where(sd > 0, diff / sd.clamp_min(1e-300), inf)
    best = int(effect.argmax())
    at, step = int(ki[best]), float(mean_b[best] - mean_a[best])
    local = float(x[at : at + JUMP_WINDOW].median() - x[max(0, at - JUMP_WINDOW) : at].median())
    if (
        float(effect[best]) < JUMP_MIN_EFFECT
        or abs(step) < JUMP_MIN_RELATIVE * float(x.median())
        or local * step <= 0
        or abs(local) < JUMP_MIN_SHARPNESS * abs(step)
    ):
        return None
    mean = float(x.mean())
    before, after = mean + float(mean_a[best]), mean + float(mean_b[best])
    return NormJump(at, at - 1, before, after, float(effect[best]))


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


def format_percent(share: float) -> str:
    """A share as a percentage that never rounds a part to 0% or 100%: ``0.42`` -> ``"42%"``,
    ``0.0059`` -> ``"0.6%"``, ``0.0004`` -> ``"<0.1%"``, ``0.9996`` -> ``">99.9%"``."""
    if share <= 0 or share >= 1:
        return f"{share:.0%}"
    if share < 0.001:
        return "<0.1%"
    if share > 0.999:
        return ">99.9%"
    return f"{share:.1%}" if share < 0.01 or share > 0.99 else f"{share:.0%}"


def format_share(count: int, total: int) -> str:
    """``3, 512`` -> ``"3 of 512 (0.6%)"``; ``0, 512`` -> ``"0 of 512"``."""
    if count == 0 or total == 0:
        return f"{count} of {total}"
    return f"{count} of {total} ({format_percent(count / total)})"
