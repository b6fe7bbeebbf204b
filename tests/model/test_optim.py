"""AdamW as the trainer builds it (posemb/model/optim.py): fused on the CPU too, foreach where torch
has no fused kernel for the parameters' device."""

from __future__ import annotations

import torch

from kit import fast_config
from posemb import Transformer
from posemb.model import optim


def test_adamw_is_fused_on_the_cpu():
    cfg = fast_config()
    opt = optim.build_optimizer(Transformer(cfg.model), **cfg.train.optimizer_options())
    assert [g["fused"] for g in opt.param_groups] == [True, True]


def test_without_a_fused_kernel_the_multi_tensor_adamw_is_used(monkeypatch):
    class NoFused(torch.optim.AdamW):
        def __init__(self, params, fused=None, **kwargs):
            if fused:
                raise RuntimeError(
                    "`fused=True` requires all the params to be floating point "
                    "Tensors of supported devices"
                )
            super().__init__(params, fused=fused, **kwargs)

    monkeypatch.setattr(optim.torch.optim, "AdamW", NoFused)
    cfg = fast_config(train__lr=3e-4, train__beta2=0.9)
    opt = optim.build_optimizer(Transformer(cfg.model), **cfg.train.optimizer_options())
    assert all(g["foreach"] and not g["fused"] for g in opt.param_groups)
    assert opt.param_groups[0]["lr"] == 3e-4 and opt.param_groups[0]["betas"] == (0.9, 0.9)
