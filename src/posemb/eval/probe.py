"""Order-sensitivity probe: can the model tell "The cat chased the dog" from "The dog chased
the cat"?

Both texts are the same multiset of tokens. For every layer we compare the two texts'
hidden states, once with the model's positions and once with its positional scheme swapped
for NoPE (the same weights otherwise):

- pooled: the mean over tokens, compared by cosine similarity and by the largest difference
  of any coordinate;
- per token, up to the reordering: each token of A is matched with the tokens of B that
  have the same id (and the other way round), and the difference is the largest, over all
  tokens, of the distance to the nearest match (max-abs norm). It is 0 when every token has
  the same representation in both texts, wherever it stands; a value above 0 proves that
  some token is represented differently (no matching of the tokens could make them equal).

A bidirectional encoder without positions gives differences of 0 at every layer, per token
too: self-attention is permutation-equivariant, so a token's representation depends on the
bag of tokens around it, not on their order. A learned table makes them differ. A causal
model differs even without positions: each token sees only the tokens before it, so the
mask itself tells the two orders apart.

The comparison runs in float64 on a copy of the model, so "identical" means equal to about
1e-12, far below any effect of the order.

Notation: ``t`` tokens, ``d`` width, ``n`` layers + 1 (0 = embeddings, last = final norm).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..model import Transformer

IDENTICAL = 1e-9  # a float64 difference below this is float rounding, not order


@dataclass
class Comparison:
    """How two texts' representations differ in one model, per layer (0 = embeddings, last
    = after the final norm).

    Attributes:
        cosine: cosine similarity of the mean-pooled hidden states.
        pooled_diff: largest absolute difference of the mean-pooled hidden states.
        token_diff: per token, matched by token id (see the module docstring); None when
            the texts are not the same tokens in another order.
        scale: the largest absolute hidden value of either text at any layer, to read a
            difference against.
    """

    cosine: list[float]
    pooled_diff: list[float]
    token_diff: list[float] | None
    scale: float = 0.0

    def size(self) -> str:
        """``0.755, 18% of the largest hidden value (4.1)``: the difference and its scale."""
        if not self.scale:
            return f"{self.max_diff:.3g}"
        share = self.max_diff / self.scale
        return f"{self.max_diff:.3g}, {share:.0%} of the largest hidden value ({self.scale:.2g})"

    @property
    def max_diff(self) -> float:
        """The largest difference at any layer, pooled or per token."""
        return max(self.pooled_diff + (self.token_diff or []))

    @property
    def identical(self) -> bool:
        return self.token_diff is not None and self.max_diff < IDENTICAL


@dataclass
class ProbeResult:
    text_a: str
    text_b: str
    causal: bool
    scheme: str
    with_positions: Comparison
    without_positions: Comparison  # the same weights, positions removed (NoPE)
    same_tokens: bool = True  # B is a reordering of A's tokens (what the probe is about)

    @property
    def final_with(self) -> float:
        """Cosine similarity of the pooled final states, with the model's positions."""
        return self.with_positions.cosine[-1]

    @property
    def final_without(self) -> float:
        """The same, positions removed."""
        return self.without_positions.cosine[-1]

    def reading(self) -> str:
        """Two plain sentences: what the probe measured, and why."""
        kind = "causal" if self.causal else "bidirectional"
        w, wo = self.with_positions, self.without_positions
        with_part = (
            f"with its {self.scheme} positions the two texts differ by up to {w.size()}; "
            f"the cosine similarity of their mean hidden states is {self.final_with:.4f}"
        )
        if not self.same_tokens:
            return (
                "The texts are not the same tokens in another order, so they differ with or "
                f"without positions (in this {kind} model, {with_part})."
            )
        if wo.identical:
            return (
                f"In this {kind} model, {with_part}; with positions removed they are identical "
                f"at every layer, per token too (largest difference {wo.max_diff:.1g}): "
                "without positions self-attention sees a bag of tokens."
            )
        if self.causal:
            return (
                f"In this {kind} model, {with_part}; with positions removed they still differ, "
                f"by up to {wo.size()}, because the causal mask implies order: each "
                "token sees only the tokens before it."
            )
        return (
            f"In this {kind} model, {with_part}; with positions removed they differ by up to "
            f"{wo.size()}."
        )


@torch.no_grad()
def hidden_layers(model: Transformer, ids: list[int]) -> list[torch.Tensor]:
    """Every layer's hidden states of one text: ``n`` tensors ``[t, d]``.

    Raises:
        ValueError: the text is longer than the model's positions.
    """
    device = next(model.parameters()).device
    limit = model.position_limit
    if limit is not None and len(ids) > limit:
        raise ValueError(
            f"the text has {len(ids)} tokens, past the model's {limit} positions; use shorter texts"
        )
    hidden = model(torch.tensor([ids], device=device), output_hidden_states=True).hidden_states
    return [h[0] for h in hidden]  # per layer [t, d]


def token_matched_diff(
    ha: torch.Tensor, ids_a: list[int], hb: torch.Tensor, ids_b: list[int]
) -> float:
    """The per-token difference of two reorderings, up to the reordering.

    Args:
        ha: ``[t, d]`` hidden states of text A; ``ids_a`` its ``t`` token ids.
        hb: ``[t, d]`` hidden states of text B, ``ids_b`` a reordering of ``ids_a``.

    Returns:
        The largest, over the tokens of both texts, of the max-abs distance to the nearest
        token of the other text with the same id.
    """
    dist = (ha[:, None, :] - hb[None, :, :]).abs().amax(dim=-1)  # [t, t]
    a, b = torch.tensor(ids_a, device=ha.device), torch.tensor(ids_b, device=ha.device)
    dist = dist.masked_fill(a[:, None] != b[None, :], float("inf"))  # [t, t]
    return float(torch.maximum(dist.amin(dim=1).max(), dist.amin(dim=0).max()))


def compare(model: Transformer, a: list[int], b: list[int]) -> Comparison:
    """How ``model`` represents the token ids ``a`` and ``b``, layer by layer (float64)."""
    model = copy.deepcopy(model).double().eval()
    cosine, pooled_diff, token_diff = [], [], []
    same_tokens = sorted(a) == sorted(b)
    scale = 0.0
    for ha, hb in zip(hidden_layers(model, a), hidden_layers(model, b)):
        scale = max(scale, float(ha.abs().max()), float(hb.abs().max()))
        pa, pb = ha.mean(0), hb.mean(0)  # [d]
        cosine.append(float(F.cosine_similarity(pa, pb, dim=0)))
        pooled_diff.append(float((pa - pb).abs().max()))
        if same_tokens:
            token_diff.append(token_matched_diff(ha, a, hb, b))
    return Comparison(cosine, pooled_diff, token_diff if same_tokens else None, scale)


def probe_order(model: Transformer, tokenizer, text_a: str, text_b: str) -> ProbeResult:
    """Compare two orderings of the same tokens, with the model's positions and without.

    Example::

        r = probe_order(model, tokenizer, "The cat chased the dog", "The dog chased the cat")
        r.without_positions.identical  # True for a bidirectional encoder
        print(r.reading())
    """
    a, b = tokenizer.encode(text_a), tokenizer.encode(text_b)
    if not a or not b:
        raise ValueError("both texts must be non-empty")
    return ProbeResult(
        text_a,
        text_b,
        model.config.causal,
        model.config.position,
        compare(model, a, b),
        compare(model.with_positions("nope"), a, b),  # same weights, no positions
        same_tokens=sorted(a) == sorted(b),
    )
