"""Attention with linear biases (Press, Smith, Lewis 2021, "Train Short, Test Long: Attention
with Linear Biases Enables Input Length Extrapolation").

No positional vectors: each head ``h`` adds ``-m_h * (i - j)`` to the logit of query ``i``
and key ``j``, a penalty growing linearly with distance. The slopes ``m_h`` are fixed, a
geometric sequence that starts at ``2^(-8/n)`` and has that same ratio (``n`` heads)::

    n = 8:  m = [1/2, 1/4, 1/8, 1/16, 1/32, 1/64, 1/128, 1/256]

For ``n`` not a power of two the paper's reference code takes the slopes of the closest
power of two below ``n``, then every other slope of the next power of two::

    n = 12: slopes(8) + slopes(16)[0::2][:4] = [2^-1 .. 2^-8] + [2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5]

Causal form (decoders): ``bias = -m_h * (q_pos - k_pos)``; future keys get a positive
bias but the causal mask removes them. Symmetric form (``causal=False``, encoders):
``bias = -m_h * |q_pos - k_pos|``.

Notation: ``b`` batch, ``t`` query length, ``s`` key length, ``h`` heads, ``dh`` head width.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import PositionalScheme, ScoreMod, batched
from .checks import check_bool, check_int


def alibi_slopes(n_heads: int) -> Tensor:
    """The fixed per-head slopes ``m_h`` of ALiBi.

    Args:
        n_heads: number of heads ``h`` (>= 1).

    Returns:
        ``[h]`` float32 slopes, largest first.
    """
    check_int("n_heads", n_heads, minimum=1)

    def geometric(n: int) -> list[float]:  # n a power of two: start 2^(-8/n), ratio 2^(-8/n)
        return [2.0 ** (-8.0 * (i + 1) / n) for i in range(n)]

    below = 2 ** int(math.floor(math.log2(n_heads)))  # closest power of two <= n_heads
    slopes = geometric(below) + geometric(2 * below)[0::2][: n_heads - below]
    return torch.tensor(slopes, dtype=torch.float32)


def alibi_bias(
    slopes: Tensor, q_positions: Tensor, k_positions: Tensor, causal: bool = True
) -> Tensor:
    """The ALiBi bias for every (query, key) pair.

    Args:
        slopes: ``[h]`` per-head slopes.
        q_positions: ``[b, t]`` query positions.
        k_positions: ``[b, s]`` key positions (same ``b``, or 1 to broadcast).
        causal: ``-m (i - j)`` if True, the symmetric ``-m |i - j|`` otherwise.

    Returns:
        ``[b, h, t, s]`` float32 bias.

    Example: slopes ``[0.5]``, q and k positions ``[0, 1, 2]``, causal::

        [[ 0.0,  0.5,  1.0],
         [-0.5,  0.0,  0.5],
         [-1.0, -0.5,  0.0]]
    """
    rel = q_positions.unsqueeze(-1) - k_positions.unsqueeze(-2)  # [b, t, s]: i - j
    if not causal:
        rel = rel.abs()
    rel = rel.to(torch.float32).unsqueeze(1)  # [b, 1, t, s]
    return -slopes.to(torch.float32).view(1, -1, 1, 1) * rel  # [b, h, t, s]


class ALiBi(PositionalScheme):
    """Biases the attention logits by a fixed, head-specific linear distance penalty.

    Args:
        n_heads: number of heads ``h``.
        causal: causal form (decoders) or symmetric form (encoders); see the module doc.
    """

    name = "alibi"
    fractional_positions = True  # any real position is a valid input of its formula
    biases_logits = True

    def __init__(self, n_heads: int, *, causal: bool = True) -> None:
        super().__init__()
        check_bool("causal", causal)
        self.n_heads, self.causal = n_heads, causal
        self.register_buffer("slopes", alibi_slopes(n_heads), persistent=False)  # [h]

    def _positions(
        self, q: Tensor, q_positions: Tensor, k_positions: Tensor
    ) -> tuple[Tensor, Tensor]:
        if q.shape[1] != self.n_heads:
            raise ValueError(f"ALiBi was built for {self.n_heads} heads, got q {tuple(q.shape)}")
        return batched(q_positions), batched(k_positions)

    def attention_bias(self, q: Tensor, q_positions: Tensor, k_positions: Tensor) -> Tensor:
        """q ``[b, h, t, dh]``, positions ``[b, t]``/``[b, s]`` -> ``[b or 1, h, t, s]`` in
        q's dtype."""
        q_positions, k_positions = self._positions(q, q_positions, k_positions)
        return alibi_bias(self.slopes, q_positions, k_positions, self.causal).to(q.dtype)

    def score_mod(self, q: Tensor, q_positions: Tensor, k_positions: Tensor) -> ScoreMod:
        """The same bias as a FlexAttention ``score_mod``; no ``[t, s]`` tensor is built."""
        q_positions, k_positions = self._positions(q, q_positions, k_positions)
        b, t = q.shape[0], q_positions.shape[-1]
        # One captured buffer for both sides (queries [:, :t], keys [:, t:]): Inductor's CPU
        # FlexAttention template (torch 2.13) fails on some score_mods indexing two of them.
        pos = torch.cat((q_positions.expand(b, -1), k_positions.expand(b, -1)), dim=1)  # [b, t+s]
        slopes = self.slopes.to(torch.float32)  # [h]
        causal = self.causal

        def alibi_score_mod(
            score: Tensor, b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor
        ) -> Tensor:
            rel = pos[b, q_idx] - pos[b, t + kv_idx]
            if not causal:
                rel = rel.abs()
            return score - (slopes[h] * rel.to(torch.float32)).to(score.dtype)

        return alibi_score_mod

    def extra_repr(self) -> str:
        return f"n_heads={self.n_heads}, causal={self.causal}, {super().extra_repr()}"
