"""The ``extrapolate`` extension method: fit a few sinusoids to each column of a table and
continue them past its end.

What it fits: each column ``y[:, j]`` of the trained rows (one dimension of the position
vectors, as a function of the position) is modelled as a constant plus at most
``n_frequencies`` sinusoids, ``c + sum_k a_k sin(w_k t) + b_k (cos(w_k t) - 1)``, and the
fitted curve is evaluated at the new positions.

Why sinusoids: a table initialised from the sinusoidal table (``init="sinusoidal"``), or
one that learned smooth periodic structure, is continued by the periodic part it already
has, where ``repeat-last`` flattens it and ``tile`` jumps back to row 0. A column without
such structure (noise) gains nothing from a sinusoid and continues as its mean.

How: frequencies enter the model nonlinearly, so they are chosen greedily from a grid of
candidates and then refined by Levenberg-Marquardt with variable projection (Golub &
Pereyra 1973): the coefficients ``c, a_k, b_k`` are always the exact linear least-squares
solution for the current frequencies, and only the frequencies are iterated. All columns
are fitted at once, batched, in float64 on the CPU.

Called by :func:`posemb.positional.extend.extend_table` (``method="extrapolate"``).

Notation: ``n`` trained rows, ``d`` columns, ``m`` rows after extension, ``k`` sinusoids
of a column, ``t`` the centred positions ``0 - (n-1)/2 .. (n-1)/2``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

_F64 = torch.float64
_BASE = 10000.0  # the sinusoidal table's wavelength base: its frequencies are always candidates
_LM_STEPS = 20  # most Levenberg-Marquardt steps per round (a column stops when stuck)
_RTOL = 1e-5  # a residual RMS below this times max|table| is rounding noise


def extrapolate_sinusoids(y: Tensor, m: int, n_frequencies: int, clip: float) -> Tensor:
    """Continue each column of ``y`` ``[n, d]`` (float64, CPU) to rows ``n .. m-1``.

    Model per column: ``c + sum_k a_k sin(w_k t) + b_k (cos(w_k t) - 1)``, ``t`` the centred
    position. Sinusoids are added greedily, one per column per round:

    1. pick the candidate frequency whose sinusoid explains most of the residual. Candidates:
       2x zero-padded FFT bins ``k*pi/n``, a log grid below one period (low frequencies look
       like polynomials), and the sinusoidal table's own ``1/10000^(2i/d)``;
    2. refine all of the column's frequencies jointly: Levenberg-Marquardt with variable
       projection, the coefficients always solved exactly by linear least squares;
    3. keep the new sinusoid only if it removes at least ``min(0.5, 4 ln(n)/n)`` of the
       residual (more than the largest periodogram peak of white noise); else the column is
       done, as it is once its residual RMS is under 1e-5 of the table's max |value| (float32
       rounding: more sinusoids would fit noise). Pure noise thus continues as its mean.

    The continuation is clipped to ``clip * max|y|``. Fewer than 4 rows: the mean only.

    Returns:
        ``[m - n, d]`` float64.
    """
    n, d = y.shape
    t = torch.arange(n, dtype=_F64) - (n - 1) / 2  # centred, symmetric positions
    freqs = torch.zeros(d, 0, dtype=_F64)  # [d, k] chosen frequencies
    keep = torch.zeros(d, 0, dtype=torch.bool)  # [d, k] which of them are in use
    coef, ss = _fit(y, t, freqs, keep)  # [d, 1+2k, 1], [d]
    active = torch.ones(d, dtype=torch.bool) if n >= 4 else torch.zeros(d, dtype=torch.bool)
    grid = _candidates(n, d)
    min_gain = min(0.5, 4 * math.log(n) / n)
    floor = n * (_RTOL * y.abs().max()) ** 2  # residual energy that counts as rounding noise
    for _ in range(n_frequencies):
        active &= ss > floor
        cols = active.nonzero().squeeze(1)
        if cols.numel() == 0:
            break
        fitted = (_basis(t, freqs[cols], keep[cols]) @ coef[cols]).squeeze(-1).T  # [n, a]
        resid = y[:, cols] - fitted
        freqs = torch.cat([freqs, torch.zeros(d, 1, dtype=_F64)], 1)
        keep = torch.cat([keep, torch.zeros(d, 1, dtype=torch.bool)], 1)
        coef = torch.cat([coef, torch.zeros(d, 2, 1, dtype=_F64)], 1)
        freqs[cols, -1], keep[cols, -1] = _best_candidates(resid, t, grid), True
        f_new, c_new, ss_new = _refine(y[:, cols], t, freqs[cols], keep[cols])
        gained = ss_new < (1 - min_gain) * ss[cols]
        took = cols[gained]
        freqs[took], coef[took], ss[took] = f_new[gained], c_new[gained], ss_new[gained]
        keep[cols[~gained], -1] = False
        active[cols[~gained]] = False
    t_new = torch.arange(n, m, dtype=_F64) - (n - 1) / 2
    chunks = [(_basis(ts, freqs, keep) @ coef).squeeze(-1).T for ts in t_new.split(256)]
    out = torch.cat(chunks)  # [m-n, d]
    bound = clip * y.abs().max()
    return out.clamp(-bound, bound)


def _candidates(n: int, d: int) -> Tensor:
    """Sorted candidate frequencies (radians per position), all in (0, pi)."""
    fft_bins = torch.arange(1, n, dtype=_F64) * (math.pi / n)
    below_one_period = (math.pi / n) * 2.0 ** (-torch.arange(1, 25, dtype=_F64) / 2)
    table = _BASE ** (-2 * torch.arange((d + 1) // 2, dtype=_F64) / d)  # 1/10000^(2i/d)
    return torch.unique(torch.cat([fft_bins, below_one_period, table]))


def _basis(t: Tensor, freqs: Tensor, keep: Tensor) -> Tensor:
    """``[d, len(t), 1 + 2k]``: 1, then ``sin(w t)``, ``cos(w t) - 1`` per frequency (unused: 0)."""
    half = freqs[:, None, :] * t[None, :, None] / 2  # [d, t, k]
    s, c = half.sin(), half.cos()
    use = keep[:, None, :].to(_F64)
    # sin x = 2 sin(x/2) cos(x/2); cos x - 1 = -2 sin^2(x/2), without cancellation at low frequency
    pairs = torch.stack([2 * s * c * use, -2 * s * s * use], -1).flatten(2)  # [d, t, 2k]
    return torch.cat([torch.ones(freqs.shape[0], t.shape[0], 1, dtype=_F64), pairs], -1)


def _fit(y: Tensor, t: Tensor, freqs: Tensor, keep: Tensor) -> tuple[Tensor, Tensor]:
    """Linear least squares per column: coefficients ``[d, 1+2k, 1]``, residual energy ``[d]``."""
    basis = _basis(t, freqs, keep)  # [d, n, 1+2k]
    target = y.T[:, :, None]  # [d, n, 1]
    coef = _lstsq(basis, target)
    return coef, (target - basis @ coef).square().sum((1, 2))


def _lstsq(a: Tensor, b: Tensor) -> Tensor:
    """Batched least squares ``a`` ``[.., n, p]``; columns scaled to unit norm (zero ones get 0)."""
    scale = a.norm(dim=-2, keepdim=True).clamp_min(1e-300)
    return torch.linalg.lstsq(a / scale, b, driver="gelsd").solution / scale.mT


def _refine(y: Tensor, t: Tensor, freqs: Tensor, keep: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Levenberg-Marquardt on each column's frequencies, ``y`` ``[n, a]``, with variable
    projection (Golub & Pereyra 1973, Kaufman's Jacobian): the coefficients are always the
    linear least-squares ones, so only the frequencies are iterated."""
    coef, ss = _fit(y, t, freqs, keep)
    lam = torch.full_like(ss, 1e-6)  # damping per column; start near Gauss-Newton
    fails = torch.zeros_like(ss, dtype=torch.long)  # failed tries in a row per column
    eye = torch.eye(freqs.shape[1], dtype=_F64)
    for _ in range(_LM_STEPS):
        i = (fails < 5).nonzero().squeeze(1)  # columns still improving
        if i.numel() == 0:
            break
        w, c, use = freqs[i], coef[i], keep[i]
        basis = _basis(t, w, use)  # [i, n, 1+2k]
        # d/dw [a sin(wt) + b (cos(wt) - 1)] = t (a cos(wt) - b sin(wt)), from the basis columns
        sin_wt, cos_wt = basis[:, :, 1::2], 1 + basis[:, :, 2::2]  # [i, n, k]
        a_sin, b_cos = c[:, 1::2, 0][:, None], c[:, 2::2, 0][:, None]  # [i, 1, k]
        d_freq = t[None, :, None] * (a_sin * cos_wt - b_cos * sin_wt) * use[:, None, :]
        d_freq = d_freq - basis @ _lstsq(basis, d_freq)  # the part the coefficients can't absorb
        norm = d_freq.norm(dim=1, keepdim=True).clamp_min(1e-300)  # Marquardt scaling
        jac = d_freq / norm
        lhs = jac.mT @ jac + lam[i, None, None] * eye
        resid = y.T[i, :, None] - basis @ c  # [i, n, 1]
        step = torch.linalg.solve(lhs, jac.mT @ resid) / norm.mT  # [i, k, 1]
        w_try = (w + step[..., 0]).clamp(1e-12, math.pi)
        c_try, ss_try = _fit(y[:, i], t, w_try, use)
        ok = ss_try < ss[i]  # NaN never passes
        fails[i] = torch.where(ss_try < (1 - 1e-6) * ss[i], 0, fails[i] + 1)  # real progress resets
        lam[i] = torch.where(ok, lam[i] / 10, lam[i] * 10).clamp(1e-12, 1e9)
        freqs[i[ok]], coef[i[ok]], ss[i[ok]] = w_try[ok], c_try[ok], ss_try[ok]
    return freqs, coef, ss


def _best_candidates(resid: Tensor, t: Tensor, grid: Tensor) -> Tensor:
    """Per column of ``resid`` ``[n, a]``, the grid frequency whose sinusoid explains most: ``[a]``.

    On the symmetric ``t``, sin (odd) and the centred cos (even) are orthogonal to each other
    and to the constant, so the energy one sinusoid explains is the sum of two projections.
    """
    best_gain = torch.full((resid.shape[1],), -1.0, dtype=_F64)
    best = torch.zeros(resid.shape[1], dtype=torch.long)
    for start in range(0, grid.shape[0], 512):  # chunks bound memory
        ang = grid[start : start + 512, None] * t[None, :]  # [g, n]
        even = -2 * (ang / 2).sin() ** 2  # cos - 1
        gain = 0  # [g, a] energy explained
        for v in (ang.sin(), even - even.mean(1, keepdim=True)):
            gain = gain + (v @ resid) ** 2 / v.square().sum(1, keepdim=True).clamp_min(1e-300)
        g_best, g_idx = gain.max(0)
        better = g_best > best_gain
        best_gain = torch.where(better, g_best, best_gain)
        best = torch.where(better, g_idx + start, best)
    return grid[best]
