"""Memory estimates of a model and of training it, checked before anything is allocated.

One home for "how much memory does this need" (docs/DESIGN.md, "Reliability rules": a size
that cannot be allocated is refused before allocation, with the estimate). The comparison
with the memory available lives in :mod:`posemb.positional.memory`; this file knows what a
model and a training step hold:

- the model: its embeddings, the blocks' matrices and a learned table, from the sizes;
- training: the weights, their gradients and AdamW's two moments (4 copies), plus a lower
  bound of one micro-batch's activations (what backward must keep per token and layer:
  ``6 d + d_ff`` values, and the logits: ``V`` values).

Every figure is a lower bound, so a reasonable size is never refused.
"""

from __future__ import annotations

import torch

from ..positional.memory import check_fits, format_gib, tensor_bytes
from .config import ModelConfig


def _size_terms(cfg: ModelConfig) -> dict[str, int]:
    """Element counts of the big parameter groups, each under the settings that size it."""
    d, ff = cfg.d_model, cfg.ff_dim
    width = "model.d_model" if cfg.d_ff is None else "model.d_model / model.d_ff"
    terms = {
        "model.vocab_size x model.d_model": cfg.vocab_size * d * (1 if cfg.tie_embeddings else 2),
        f"model.n_layer x {width}": cfg.n_layer * (4 * d * d + 2 * d * ff),
    }
    if cfg.has_position_table:
        rows = cfg.max_positions + int(cfg.position_options.get("offset", 0) or 0)
        terms["model.max_positions x model.d_model"] = rows * d
    return terms


def _culprit(cfg: ModelConfig) -> str:
    """The settings to lower: those that size the largest group."""
    name = max(_size_terms(cfg).items(), key=lambda kv: kv[1])[0]
    return name.replace(" x ", " or ").replace(" / ", " or ")


def model_elements(cfg: ModelConfig) -> int:
    """A lower bound of the parameters of ``Transformer(cfg)``: the embeddings, the blocks'
    matrices and a learned table (biases, norms and small scheme tables left out).

    Python ints: ``d_model=10**12`` gives its true count, not an int64 overflow. A scheme's
    own tables (T5 buckets, Shaw distances) are checked by the scheme when it is built.
    """
    return sum(_size_terms(cfg).values())


def check_model_fits(cfg: ModelConfig, device: torch.device | str | None = None) -> int:
    """Refuse a model whose weights alone cannot fit; return its bytes.

    Raises:
        SizeTooLargeError: naming the estimate, the memory available and the settings.
    """
    elements = model_elements(cfg)
    nbytes = tensor_bytes(elements)
    if nbytes > 2**30:  # no smaller model is refused: skip the memory query for those
        check_fits(
            nbytes,
            f"a model of {elements:,} parameters ({torch.get_default_dtype()})",
            f"lower {_culprit(cfg)}",
            device,
        )
    return nbytes


def training_bytes(
    cfg: ModelConfig, micro_batch: int, seq_len: int, activation_bytes: int = 4
) -> tuple[int, int]:
    """Lower bounds of ``(weights + gradients + AdamW moments, one micro-batch's activations)``.

    Args:
        cfg: the model.
        micro_batch: sequences per forward pass (batch_size / processes / grad_accum).
        seq_len: tokens per sequence.
        activation_bytes: bytes per activation value (4 in float32, 2 under bf16 autocast).
    """
    state = 4 * tensor_bytes(model_elements(cfg))
    per_token = cfg.n_layer * (6 * cfg.d_model + cfg.ff_dim) + cfg.vocab_size
    tokens = micro_batch * seq_len
    return state, tokens * per_token * activation_bytes + tokens * 16  # + int64 ids, labels


def check_training_fits(
    cfg: ModelConfig,
    micro_batch: int,
    seq_len: int,
    device: torch.device | str,
    activation_bytes: int = 4,
) -> None:
    """Refuse a training step that cannot fit on ``device``, before building anything."""
    state, acts = training_bytes(cfg, micro_batch, seq_len, activation_bytes)
    if state + acts <= 2**30:
        return
    check_fits(  # the model alone: name its settings
        state,
        f"training a model of {model_elements(cfg):,} parameters (weights, gradients and "
        "AdamW moments)",
        f"lower {_culprit(cfg)}",
        device,
    )
    check_fits(
        state + acts,
        f"training (weights, gradients and AdamW moments {format_gib(state)}; activations of "
        f"one micro-batch of {micro_batch} x {seq_len} tokens {format_gib(acts)})",
        "lower train.batch_size (or raise train.grad_accum) or train.seq_len",
        device,
    )
