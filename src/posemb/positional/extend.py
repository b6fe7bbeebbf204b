"""Extending (or cropping) a learned position table: pure functions on a ``[N, d]`` tensor.

A table trained with ``n`` positions has no row for position ``n``. :func:`extend_table`
grows it to ``new_len`` rows. The first ``offset`` rows are reserved (RoBERTa/OPT/BART keep
2) and are copied untouched; the *trained part* is rows ``offset .. N-1``. Every method
keeps the reserved rows exactly; ``interpolate`` and ``cubic`` resample the trained part
(keeping its first and last row), the others keep every trained row bit-for-bit.

Trained rows ``[a b c]`` extended to 5 (``offset`` rows, if any, stay in front)::

    random       [a b c r r]              r ~ N(0, std^2) fresh (HF DistilBERT-style resize)
    tile         [a b c a b]              cyclic copy (Longformer from RoBERTa's 512 rows)
    repeat-last  [a b c c c]
    interpolate  [a (a+b)/2 b (b+c)/2 c]  old position j*(n-1)/(m-1): 0, .5, 1, 1.5, 2
    cubic        [a ~ b ~ c]              same positions, Catmull-Rom cubic convolution
    extrapolate  [a b c f(3) f(4)]        f: sinusoids + constant fitted to [a b c] per column
    any, to 2    [a b]                    shrinking crops; same length returns a copy

Notation: ``N`` rows in, ``d`` width, ``n = N - offset`` trained rows in, ``m = new_len -
offset`` trained rows out.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .checks import check_finite, check_int, is_finite_number, is_int, unknown
from .memory import check_fits, tensor_bytes

EXTEND_METHODS: tuple[str, ...] = (
    "random",
    "tile",
    "repeat-last",
    "interpolate",
    "cubic",
    "extrapolate",
)

_F64 = torch.float64
_F64_METHODS = ("interpolate", "cubic", "extrapolate")  # these compute in float64
_BASE = 10000.0  # the sinusoidal table's wavelength base: its frequencies are always candidates
_LM_STEPS = 20  # most Levenberg-Marquardt steps per round (a column stops when stuck)
_RTOL = 1e-5  # extrapolate: a residual RMS below this times max|table| is rounding noise


def extend_table(
    weight: Tensor,
    new_len: int,
    method: str,
    offset: int = 0,
    *,
    std: float = 0.02,
    generator: torch.Generator | None = None,
    n_frequencies: int = 8,
    clip: float = 2.0,
) -> Tensor:
    """A new ``[new_len, d]`` table grown (or cropped) from ``weight``; the input is untouched.

    Args:
        weight: ``[N, d]`` floating table; rows ``0 .. offset-1`` are reserved.
        new_len: rows of the result, reserved rows included (``> offset``).
        method: one of :data:`EXTEND_METHODS` (see the module docstring).
        offset: reserved leading rows, copied exactly by every method.
        std: standard deviation of fresh rows (``random``; 0.02 as GPT-2/BERT init).
        generator: random generator for ``random`` (reproducible draws).
        n_frequencies: most sinusoids fitted per column (``extrapolate``).
        clip: ``extrapolate`` continues at most ``clip`` times the trained part's max |value|.

    Returns:
        ``[new_len, d]`` tensor, same dtype and device as ``weight``, detached.

    References:
        ``interpolate``: Chen et al. 2023, "Extending Context Window of Large Language Models
        via Positional Interpolation". ``tile``: Beltagy et al. 2020, "Longformer", §5.
        ``cubic``: Keys 1981, "Cubic convolution interpolation for digital image processing".
    """
    n_rows = _validate(weight, new_len, method, offset)
    weight = weight.detach()
    if new_len > n_rows:
        # the result, plus float64 work space for the methods that compute in float64
        work = tensor_bytes(new_len * weight.shape[1], _F64) if method in _F64_METHODS else 0
        check_fits(
            tensor_bytes(new_len * weight.shape[1], weight.dtype) + work,
            f"extending the table to {new_len} rows of {weight.shape[1]} ({method})",
            "choose a smaller length (new_len; posemb extend --to N)",
            weight.device,
        )
    if new_len <= n_rows:  # crop (or copy) for every method
        return weight[:new_len].clone()
    trained = weight[offset:]  # [n, d]
    n, m = n_rows - offset, new_len - offset
    if method == "random":
        check_finite("std", std, 0)
        device = generator.device if generator is not None else weight.device
        dtype = _F64 if weight.dtype == _F64 else torch.float32
        fresh = torch.randn(m - n, weight.shape[1], generator=generator, device=device, dtype=dtype)
        new = (fresh * std).to(weight)  # [m-n, d]
    elif method == "tile":
        new = trained[torch.arange(n, m, device=weight.device) % n]  # row offset+i = trained i % n
    elif method == "repeat-last":
        new = trained[-1:].expand(m - n, -1)
    elif method in ("interpolate", "cubic"):
        resample = _linear if method == "interpolate" else _cubic
        return torch.cat([weight[:offset], resample(trained.to(_F64), m).to(weight)])
    else:
        check_int("n_frequencies", n_frequencies, minimum=0)
        if not (is_finite_number(clip) and clip > 0):
            raise ValueError(f"clip must be a finite number > 0, got {clip!r}")
        y = trained.to("cpu", _F64)
        new = _extrapolate(y, m, n_frequencies, clip).to(weight)
    return torch.cat([weight, new])


def _validate(weight: Tensor, new_len: int, method: str, offset: int) -> int:
    if method not in EXTEND_METHODS:
        raise unknown("extension method", method, EXTEND_METHODS)
    if not isinstance(weight, Tensor) or weight.dim() != 2 or weight.shape[1] == 0:
        shape = tuple(weight.shape) if isinstance(weight, Tensor) else type(weight).__name__
        raise ValueError(f"weight must be a 2-D [rows, dim] table with dim >= 1, got {shape}")
    if not weight.is_floating_point():
        raise ValueError(
            f"weight must be a floating-point table, got dtype {weight.dtype}; cast it with .float()"
        )
    if not bool(torch.isfinite(weight).all()):
        raise ValueError(
            f"weight has NaN or inf values; {method} extends finite tables only (a diverged "
            "checkpoint? load an earlier one)"
        )
    n_rows = weight.shape[0]
    if not is_int(offset) or not 0 <= offset < n_rows:
        raise ValueError(
            f"offset must be an integer in [0, {n_rows - 1}] (reserved rows of a {n_rows}-row "
            f"table), got {offset!r}"
        )
    if not is_int(new_len) or new_len <= offset:
        raise ValueError(
            f"new_len must be an integer > offset={offset} (it counts the reserved rows too), "
            f"got {new_len!r}"
        )
    return n_rows


# -- resampling (position interpolation) ---------------------------------------------------------
def _positions(n: int, m: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Align-corners sample points: left neighbour ``i0`` ``[m]`` and fraction ``[m, 1]``."""
    pos = torch.arange(m, dtype=_F64, device=device) * (n - 1) / (m - 1)  # exactly 0 .. n-1
    i0 = pos.floor().clamp(max=max(n - 2, 0)).long()
    return i0, (pos - i0).unsqueeze(-1)


