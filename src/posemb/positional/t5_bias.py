"""Learned relative position buckets (Raffel et al. 2020, "Exploring the Limits of Transfer
Learning with a Unified Text-to-Text Transformer", §2.1, the T5 bias).

Each head learns one scalar per *bucket* of relative distance ``key_pos - query_pos`` and
adds it to the attention logits. Buckets are exact for small distances and logarithmically
wider up to ``max_distance``; every farther distance shares the last bucket.

Bucketing, with ``B`` buckets (``bidirectional`` splits them between the two signs)::

    bidirectional:  B' = B / 2; future keys (rel > 0) use buckets B' .. B-1; n = |rel|
    causal:         B' = B;     future keys fall into bucket 0;             n = max(-rel, 0)
    exact = B' / 2
    n < exact:      bucket n
    otherwise:      exact + floor(log(n / exact) / log(max_distance / exact) * (B' - exact)),
                    capped at B' - 1

For example ``B = 8, max_distance = 16``, bidirectional (``B' = 4``, exact 2):
rel ``-1 -> 1``, ``-5 -> 2``, ``-8 -> 3``, ``-100 -> 3``, ``+1 -> 5``, ``+8 -> 7``.

The model already scales ``q . k`` by ``1/sqrt(dh)`` (T5 itself does not); the bias is
added to those scaled logits.

Notation: ``b`` batch, ``t`` query length, ``s`` key length, ``h`` heads, ``dh`` head width.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .base import PositionalScheme, ScoreMod, batched
from .checks import check_bool, check_int
from .memory import check_fits, tensor_bytes


def relative_position_bucket(
    relative_position: Tensor,
    bidirectional: bool = True,
    num_buckets: int = 32,
    max_distance: int = 128,
) -> Tensor:
    """Map relative positions ``key_pos - query_pos`` to bucket indices.

    Args:
        relative_position: ``[...]`` integer tensor, memory (key) position minus query position.
        bidirectional: split the buckets between past and future keys (encoders); otherwise
            every future key shares bucket 0 (decoders).
        num_buckets: number of buckets ``B``.
        max_distance: distance from which on everything shares the last bucket of its side.

    Returns:
        ``[...]`` LongTensor in ``0 .. num_buckets-1``.
    """
    rel = relative_position.to(torch.long)
    if bidirectional:
        num_buckets //= 2
        side = (rel > 0).to(torch.long) * num_buckets  # future keys: upper half of the buckets
        n = rel.abs()
    else:
        side = torch.zeros_like(rel)
        n = (-rel).clamp_min(0)  # future keys -> distance 0
    exact = num_buckets // 2
    # log-spaced buckets for n >= exact (n is clamped so log() never sees 0; those n take the
    # exact branch below anyway)
    far = torch.log(n.clamp_min(exact).to(torch.float32) / exact)
    far = far / math.log(max_distance / exact) * (num_buckets - exact)
    far = (exact + far.to(torch.long)).clamp_max(num_buckets - 1)
    return side + torch.where(n < exact, n, far)


class T5RelativeBias(PositionalScheme):
    """Adds a learned per-head scalar for the bucket of each (query, key) distance.

    Args:
        n_heads: number of heads ``h``.
        causal: decoder bucketing (future keys share bucket 0) if True, bidirectional
            bucketing otherwise.
        num_buckets: number of buckets ``B`` (32 in T5).
        max_distance: distance at which the buckets end (128 in T5).

    The ``[B, h]`` bias table ``weight`` is initialised from a normal distribution with std
    0.02 (the paper does not state one; T5 implementations use a small normal init).
    """

    name = "t5"
    biases_logits = True

    def __init__(
        self,
        n_heads: int,
        *,
        causal: bool = True,
        num_buckets: int = 32,
        max_distance: int = 128,
    ) -> None:
        super().__init__()
        check_bool("causal", causal)
        low_buckets = 2 if causal else 4  # at least one exact bucket per side
        checks = (
            ("n_heads", n_heads, 1),
            ("num_buckets", num_buckets, low_buckets),
            ("max_distance", max_distance, 1),
        )
        for key, value, low in checks:
            check_int(key, value, minimum=low)
        exact = num_buckets // 2 if causal else num_buckets // 4
        if max_distance <= exact:
            raise ValueError(
                f"max_distance must exceed the {exact} exact buckets, got {max_distance}"
            )
        check_fits(
            tensor_bytes(num_buckets * n_heads),
            f"a T5 bias table of {num_buckets} x {n_heads} (num_buckets x n_heads)",
            "lower num_buckets (model.position_options.num_buckets)",
        )
        self.n_heads, self.causal = n_heads, bool(causal)
        self.num_buckets, self.max_distance = num_buckets, max_distance
        self.weight = nn.Parameter(torch.empty(num_buckets, n_heads))  # [B, h]
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, mean=0.0, std=0.02)

    def buckets(self, relative_position: Tensor) -> Tensor:
        """Bucket indices for ``key_pos - query_pos`` with this module's settings."""
        return relative_position_bucket(
            relative_position, not self.causal, self.num_buckets, self.max_distance
        )

    def _positions(
        self, q: Tensor, q_positions: Tensor, k_positions: Tensor
    ) -> tuple[Tensor, Tensor]:
        if q.shape[1] != self.n_heads:
            raise ValueError(f"T5 bias was built for {self.n_heads} heads, got q {tuple(q.shape)}")
        return batched(q_positions), batched(k_positions)

    def attention_bias(self, q: Tensor, q_positions: Tensor, k_positions: Tensor) -> Tensor:
        """q ``[b, h, t, dh]``, positions ``[b, t]``/``[b, s]`` -> ``[b or 1, h, t, s]`` in
        q's dtype."""
        q_positions, k_positions = self._positions(q, q_positions, k_positions)
        rel = k_positions.unsqueeze(-2) - q_positions.unsqueeze(-1)  # [b, t, s]: key - query
        bias = nn.functional.embedding(self.buckets(rel), self.weight)  # [b, t, s, h]
        return bias.permute(0, 3, 1, 2).to(q.dtype)  # [b, h, t, s]

    def score_mod(self, q: Tensor, q_positions: Tensor, k_positions: Tensor) -> ScoreMod:
        """The same bias as a FlexAttention ``score_mod``; buckets are computed per score."""
        q_positions, k_positions = self._positions(q, q_positions, k_positions)
        b, t = q.shape[0], q_positions.shape[-1]
        # One captured buffer for both sides (queries [:, :t], keys [:, t:]): Inductor's CPU
        # FlexAttention template (torch 2.13) fails on some score_mods indexing two of them.
        pos = torch.cat((q_positions.expand(b, -1), k_positions.expand(b, -1)), dim=1)  # [b, t+s]
        weight = self.weight  # [B, h]
        buckets = self.buckets

        def t5_score_mod(
            score: Tensor, b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor
        ) -> Tensor:
            bucket = buckets(pos[b, t + kv_idx] - pos[b, q_idx])
            return score + weight[bucket, h].to(score.dtype)

        return t5_score_mod

    def extra_repr(self) -> str:
        return (
            f"n_heads={self.n_heads}, causal={self.causal}, num_buckets={self.num_buckets}, "
            f"max_distance={self.max_distance}, {super().extra_repr()}"
        )
