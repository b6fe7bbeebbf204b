"""Sampling with a KV cache: greedy, temperature and top-k.

Notation: ``b`` batch, ``t`` tokens so far, ``V`` vocabulary.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..positional.checks import check_int, is_finite_number, is_int

# The most tokens one call generates: each costs a forward pass (a millisecond for a tiny
# model on a CPU, so ten million take hours) and 8 bytes of ids; more is refused up front.
MAX_NEW_TOKENS = 10_000_000


def sample_next(
    logits: Tensor, temperature: float, top_k: int | None, generator: torch.Generator | None
) -> Tensor:
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


def generate(
    model,
    input_ids: Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
    vocab_size: int | None = None,
    progress: bool = False,
) -> Tensor:
    """See :meth:`posemb.Transformer.generate`."""
    if not isinstance(input_ids, Tensor) or input_ids.dim() != 2 or input_ids.shape[1] == 0:
        shape = (
            tuple(input_ids.shape) if isinstance(input_ids, Tensor) else type(input_ids).__name__
        )
        raise ValueError(
            "generate needs a prompt of at least one token, input_ids [batch, length >= 1]; got "
            f"{shape}"
        )
    check_int("max_new_tokens", max_new_tokens, minimum=0)
    if max_new_tokens > MAX_NEW_TOKENS:
        raise ValueError(
            f"max_new_tokens={max_new_tokens} cannot finish: one call generates at most "
            f"{MAX_NEW_TOKENS:,} tokens (hours even for a tiny model); ask for fewer, or "
            "generate in several calls, each continuing the last"
        )
    if not (is_finite_number(temperature) and temperature >= 0):
        raise ValueError(
            f"temperature must be a finite number >= 0 (0 = greedy), got {temperature!r}"
        )
    if top_k is not None:
        check_int("top_k", top_k, minimum=1)
    if vocab_size is not None and (
        not is_int(vocab_size) or not 1 <= vocab_size <= model.config.vocab_size
    ):
        raise ValueError(
            f"vocab_size must be an integer in [1, {model.config.vocab_size}] (the model's "
            f"vocabulary), got {vocab_size!r}"
        )
    was_training = model.training
    model.eval()
    limit = model.position_limit  # None: the scheme serves any position
    keep = max(limit - 1, 1) if limit is not None else None  # tokens re-encoded when the table ends
    ids = input_ids
    if limit is not None and ids.shape[1] > limit:
        ids_ctx = ids[:, -keep:]
    else:
        ids_ctx = ids
    bar = _progress_bar(max_new_tokens) if progress else None
    try:
        out = model(ids_ctx, use_cache=True)
        cache = out.cache
        for step in range(max_new_tokens):
            if bar is not None:
                bar.update(1)
            logits = out.logits[:, -1]  # [b, V]
            if vocab_size is not None:
                logits = logits[:, :vocab_size]  # padded ids are never sampled
            nxt = sample_next(logits, temperature, top_k, generator)  # [b, 1]
            ids = torch.cat((ids, nxt), dim=1)
            if step == max_new_tokens - 1:
                break
            if limit is not None and cache.length >= limit:
                # the table ends here: slide the window (re-encode the last limit-1 tokens)
                out = model(ids[:, -keep:], use_cache=True)
                cache = out.cache
            else:
                out = model(nxt, cache=cache, use_cache=True)
                cache = out.cache
    finally:
        model.train(was_training)
        if bar is not None:
            bar.close()
    return ids


def _progress_bar(total: int):
    """A tqdm bar on stderr with rate and time left; silent when stderr is not a terminal."""
    import sys

    from tqdm import tqdm  # text, in a terminal as in a notebook (no ipywidgets)

    return tqdm(
        total=total, desc="generate", unit="tok", file=sys.stderr, disable=None, leave=False
    )


def generate_text(
    model,
    tokenizer,
    prompt: str,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> str:
    """Continue ``prompt`` (text in, text out); ``progress`` shows a bar on stderr when it is a
    terminal. ``tokenizer`` is any posemb tokenizer (``encode``, ``decode``, ``vocab_size``)."""
    ids = tokenizer.encode(prompt)
    if not ids:
        raise ValueError("the prompt encodes to no tokens; give a non-empty --prompt")
    device = next(model.parameters()).device
    x = torch.tensor([ids], device=device)
    g = torch.Generator(device=device).manual_seed(seed)
    # a model's vocabulary may be padded past the tokenizer's (nanoGPT-style): never sample padding
    vocab = min(tokenizer.vocab_size, model.config.vocab_size)
    out = model.generate(
        x,
        max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        generator=g,
        vocab_size=vocab,
        progress=progress,
    )
    return tokenizer.decode(out[0].tolist())
