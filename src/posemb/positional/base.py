"""The three hook points through which a positional scheme enters a transformer.

A scheme is a small ``nn.Module`` that declares which hooks it uses; the model calls the
hooks and never branches on a scheme's name (x-transformers' design, kept small):

1. ``adds_to_input``  -- ``embed_positions(positions)`` returns vectors added to the token
   embeddings before the first block (learned absolute table, sinusoidal).
2. ``rotates_qk``     -- ``rotate_qk(q, k, positions)`` rotates queries and keys inside every
   attention layer (RoPE).
3. ``biases_logits``  -- ``attention_bias(q, q_positions, k_positions)`` returns an additive
   bias for the (already scaled) attention logits (ALiBi, T5 bias, Shaw relative), and
   ``score_mod(...)`` expresses the same bias for FlexAttention.

A scheme that uses no hook (NoPE) is a real object too.

Two capabilities beside the hooks, which callers ask by flag, never by the scheme's name:

- ``has_table`` -- the scheme serves absolute positions from a table of rows (the learned
  table): it has a ``table``, an ``overflow`` policy for positions past its end, and
  ``extend(new_max, method)`` returns a copy grown (or cropped) to ``new_max`` positions;
- ``fractional_positions`` -- the scheme reads floating-point positions (``2.5``: halfway
  between positions 2 and 3), as the ``stretch`` training recipe gives them: the learned
  table mixes its two neighbouring rows, the formulas of the others take any real position.

Notation used across posemb: ``b`` batch, ``t`` query length, ``s`` key length (cache
included), ``h`` heads, ``d`` model width, ``dh`` head width.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor, nn

ScoreMod = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor], Tensor]


def batched(positions: Tensor) -> Tensor:
    """Positions ``[t]`` -> ``[1, t]``; ``[b, t]`` is returned as it is, unless its rows are
    one row expanded (stride 0: the model's default positions, shared by the batch), which
    gives ``[1, t]``: a bias built from them is then ``[1, h, t, s]``, not b copies."""
    if positions.dim() == 1:
        return positions.unsqueeze(0)
    if positions.shape[0] > 1 and positions.stride(0) == 0:
        return positions[:1]
    return positions


class PositionalScheme(nn.Module):
    """Base class of every positional scheme.

    Subclasses set the class flags for the hooks they implement and override those hooks.
    ``per_layer`` asks the model for one instance per attention layer (Shaw et al. learn
    relative embeddings per layer); otherwise one instance is shared by all layers.
    ``has_table`` schemes override ``table`` and ``extend``.
    """

    name: ClassVar[str] = "base"
    adds_to_input: ClassVar[bool] = False
    rotates_qk: ClassVar[bool] = False
    biases_logits: ClassVar[bool] = False
    per_layer: ClassVar[bool] = False
    has_table: ClassVar[bool] = False
    fractional_positions: ClassVar[bool] = False

    # -- range contract -----------------------------------------------------------------
    @property
    def position_limit(self) -> int | None:
        """Positions ``>= position_limit`` raise; None when every position is served."""
        return None

    def check_position_range(self, lowest: float, highest: float) -> None:
        """Raise if positions in ``[lowest, highest]`` cannot be served. Host numbers only
        (ints; floats for the fractional positions of a ``fractional_positions`` scheme).

        Schemes without a position limit accept everything (the default).
        """

    def check_positions(self, positions: Tensor) -> None:
        """Check a position tensor's values (reads them: one host sync on an accelerator)."""
        if positions.numel() == 0:
            return
        lo, hi = torch.aminmax(positions.detach())
        self.check_position_range(lo.item(), hi.item())  # ints stay ints, floats floats

    # -- the table of a has_table scheme ----------------------------------------------------
    @property
    def table(self) -> Tensor | None:
        """The ``[rows, d]`` table of absolute positions (the parameter itself), or None."""
        return None

    def extend(
        self, new_max: int, method: str = "interpolate", *, overflow: str | None = None, **options
    ) -> PositionalScheme:
        """A copy serving ``new_max`` positions (and ``overflow``); ``has_table`` schemes only."""
        raise TypeError(f"scheme {self.name!r} has no position table to extend")

    # -- hook 1: add to the input ---------------------------------------------------------
    def embed_positions(self, positions: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """positions ``[b, t]`` (int64, or float for a ``fractional_positions`` scheme) ->
        ``[b, t, d]`` added to the token embeddings.

        The caller has checked the range (``check_position_range``/``check_positions``).
        """
        raise TypeError(f"scheme {self.name!r} does not add to the input")

    # -- hook 2: rotate q and k -------------------------------------------------------------
    def rotate_qk(self, q: Tensor, k: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
        """q, k ``[b, h, t, dh]``, positions ``[b, t]`` -> rotated (q, k), same shapes."""
        raise TypeError(f"scheme {self.name!r} does not rotate queries and keys")

    # -- hook 3: bias the attention logits ----------------------------------------------------
    def attention_bias(self, q: Tensor, q_positions: Tensor, k_positions: Tensor) -> Tensor:
        """Additive bias for the scaled logits.

        Args:
            q: queries ``[b, h, t, dh]`` (only content-dependent schemes such as Shaw use them).
            q_positions: ``[b, t]`` positions of the queries.
            k_positions: ``[b, s]`` positions of the keys.

        Returns:
            ``[b or 1, h, t, s]``, in q's dtype.
        """
        raise TypeError(f"scheme {self.name!r} does not bias attention logits")

    def score_mod(self, q: Tensor, q_positions: Tensor, k_positions: Tensor) -> ScoreMod:
        """The same bias as a FlexAttention ``score_mod(score, b, h, q_idx, kv_idx)``."""
        raise TypeError(f"scheme {self.name!r} does not bias attention logits")

    def extra_repr(self) -> str:  # shown by print(model)
        hooks = [
            n
            for n, used in (
                ("input", self.adds_to_input),
                ("rotate_qk", self.rotates_qk),
                ("bias", self.biases_logits),
            )
            if used
        ]
        return f"hooks={hooks or ['none']}"
