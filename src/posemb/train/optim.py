"""AdamW with a weight-decay policy, and the warmup + cosine learning-rate schedule."""

from __future__ import annotations

import math

import torch

from ..model import Transformer
from .config import TrainConfig


def param_groups(model: Transformer, cfg: TrainConfig) -> list[dict]:
    """Decay matrices (linear weights, token embeddings); never biases and norms (1-D).

    Position parameters (``model.position_parameters()``: learned tables, T5/Shaw biases)
    are exempt unless ``train.decay_positions``: rows a sequence never reaches get no
    gradient, so decay alone would drag them to zero.
    """
    exempt = set() if cfg.decay_positions else {id(p) for p in model.position_parameters()}
    decay, no_decay = [], []
    seen: set[int] = set()
    for p in model.parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        if p.dim() < 2 or id(p) in exempt:
            no_decay.append(p)
        else:
            decay.append(p)
    return [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: Transformer, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups`, fused: one kernel updates every parameter, on the CPU
    (torch >= 2.4) as on CUDA. torch's default on the CPU is a Python loop over the
    parameters, a dozen small kernels each; where no fused kernel exists for the device, the
    multi-tensor (``foreach``) version is used."""
    groups = param_groups(model, cfg)
    options = {"lr": cfg.lr, "betas": (cfg.beta1, cfg.beta2), "eps": 1e-8}
    try:
        return torch.optim.AdamW(groups, fused=True, **options)
    except RuntimeError:  # "fused=True requires ... Tensors of supported devices"
        return torch.optim.AdamW(groups, foreach=True, **options)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to ``lr`` over ``warmup_steps``, cosine decay to ``min_lr`` at
    ``max_steps``."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / (cfg.warmup_steps + 1)
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)
