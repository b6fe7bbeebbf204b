"""Batches from a flat token array: random windows for training, consecutive ones for eval.

Windows are ``seq_len`` tokens. A causal trainer draws windows of ``t + 1`` tokens and
splits each into ``t`` inputs and their ``t`` next tokens (posemb.train.stream), so every
position of a sequence of ``t`` has a target.

Distributed training: with ``world_size > 1`` the array is cut into ``world_size``
contiguous shards of (almost) equal length, ``shard r = tokens[r*n//W : (r+1)*n//W]``, and
rank ``r`` draws windows only inside its own shard, so ranks never read the same window
and each touches only its part of a memory-mapped file. Give each rank its own generator.

Exact resume: ``rng_state_to_json(rng)`` is a JSON-serialisable dict (numpy's
``bit_generator.state``; PCG64's 128-bit integers are exact in Python's ``json``) and
``rng_from_json(state)`` rebuilds a generator that continues with the same draws.

Shapes: ``b`` batch, ``t`` sequence length (``seq_len``), ``n`` tokens in the array.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

from .errors import DataError


def shard(tokens: np.ndarray, rank: int = 0, world_size: int = 1) -> np.ndarray:
    """Rank ``rank``'s contiguous slice of ``tokens`` (a view: nothing is copied or read)."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    n = len(tokens)
    return tokens[rank * n // world_size : (rank + 1) * n // world_size]


def sample_batch(
    tokens: np.ndarray,
    batch_size: int,
    seq_len: int,
    rng: np.random.Generator,
    *,
    rank: int = 0,
    world_size: int = 1,
) -> torch.Tensor:
    """``batch_size`` windows of ``seq_len`` tokens at uniformly random offsets.

    Args:
        tokens: 1-D token ids ``[n]`` (e.g. the memmap of :func:`~.cache.cached_tokens`).
        batch_size: windows per batch ``b``.
        seq_len: tokens per window ``t``.
        rng: the generator; its state after the call fixes the next batch.
        rank: this process's rank; windows come from its shard only.
        world_size: number of processes sharing ``tokens``.

    Returns:
        ``LongTensor [b, t]`` on the CPU.

    Raises:
        DataError: the (shard of the) corpus has fewer than ``seq_len`` tokens.
    """
    if batch_size < 1 or seq_len < 1:
        raise ValueError(f"batch_size and seq_len must be >= 1, got {batch_size}, {seq_len}")
    tokens = np.asarray(tokens)  # a memmap stays a view on disk
    if tokens.ndim != 1:
        raise ValueError(f"tokens must be a flat 1-D array, got shape {tuple(tokens.shape)}")
    part = shard(tokens, rank, world_size)  # a view: a memmap stays on disk
    _check_length(len(tokens), len(part), seq_len, world_size)
    starts = rng.integers(0, len(part) - seq_len + 1, size=batch_size)  # [b]
    windows = sliding_window_view(part, seq_len)[starts]  # [b, t]; reads only these windows
    return torch.from_numpy(windows.astype(np.int64))


def iter_windows(
    tokens: np.ndarray, seq_len: int, stride: int | None = None
) -> Iterator[torch.Tensor]:
    """Consecutive windows for evaluation: starts ``0, stride, 2*stride, ...``.

    With ``stride=None`` (or ``seq_len``) the windows do not overlap and cover every token
    once; a smaller stride gives sliding windows (the caller scores only the last
    ``stride`` positions of each after the first). Window ``k`` starts at ``k * stride``;
    a final partial window (fewer than ``seq_len`` tokens left) is not yielded.

    Yields:
        ``LongTensor [t]`` per window.

    Raises:
        DataError: fewer than ``seq_len`` tokens.
    """
    stride = seq_len if stride is None else stride
    if seq_len < 1 or not 1 <= stride <= seq_len:
        raise ValueError(f"need seq_len >= 1 and 1 <= stride <= seq_len, got {seq_len}, {stride}")
    n = len(tokens)
    if n < seq_len:
        raise DataError(
            f"the corpus has {n} tokens, fewer than one window of seq_len={seq_len}: evaluate "
            "at a shorter length or on more text"
        )
    for start in range(0, n - seq_len + 1, stride):
        yield torch.from_numpy(np.asarray(tokens[start : start + seq_len], dtype=np.int64))


def count_windows(n_tokens: int, seq_len: int, stride: int | None = None) -> int:
    """How many windows :func:`iter_windows` yields for ``n_tokens`` tokens."""
    stride = seq_len if stride is None else stride
    return 0 if n_tokens < seq_len else (n_tokens - seq_len) // stride + 1


def rng_state_to_json(rng: np.random.Generator) -> dict[str, Any]:
    """The generator's full state as a JSON-serialisable dict (round-trips exactly)."""
    state = rng.bit_generator.state
    try:
        json.dumps(state)  # fail here, not at checkpoint time
    except TypeError:
        name = type(rng.bit_generator).__name__
        raise ValueError(
            f"the state of a {name} generator is not JSON: use np.random.default_rng (PCG64)"
        ) from None
    return state


def rng_from_json(state: dict[str, Any] | str) -> np.random.Generator:
    """A generator in the state given by :func:`rng_state_to_json` (a dict or JSON text)."""
    if isinstance(state, str):
        state = json.loads(state)
    name = state.get("bit_generator")
    bit_gen_cls = getattr(np.random, str(name), None)
    if not (isinstance(bit_gen_cls, type) and issubclass(bit_gen_cls, np.random.BitGenerator)):
        raise ValueError(f"unknown numpy bit generator {name!r} in the saved RNG state")
    bit_gen = bit_gen_cls()
    bit_gen.state = state
    return np.random.Generator(bit_gen)


def _check_length(n: int, n_shard: int, seq_len: int, world_size: int) -> None:
    if n_shard >= seq_len:
        return
    where = (
        f"the corpus has {n} tokens"
        if world_size == 1
        else f"each of {world_size} ranks gets a shard of about {n_shard} of the corpus's "
        f"{n} tokens"
    )
    raise DataError(
        f"{where}, fewer than one window of {seq_len}: lower train.seq_len "
        "(--set train.seq_len=...) or use a larger --data source"
    )
