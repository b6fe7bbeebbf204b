"""Order-sensitivity probe: can the model tell "the cat chased the dog" from "the dog chased
the cat"?

Both texts are the same multiset of tokens. For every layer we compare the two texts'
mean-pooled hidden states by cosine similarity, once with the model's positions and once
with its positional scheme swapped for NoPE (same weights otherwise). A bidirectional
model without positions gives similarity 1 at every layer (self-attention is permutation-
equivariant); a learned table makes them differ; a causal mask alone also makes them
differ (a token sees only its prefix, which implies order).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..model import Transformer


@dataclass
class ProbeResult:
    text_a: str
    text_b: str
    causal: bool
    scheme: str
    with_positions: list[float]  # cosine similarity per layer (0 = embeddings, last = final norm)
    without_positions: list[float]
    same_tokens: bool = True  # B is a reordering of A's tokens (what the probe is about)

    @property
    def final_with(self) -> float:
        return self.with_positions[-1]

    @property
    def final_without(self) -> float:
        return self.without_positions[-1]

    def reading(self) -> str:
        kind = "causal" if self.causal else "bidirectional"
        same = self.final_without > 1 - 1e-5
        if not self.same_tokens:
            without = (
                "not comparable as orderings (the texts are not the same tokens in another order, "
                "so they differ with or without positions)"
            )
        else:
            without = (
                "identical without positions (a bag of tokens)"
                if same
                else "different even without positions (the causal mask implies order)"
            )
        return (
            f"{kind} {self.scheme} model: the two texts' pooled representations are {without}; "
            f"with the model's positions their cosine similarity is {self.final_with:.4f}."
        )


@torch.no_grad()
def pooled_layers(model: Transformer, ids: list[int]) -> list[torch.Tensor]:
    device = next(model.parameters()).device
    limit = model.position_limit
    if limit is not None and len(ids) > limit:
        raise ValueError(
            f"the text has {len(ids)} tokens, past the model's {limit} positions; use shorter texts"
        )
    hidden = model(torch.tensor([ids], device=device), output_hidden_states=True).hidden_states
    return [h[0].float().mean(0) for h in hidden]  # per layer [d]


def probe_order(model: Transformer, tokenizer, text_a: str, text_b: str) -> ProbeResult:
    model.eval()
    a, b = tokenizer.encode(text_a), tokenizer.encode(text_b)
    if not a or not b:
        raise ValueError("both texts must be non-empty")

    def sims(m: Transformer) -> list[float]:
        return [
            float(F.cosine_similarity(x, y, dim=0))
            for x, y in zip(pooled_layers(m, a), pooled_layers(m, b))
        ]

    return ProbeResult(
        text_a,
        text_b,
        model.config.causal,
        model.config.position,
        sims(model),
        sims(model.with_positions("nope")),  # same weights, no positions
        same_tokens=sorted(a) == sorted(b),
    )
