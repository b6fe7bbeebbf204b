"""Extending (or cropping) a learned position table: pure functions on a ``[N, d]`` tensor.

A table trained with ``n`` positions has no row for position ``n``. :func:`extend_table`
grows it to ``new_len`` rows. The first ``offset`` rows are reserved (RoBERTa/OPT/BART keep
2) and are copied untouched; the *trained part* is rows ``offset .. N-1``. Every method
keeps the reserved rows exactly; ``interpolate`` and ``cubic`` resample the trained part
(keeping its first and last row), the others keep every trained row bit-for-bit.

Trained rows ``[a b c]`` extended to 5 (``offset`` rows, if any, stay in front)::

    random       [a b c r r]              r ~ N(0, std^2) fresh, std 0.02 by default (see below)
    tile         [a b c a b]              cyclic copy (Longformer from RoBERTa's 512 rows)
    repeat-last  [a b c c c]
    interpolate  [a (a+b)/2 b (b+c)/2 c]  old position j*(n-1)/(m-1): 0, .5, 1, 1.5, 2
    cubic        [a ~ b ~ c]              same positions, Catmull-Rom cubic convolution
    extrapolate  [a b c f(3) f(4)]        f: sinusoids + constant fitted to [a b c] per column
    any, to 2    [a b]                    shrinking crops; same length returns a copy

``random`` draws the new rows at the scale of a freshly initialised table: ``N(0, std^2)``
with ``std`` the model's init (0.02, as GPT-2/BERT's ``initializer_range``; ``posemb
extend`` passes the model's own). Hugging Face's ``resize_position_embeddings``
(DistilBERT) also keeps the old rows and appends new ones, but builds them with a plain
``nn.Embedding``, i.e. ``N(0, 1)``: 50 times the 0.02 of an initialised table, so those
positions start far larger than the token embeddings they are added to.

``extrapolate``'s fit (a few sinusoids per column, Levenberg-Marquardt) has its own module,
:mod:`posemb.positional.sinusoid_fit`.

Notation: ``N`` rows in, ``d`` width, ``n = N - offset`` trained rows in, ``m = new_len -
offset`` trained rows out.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .checks import check_finite, check_int, is_finite_number, is_int, unknown
from .memory import check_fits, tensor_bytes
from .sinusoid_fit import extrapolate_sinusoids

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
    check_extension_fits(weight, new_len, method)
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
        new = extrapolate_sinusoids(y, m, n_frequencies, clip).to(weight)
    return torch.cat([weight, new])


def check_extension_fits(weight: Tensor, new_len: int, method: str) -> None:
    """Refuse growing ``weight`` ``[N, d]`` to ``new_len`` rows when the result (plus the
    float64 work space of the methods that compute in float64) cannot fit on its device;
    the message names the length to lower."""
    if new_len <= weight.shape[0]:
        return
    work = tensor_bytes(new_len * weight.shape[1], _F64) if method in _F64_METHODS else 0
    check_fits(
        tensor_bytes(new_len * weight.shape[1], weight.dtype) + work,
        f"extending the table to {new_len} rows of {weight.shape[1]} ({method})",
        "choose a smaller length (new_len; posemb extend --to N)",
        weight.device,
    )


def _validate(weight: Tensor, new_len: int, method: str, offset: int) -> int:
    if method not in EXTEND_METHODS:
        raise unknown("extension method", method, EXTEND_METHODS)
    if not isinstance(weight, Tensor) or weight.dim() != 2 or weight.shape[1] == 0:
        shape = tuple(weight.shape) if isinstance(weight, Tensor) else type(weight).__name__
        raise ValueError(f"weight must be a 2-D [rows, dim] table with dim >= 1, got {shape}")
    if not weight.is_floating_point():
        raise ValueError(
            f"weight must be a floating-point table, got dtype {weight.dtype}; cast it with "
            ".float()"
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
