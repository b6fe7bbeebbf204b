"""No positional information at all (NoPE).

A causal transformer without any positional scheme can still infer positions from the
causal mask (Haviv et al. 2022, "Transformer Language Models without Positional Encodings
Still Learn Positional Information"; Kazemnejad et al. 2023, "The Impact of Positional
Encoding on Length Generalization in Transformers"). A bidirectional encoder without
positions is permutation-equivariant: it sees a bag of tokens.

NoPE is a real scheme object that uses none of the three hooks, so the model treats it
like every other scheme and never branches on its name.

Notation: ``b`` batch, ``t`` query length, ``s`` key length, ``h`` heads, ``dh`` head width.
"""

from __future__ import annotations

from .base import PositionalScheme


class NoPositions(PositionalScheme):
    """The scheme that adds, rotates and biases nothing.

    Example::

        scheme = NoPositions()
        scheme.adds_to_input, scheme.rotates_qk, scheme.biases_logits  # all False
    """

    name = "nope"
    fractional_positions = True  # positions are ignored

    def __init__(self) -> None:
        super().__init__()
