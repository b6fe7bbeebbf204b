"""Fixed sinusoidal positions (Vaswani et al. 2017, "Attention Is All You Need", §3.5).

    PE[p, 2i]   = sin(p / base^(2i/d))
    PE[p, 2i+1] = cos(p / base^(2i/d))

Interleaved layout, as in the paper: ``[sin f0, cos f0, sin f1, cos f1, ...]``. Computed on
the fly from the positions, so any position (also past the training length) has a vector.

Notation: ``b`` batch, ``t`` length, ``d`` width.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import PositionalScheme
from .checks import is_finite_number, is_int


def sinusoidal_encoding(positions: Tensor, dim: int, base: float = 10000.0) -> Tensor:
    """Sinusoidal vectors for arbitrary (float or int) positions.

    Args:
        positions: ``[...]`` positions.
        dim: width ``d``; an odd width drops the last cosine column.
        base: wavelength base (10000 in the paper).

    Returns:
        ``[..., d]`` float32 tensor.
    """
    half = (dim + 1) // 2
    # inverse frequencies 1 / base^(2i/d), i = 0 .. half-1
    inv_freq = torch.exp(
        torch.arange(half, device=positions.device, dtype=torch.float32)
        * (-2.0 * math.log(base) / dim)
    )
    angles = positions.to(torch.float32).unsqueeze(-1) * inv_freq  # [..., half]
    out = torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)  # [..., 2*half]
    return out[..., :dim]


def sinusoidal_table(n: int, dim: int, base: float = 10000.0) -> Tensor:
    """The ``[n, dim]`` table for positions ``0 .. n-1``."""
    return sinusoidal_encoding(torch.arange(n), dim, base)


class SinusoidalPositionalEmbedding(PositionalScheme):
    """Adds the fixed sinusoidal vector of each position to the token embeddings.

    Args:
        dim: model width ``d``.
        base: wavelength base.
        scale: multiplier on the vectors. The paper adds the table (entries in [-1, 1]) to
            token embeddings multiplied by sqrt(d), i.e. of unit scale. posemb's token
            embeddings are initialised as GPT-2's (std 0.02) and not multiplied, so the
            default 0.02 keeps the paper's balance between token and position; with
            ``scale=1.0`` the positions swamp the tokens at initialisation (measured: a
            quick-budget model reached 3.52 nats/token against 2.89 with 0.02).
    """

    name = "sinusoidal"
    fractional_positions = True  # any real position is a valid input of its formula
    adds_to_input = True

    def __init__(self, dim: int, *, base: float = 10000.0, scale: float = 0.02) -> None:
        super().__init__()
        if not is_int(dim) or dim <= 0:
            raise ValueError(f"dim must be positive (an integer), got {dim!r}")
        for key, value, low in (("base", base, 1.0), ("scale", scale, None)):
            if not is_finite_number(value) or (low is not None and value <= low):
                raise ValueError(
                    f"{key} must be a finite number{f' > {low:g}' if low is not None else ''}, "
                    f"got {value!r}"
                )
        self.dim, self.base, self.scale = dim, float(base), float(scale)

    def embed_positions(self, positions: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        return sinusoidal_encoding(positions, self.dim, self.base) * self.scale  # [b, t, d]

    def forward(self, positions: Tensor) -> Tensor:
        return self.embed_positions(positions)