def _linear(y: Tensor, m: int) -> Tensor:
    """``[n, d]`` -> ``[m, d]``: new row j = y at old position j*(n-1)/(m-1), linearly."""
    if y.shape[0] == 1:
        return y.expand(m, -1).clone()
    i0, t = _positions(y.shape[0], m, y.device)
    return y[i0] * (1 - t) + y[i0 + 1] * t


def _cubic(y: Tensor, m: int) -> Tensor:
    """``[n, d]`` -> ``[m, d]``: cubic convolution (a = -0.5, Catmull-Rom) at the same points.

    Ghost rows beyond each end use Keys' boundary rule ``y[-1] = 3y0 - 3y1 + y2`` (linear
    ``2y0 - y1`` when n == 2), so quadratic tables are reproduced exactly, ends included.
    """
    n = y.shape[0]
    if n == 1:
        return y.expand(m, -1).clone()
    if n == 2:
        before, after = 2 * y[0] - y[1], 2 * y[1] - y[0]
    else:
        before, after = 3 * y[0] - 3 * y[1] + y[2], 3 * y[-1] - 3 * y[-2] + y[-3]
    padded = torch.cat([before[None], y, after[None]])  # [n+2, d]: padded[i+1] = y[i]
    i0, t = _positions(n, m, y.device)
    weights = (  # Keys' kernel for neighbours i0-1, i0, i0+1, i0+2 at fraction t
        (-(t**3) + 2 * t**2 - t) / 2,
        (3 * t**3 - 5 * t**2 + 2) / 2,
        (-3 * t**3 + 4 * t**2 + t) / 2,
        (t**3 - t**2) / 2,
    )
    return sum(w * padded[i0 + k] for k, w in enumerate(weights))


# -- extrapolation: a sum of sinusoids per column --------------------------------------------------
def _extrapolate(y: Tensor, m: int, n_frequencies: int, clip: float) -> Tensor:
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
