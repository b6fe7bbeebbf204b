"""Learned relative position representations (Shaw, Uszkoreit, Vaswani 2018, "Self-Attention
with Relative Position Representations").

The paper's logit between query ``i`` and key ``j`` (§3.1) adds a learned vector
``a^K_ij`` to the key:

    e_ij = q_i . (k_j + a^K_ij) / sqrt(dh)
         = q_i . k_j / sqrt(dh)  +  q_i . a^K_ij / sqrt(dh)
           (the model's attention)   (this scheme's bias)

``a^K_ij = w^K[clip(j - i, -k, k) + k]``: one row of a ``[2k+1, dh]`` table per clipped
relative distance (``k = max_distance``), shared by all heads and learned per layer, as in
the paper. Only the key representations are used (the paper's value term ``a^V`` is
omitted; the paper's ablation found the key term alone about as good on translation).

Efficient form (the paper's §3.3 trick): ``qa = q @ w^K.T / sqrt(dh)`` is ``[b, h, t, 2k+1]``,
then each logit gathers ``qa[..., i, index(i, j)]``. ``[b, h, t, s, dh]`` is never built.

Index layout, ``k = 2``, query at position 3, keys at positions 0..6::

    j - i:  [-3 -2 -1  0  1  2  3]
    clip:   [-2 -2 -1  0  1  2  2]
    index:  [ 0  0  1  2  3  4  4]

Notation: ``b`` batch, ``t`` query length, ``s`` key length, ``h`` heads, ``dh`` head width.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .base import PositionalScheme, ScoreMod, batched
from .checks import check_int
from .memory import check_fits, tensor_bytes


def relative_index(q_positions: Tensor, k_positions: Tensor, max_distance: int) -> Tensor:
    """Row of the relative table for every (query, key) pair.

    Args:
        q_positions: ``[b, t]`` query positions.
        k_positions: ``[b, s]`` key positions.
        max_distance: clipping distance ``k``.

    Returns:
        ``[b, t, s]`` LongTensor ``clip(k_pos - q_pos, -k, k) + k`` in ``0 .. 2k``.
    """
    rel = k_positions.unsqueeze(-2) - q_positions.unsqueeze(-1)  # [b, t, s]
    return rel.to(torch.long).clamp(-max_distance, max_distance) + max_distance


def shaw_query_scores(q: Tensor, table: Tensor) -> Tensor:
    """``q_i . w^K_r / sqrt(dh)`` for every query and every table row ``r``.

    Args:
        q: ``[b, h, t, dh]`` queries.
        table: ``[2k+1, dh]`` relative key embeddings.

    Returns:
        ``[b, h, t, 2k+1]`` in q's dtype.
    """
    return torch.matmul(q, table.to(q.dtype).transpose(0, 1)) / math.sqrt(q.shape[-1])


def shaw_bias(
    q: Tensor, table: Tensor, q_positions: Tensor, k_positions: Tensor, max_distance: int
) -> Tensor:
    """The relative-key logit term ``q_i . a^K_ij / sqrt(dh)``.

    Args:
        q: ``[b, h, t, dh]`` queries.
        table: ``[2k+1, dh]`` relative key embeddings.
        q_positions: ``[b, t]`` (``b`` may be 1).
        k_positions: ``[b, s]`` (``b`` may be 1).
        max_distance: clipping distance ``k``.

    Returns:
        ``[b, h, t, s]`` bias in q's dtype.
    """
    b, h, t, _ = q.shape
    qa = shaw_query_scores(q, table)  # [b, h, t, 2k+1]
    index = relative_index(q_positions, k_positions, max_distance)  # [b or 1, t, s]
    index = index.unsqueeze(1).expand(b, h, t, index.shape[-1])  # [b, h, t, s]
    return torch.gather(qa, -1, index)  # [b, h, t, s]


class ShawRelativePosition(PositionalScheme):
    """Adds ``q_i . a^K_ij / sqrt(dh)`` to the logits; one instance per layer.

    Args:
        head_dim: width ``dh`` of each head.
        max_distance: clipping distance ``k``; distances beyond share the edge rows.

    The ``[2k+1, dh]`` table ``weight`` is initialised from a normal distribution with std
    0.02 (the paper does not state an init).
    """

    name = "shaw"
    biases_logits = True
    per_layer = True

    def __init__(self, head_dim: int, *, max_distance: int = 16) -> None:
        super().__init__()
        check_int("head_dim", head_dim, minimum=1)
        check_int("max_distance", max_distance, minimum=0)
        check_fits(
            tensor_bytes((2 * max_distance + 1) * head_dim),
            f"a Shaw table of {2 * max_distance + 1} x {head_dim} (2 max_distance + 1 x head_dim)",
            "lower max_distance (model.position_options.max_distance)",
        )
        self.head_dim, self.max_distance = head_dim, max_distance
        self.weight = nn.Parameter(torch.empty(2 * max_distance + 1, head_dim))  # [2k+1, dh]
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, mean=0.0, std=0.02)

    def _positions(
        self, q: Tensor, q_positions: Tensor, k_positions: Tensor
    ) -> tuple[Tensor, Tensor]:
        if q.shape[-1] != self.head_dim:
            raise ValueError(
                f"Shaw bias was built for head_dim={self.head_dim}, got q {tuple(q.shape)}"
            )
        return batched(q_positions), batched(k_positions)

    def attention_bias(self, q: Tensor, q_positions: Tensor, k_positions: Tensor) -> Tensor:
        """q ``[b, h, t, dh]``, positions ``[b, t]``/``[b, s]`` -> ``[b, h, t, s]`` in q's dtype."""
        q_positions, k_positions = self._positions(q, q_positions, k_positions)
        return shaw_bias(q, self.weight, q_positions, k_positions, self.max_distance)

    def score_mod(self, q: Tensor, q_positions: Tensor, k_positions: Tensor) -> ScoreMod:
        """The same bias as a FlexAttention ``score_mod`` over the precomputed ``qa``."""
        q_positions, k_positions = self._positions(q, q_positions, k_positions)
        b, h, t, _ = q.shape
        # Captured buffers kept few and flat: Inductor's CPU FlexAttention template (torch
        # 2.13) emits C++ that does not compile for a 4-D gather by q_idx, and fails on some
        # score_mods indexing two position buffers. Queries are pos[:, :t], keys pos[:, t:].
        pos = torch.cat((q_positions.expand(b, -1), k_positions.expand(b, -1)), dim=1)  # [b, t+s]
        rows = 2 * self.max_distance + 1
        qa = shaw_query_scores(q, self.weight).reshape(-1)  # [b*h*t*(2k+1)]
        k = self.max_distance

        def shaw_score_mod(
            score: Tensor, b_idx: Tensor, h_idx: Tensor, q_idx: Tensor, kv_idx: Tensor
        ) -> Tensor:
            index = (pos[b_idx, t + kv_idx] - pos[b_idx, q_idx]).clamp(-k, k) + k
            return score + qa[((b_idx * h + h_idx) * t + q_idx) * rows + index].to(score.dtype)

        return shaw_score_mod

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, max_distance={self.max_distance}, {super().extra_repr()}"
