"""Sampling with a KV cache: greedy, temperature and top-k.

Notation: ``b`` batch, ``t`` tokens so far, ``V`` vocabulary.
"""

from __future__ import annotations

import torch
from torch import Tensor


def sample_next(logits: Tensor, temperature: float, top_k: int | None, generator: torch.Generator | None) -> Tensor:
    """logits ``[b, V]`` -> next ids ``[b, 1]``. ``temperature == 0`` is greedy."""
    if temperature == 0:
        return logits.argmax(-1, keepdim=True)
    logits = logits.float() / temperature
    if top_k is not None:
        k = min(top_k, logits.shape[-1])
        kth = torch.topk(logits, k).values[:, -1:]  # [b, 1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)


def generate(model, input_ids: Tensor, max_new_tokens: int, temperature: float = 1.0,
             top_k: int | None = None, generator: torch.Generator | None = None) -> Tensor:
    """See :meth:`posemb.Transformer.generate`."""
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    was_training = model.training
    model.eval()
    limit = model.position_limit  # None: the scheme serves any position
    ids = input_ids
    if limit is not None and ids.shape[1] > limit:
        ids_ctx = ids[:, -(limit - 1):]
    else:
        ids_ctx = ids
    try:
        out = model(ids_ctx, use_cache=True)
        cache = out.cache
        for step in range(max_new_tokens):
            nxt = sample_next(out.logits[:, -1], temperature, top_k, generator)  # [b, 1]
            ids = torch.cat((ids, nxt), dim=1)
            if step == max_new_tokens - 1:
                break
            if limit is not None and cache.length >= limit:
                # the table ends here: slide the window (re-encode the last limit-1 tokens)
                out = model(ids[:, -(limit - 1):], use_cache=True)
                cache = out.cache
            else:
                out = model(nxt, cache=cache, use_cache=True)
                cache = out.cache
    finally:
        model.train(was_training)
    return ids
