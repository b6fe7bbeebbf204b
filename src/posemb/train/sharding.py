"""Fully sharded data parallelism (FSDP2) for ``train.parallel=fsdp``.

Each of ``world`` processes keeps 1/world of every parameter, gradient and AdamW moment
(PyTorch's ``fully_shard``: parameters become DTensors sharded along their first
dimension). Each block is its own unit: its parameters are all-gathered just before its
forward and backward and freed after, and its gradients reduce-scattered (averaged) as soon
as they are made. The embedding, position table, final norm and head form the root unit.

Checkpoints are the same files as a one-process run's: :func:`full_copies` gathers the
shards on every rank (a collective) and rank 0 writes the whole model and moments, so a
run saved under FSDP resumes under FSDP, DDP or one process, with any number of them, and
``posemb eval``/``generate`` read it as any run. On resume every rank reads the whole files
and keeps its own shard (:func:`model_shards`, :func:`optimizer_shards`).

The world-size-1 case never shards: ``train.parallel`` only matters under torchrun.
"""

from __future__ import annotations

import torch
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor, distribute_tensor

from ..model import Transformer


def shard_model(model: Transformer, device: torch.device, world: int) -> None:
    """Shard ``model`` in place across the ``world`` processes of the group (one unit per
    block, the rest in the root unit). Build the optimiser afterwards: over the shards."""
    mesh = init_device_mesh(device.type, (world,))
    for block in model.blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)


def is_sharded(model: torch.nn.Module) -> bool:
    return any(isinstance(p, DTensor) for p in model.parameters())


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor of a shard (a collective: every rank calls it), else ``t``."""
    return t.full_tensor() if isinstance(t, DTensor) else t


def full_copies(
    model: Transformer, optimizer: torch.optim.Optimizer
) -> tuple[Transformer, torch.optim.Optimizer]:
    """``(model, optimizer)`` as a checkpoint stores them: for a sharded model, an unsharded
    CPU copy of both, gathered from every rank (call it on every rank); else the two
    themselves. The torch RNG is left as it was (the copy is built, then overwritten)."""
    if not is_sharded(model):
        return model, optimizer
    with torch.random.fork_rng(devices=[]):
        copy = Transformer(model.config)
    copy.load_state_dict({k: full_tensor(v).cpu() for k, v in model.state_dict().items()})
    by_name = dict(copy.named_parameters(remove_duplicate=False))
    name_of = {id(p): n for n, p in model.named_parameters(remove_duplicate=False)}
    groups = [
        {**{k: v for k, v in g.items() if k != "params"}, "params": []}
        for g in optimizer.param_groups
    ]
    for group, own in zip(groups, optimizer.param_groups):
        group["params"] = [by_name[name_of[id(p)]] for p in own["params"]]
    copy_opt = type(optimizer)(groups)
    sd = optimizer.state_dict()
    state = {
        i: {k: full_tensor(v).cpu() if torch.is_tensor(v) else v for k, v in s.items()}
        for i, s in sd["state"].items()
    }
    copy_opt.load_state_dict({"state": state, "param_groups": sd["param_groups"]})
    return copy, copy_opt


def _shard_like(like: torch.Tensor, full: torch.Tensor) -> torch.Tensor:
    """This rank's shard of ``full``, placed as ``like`` (every rank holds ``full``: no
    communication)."""
    if not isinstance(like, DTensor):
        return full
    full = full.to(like.device, like.dtype)
    return distribute_tensor(full, like.device_mesh, like.placements, src_data_rank=None)


def model_shards(model: Transformer, tensors: dict[str, torch.Tensor]) -> dict:
    """Whole checkpoint weights -> this rank's shards of them (unchanged when unsharded)."""
    if not is_sharded(model):
        return tensors
    own = model.state_dict()
    return {k: _shard_like(own[k], v) if k in own else v for k, v in tensors.items()}


def optimizer_shards(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> dict:
    """Whole checkpoint moments (``"<param index>.<key>"``) -> this rank's shards of those
    shaped like their parameter (``step`` stays whole)."""
    params = [p for g in optimizer.param_groups for p in g["params"]]
    out = {}
    for name, value in tensors.items():
        head = name.split(".", 1)[0]
        p = params[int(head)] if head.isdigit() and int(head) < len(params) else None
        sharded = p is not None and isinstance(p, DTensor) and value.shape == p.shape
        out[name] = _shard_like(p, value) if sharded else value
    return out
