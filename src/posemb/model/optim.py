"""The model's optimiser: AdamW with GPT-2's weight-decay policy (as nanoGPT's
``configure_optimizers``).

It lives with the model, not the trainer, because a run's checkpoint records the optimiser's
parameter groups: a step-0 checkpoint of weights that did not come from training (imported,
extended: ``posemb.runs.write_initial_checkpoint``) holds a fresh optimiser's state, built
here, without importing the trainer. The learning-rate schedule is the trainer's
(``posemb.train.schedule``).
"""

from __future__ import annotations

import torch

from .transformer import Transformer


def param_groups(model: Transformer, weight_decay: float, decay_positions: bool) -> list[dict]:
    """Decay matrices (linear weights, token embeddings); never biases and norms (1-D).

    Position parameters (``model.position_parameters()``: learned tables, T5/Shaw biases)
    are exempt unless ``decay_positions``: rows a sequence never reaches get no gradient, so
    decay alone would drag them to zero.
    """
    exempt = set() if decay_positions else {id(p) for p in model.position_parameters()}
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
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(
    model: Transformer,
    *,
    lr: float,
    betas: tuple[float, float],
    weight_decay: float,
    decay_positions: bool,
) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups`, fused: one kernel updates every parameter, on the CPU
    (torch >= 2.4) as on CUDA. torch's default on the CPU is a Python loop over the
    parameters, a dozen small kernels each; where no fused kernel exists for the device, the
    multi-tensor (``foreach``) version is used.

    ``TrainConfig.optimizer_options()`` gives the keyword arguments of a run's settings.
    """
    groups = param_groups(model, weight_decay, decay_positions)
    options = {"lr": lr, "betas": betas, "eps": 1e-8}
    try:
        return torch.optim.AdamW(groups, fused=True, **options)
    except RuntimeError:  # "fused=True requires ... Tensors of supported devices"
        return torch.optim.AdamW(groups, foreach=True, **options)
