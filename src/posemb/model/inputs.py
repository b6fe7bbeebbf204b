"""The model's boundary checks: token ids, labels, positions and padding masks.

Each raises a ``TypeError``/``ValueError`` naming the value, the limit and the fix, before
the values reach ``torch`` (never a bare ``IndexError`` from an embedding lookup). Checks that
read tensor values are skipped under ``torch.compile`` (no graph break); the position range
is then checked from host ints.

Notation: ``b`` batch, ``t`` new tokens, ``past`` cached tokens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..positional.base import PositionalScheme
from ..positional.learned import check_attention_mask, check_finite_positions

if TYPE_CHECKING:
    from .transformer import KVCache


def check_input_ids(input_ids: Tensor, vocab: int) -> tuple[int, int]:
    """``(b, t)`` of ``input_ids`` ``[b, t]``: integer ids below ``vocab``."""
    if not isinstance(input_ids, Tensor):
        raise TypeError(
            f"input_ids must be a LongTensor [batch, length], got {type(input_ids).__name__} "
            "(wrap it: torch.tensor([ids]))"
        )
    if input_ids.dim() != 2:
        raise ValueError(
            f"input_ids must be [batch, length], got shape {tuple(input_ids.shape)} "
            "(add a batch dimension: ids.unsqueeze(0))"
        )
    if input_ids.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"input_ids must be an integer tensor, got {input_ids.dtype}")
    if not torch.compiler.is_compiling() and input_ids.numel():
        lo, hi = (int(v) for v in torch.aminmax(input_ids.detach()))
        if hi >= vocab or lo < 0:
            bad = hi if hi >= vocab else lo
            raise ValueError(
                f"token id {bad} is outside the vocabulary of {vocab} ids (0–{vocab - 1}); "
                "encode with the model's own tokenizer or raise model.vocab_size"
            )
    return input_ids.shape


def check_labels(
    labels: Tensor, input_ids: Tensor, shifted: bool, vocab: int, name: str = "labels"
) -> None:
    """Labels (or targets) of ``input_ids``' shape, leaving a token to score, ids below
    ``vocab`` or -100. ``shifted``: the model shifts them (a causal LM's ``labels``), so
    position 0's label is never scored."""
    if not isinstance(labels, Tensor) or labels.shape != input_ids.shape:
        shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        hint = (
            "causal LM: pass the input ids themselves; the model shifts them"
            if shifted
            else "one target per position, -100 where no loss is taken"
        )
        raise ValueError(
            f"{name} must have input_ids' shape {tuple(input_ids.shape)}, got {shape} ({hint})"
        )
    if labels.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"{name} must be an integer tensor (-100 = no loss), got {labels.dtype}")
    if torch.compiler.is_compiling():
        return
    scored = labels[:, 1:] if shifted else labels  # a causal LM scores tokens 1 .. t-1
    if scored.numel() == 0 or not bool((scored != -100).any()):
        need = "two tokens (position i predicts token i+1)" if shifted else "one token"
        raise ValueError(
            f"{name} {tuple(labels.shape)} leave no token to score (a loss over zero tokens "
            f"is NaN): give each forward with {name} at least {need} whose {name[:-1]} is "
            "not -100"
        )
    lo, hi = (int(v) for v in torch.aminmax(labels.detach().masked_fill(labels == -100, 0)))
    if hi >= vocab or lo < 0:
        raise ValueError(
            f"{name[:-1]} {hi if hi >= vocab else lo} is outside the vocabulary of {vocab} ids "
            f"(0–{vocab - 1}); use -100 for tokens without loss"
        )


def check_positions(
    positions: Tensor, scheme: PositionalScheme, b: int, t: int, host_known: bool, past: int
) -> Tensor:
    """``positions`` ``[b or 1, t]`` (from ``[t]``) as int64, in the range ``scheme`` serves.

    A scheme with ``fractional_positions`` also takes a float tensor (kept as it is: the
    ``stretch`` recipe's positions ``2.5``, ``2.75``, ...); they must be finite.

    ``host_known``: the model built them itself as ``past .. past+t-1``, so the range is
    checked from ints (no host sync, no graph break under ``torch.compile``).
    """
    if not isinstance(positions, Tensor):
        raise TypeError(
            "positions must be an integer tensor [batch, length] or [length], got "
            f"{type(positions).__name__}"
        )
    if positions.dim() == 1:
        positions = positions.unsqueeze(0)  # [1, t]
    if positions.dim() != 2 or positions.shape[-1] != t or positions.shape[0] not in (1, b):
        raise ValueError(
            f"positions must be [batch, length] or [length] matching input_ids [{b}, {t}], "
            f"got shape {tuple(positions.shape)}"
        )
    fractional = positions.is_floating_point() and scheme.fractional_positions
    if positions.dtype not in (torch.int64, torch.int32) and not fractional:
        hint = (
            f" (model.position={scheme.name!r} reads integer positions only)"
            if positions.is_floating_point()
            else ""
        )
        raise TypeError(f"positions must be an integer tensor, got {positions.dtype}{hint}")
    if fractional and not torch.compiler.is_compiling():
        check_finite_positions(positions)
    if host_known:  # past .. past+t-1: checked from ints, no sync, no graph break
        scheme.check_position_range(past, past + t - 1)
    elif not torch.compiler.is_compiling():
        scheme.check_positions(positions)
    return positions if fractional else positions.long()


def padding_mask(
    attention_mask: Tensor | None, cache: KVCache | None, b: int, t: int, past: int
) -> Tensor | None:
    """``[b, past + t]`` bool padding mask of every key (cached and new), or None (none)."""
    if cache is not None and cache.layers and cache.layers[0][0].shape[0] != b:
        raise ValueError(
            f"the cache holds a batch of {cache.layers[0][0].shape[0]} rows but input_ids has {b}; "
            "continue a cache with the same batch it was built with"
        )
    if attention_mask is None:
        if cache is not None and cache.key_mask is not None:
            ones = torch.ones(b, t, dtype=torch.bool, device=cache.key_mask.device)
            return torch.cat((cache.key_mask, ones), dim=1)
        return None
    if not torch.compiler.is_compiling():
        check_attention_mask(attention_mask)  # 1 = token, 0 = padding; never NaN
    if (
        attention_mask.dim() != 2
        or attention_mask.shape[0] != b
        or attention_mask.shape[1] not in (t, past + t)
    ):
        raise ValueError(
            f"attention_mask must be [batch, length] = [{b}, {t}] (or [{b}, {past + t}] with a "
            f"cache of {past}), got shape {tuple(attention_mask.shape)}"
        )
    mask = attention_mask.to(torch.bool)
    if mask.shape[1] == t and past > 0:
        prev = (
            cache.key_mask
            if cache.key_mask is not None
            else torch.ones(b, past, dtype=torch.bool, device=mask.device)
        )
        mask = torch.cat((prev, mask), dim=1)
    return mask
