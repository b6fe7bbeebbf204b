"""A training session: one process's device, rank, model, optimiser, data stream and step.

:func:`start_session` builds it, in order: join the process group of a torchrun launch,
the tokenizer and the data, the model (:func:`build_model`: where a run's weights are
made, fresh or from another run's with ``train.init``), the optimiser, then either the last
checkpoint (restored exactly: weights, moments, step, every RNG state) or the run's first
files. Data parallelism is decided here, by ``train.parallel``: FSDP shards the model in
:func:`start_session`, before the optimiser is built over its shards (train/sharding.py);
otherwise :func:`parallel` wraps it in DDP. :func:`parallel` then compiles it if asked.
:func:`leave_group_at_end` leaves the process group when training ends.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ..data import Tokenizer, rng_from_json
from ..model import Transformer
from ..model.compile_check import compile_model
from ..model.optim import build_optimizer
from ..positional import FRACTIONAL_SCHEMES
from ..runs.checkpoint import load_optimizer_state, resume_state, rng_from_text
from ..runs.claim import RunFolder, note
from ..runs.config import RunConfig, TrainConfig
from ..runs.layout import MODEL_FILE, OPTIMIZER_FILE, STATE_FILE, TOKENIZER_FILE, run_file
from ..runs.load import write_config
from ..runs.weights import load_weights, read_tensors
from .compile_policy import CompilePolicy, start_policy
from .host import keep_freed_memory
from .lineage import initial_hf_model, initial_model
from .metrics import truncate_metrics
from .sharding import is_sharded, model_shards, optimizer_shards, shard_model
from .stream import TrainData, make_tokenizer


@dataclass
class Session:
    """One training process: where it runs, what it trains, and how far it has got.

    Attributes:
        cfg: the run's settings (``model.vocab_size`` grown to the tokenizer's).
        folder: the run folder (rank 0 writes it; the others only read).
        device: this process's device.
        rank: this process's rank; ``world`` processes in all (1 without torchrun).
        local_rank: the rank on this machine (its CUDA device).
        micro: sequences per micro-batch on this process.
        data: the training and validation batches of this rank.
        model: the module itself: checkpoints, evaluation and gradient clipping use it.
        optimizer: AdamW over ``model``'s parameters.
        rng: this rank's data stream (windows, random positions).
        step: optimiser steps taken.
        net: what the forward pass runs through: ``model`` wrapped for data parallelism
            and/or compiled (:func:`parallel`).
        owns_group: this process created the process group (and leaves it at the end).
        autocast: bf16 autocast around forward and backward.
        compile: whether ``net`` is compiled, why, and the figures behind it.
    """

    cfg: RunConfig
    folder: RunFolder
    device: torch.device
    rank: int
    world: int
    local_rank: int
    micro: int
    data: TrainData
    model: Transformer
    optimizer: torch.optim.Optimizer
    rng: np.random.Generator
    step: int = 0
    net: torch.nn.Module | None = None
    owns_group: bool = False
    autocast: bool = False
    compile: CompilePolicy | None = None

    @property
    def main(self) -> bool:
        """Rank 0: the process that logs and writes."""
        return self.rank == 0

    @property
    def run_dir(self) -> Path:
        return self.folder.path

    def amp(self) -> contextlib.AbstractContextManager:
        """bf16 autocast when the run uses it, else nothing."""
        if self.autocast:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()


def dist_env() -> tuple[int, int, int]:
    """``(rank, world size, local rank)`` from torchrun's environment; ``(0, 1, 0)`` alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def use_autocast(tc: TrainConfig, device: torch.device) -> bool:
    """bf16 autocast: ``train.dtype=bfloat16``, or ``auto`` on CUDA."""
    return (tc.dtype == "bfloat16") or (tc.dtype == "auto" and device.type == "cuda")


def start_session(cfg: RunConfig, folder: RunFolder, device: torch.device, micro: int) -> Session:
    """Join the process group, then build or restore everything a training step needs
    (all but ``net``: :func:`parallel` makes it)."""
    rank, world, local_rank = dist_env()
    owns_group = _join_group(device, world, folder.resume)
    if device.type == "cpu":
        keep_freed_memory()  # train/host.py: no fresh pages for every step's activations
    run_dir, tc = folder.path, cfg.train
    has_checkpoint = folder.resume and (run_dir / STATE_FILE).exists()
    saved_tokenizer = folder.resume and (run_dir / TOKENIZER_FILE).exists()
    if cfg.hf is not None:  # a Hugging Face model: its own tokenizer, whatever its files
        from ..interop.tokenizers import model_tokenizer

        tokenizer = model_tokenizer(run_dir if saved_tokenizer else Path(cfg.hf.source))
    elif not saved_tokenizer and tc.init:  # a run started from another: the source's tokenizer
        tokenizer = make_tokenizer(cfg, Path(tc.init), resume=True)
    else:
        tokenizer = make_tokenizer(cfg, run_dir, saved_tokenizer)
    # the vocabulary grows to the tokenizer's; a larger (padded) size stays
    if tokenizer.vocab_size > cfg.model.vocab_size:
        cfg = replace(cfg, model=cfg.model.replace(vocab_size=tokenizer.vocab_size))
    data = TrainData(cfg, tokenizer, rank=rank, world_size=world)
    model, lineage = build_model(cfg, device, fresh=not has_checkpoint, run_dir=run_dir)
    if tc.parallel == "fsdp" and world > 1:
        shard_model(model, device, world)  # before the optimiser: it holds the shards
    s = Session(
        cfg=cfg,
        folder=folder,
        device=device,
        rank=rank,
        world=world,
        local_rank=local_rank,
        micro=micro,
        data=data,
        model=model,
        optimizer=build_optimizer(model, **tc.optimizer_options()),
        rng=np.random.default_rng([tc.seed, rank]),
        owns_group=owns_group,
        autocast=use_autocast(tc, device),
    )
    if has_checkpoint:
        _restore(s)
    elif s.main:
        _first_files(s, tokenizer, lineage)
    return s


def _join_group(device: torch.device, world: int, resume: bool) -> bool:
    """Join the process group of a torchrun launch; True when this process created it."""
    if device.type == "cuda" and device.index is not None:
        # NCCL collectives on Python objects (the checkpoint's all_gather_object) and barrier()
        # run on the *current* device: without this every rank would use cuda:0
        torch.cuda.set_device(device)
    owns_group = world > 1 and not dist.is_initialized()
    if owns_group:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if world > 1 and resume:
        dist.barrier()  # rank 0 has completed a pending checkpoint before the others read it
    return owns_group


def build_model(
    cfg: RunConfig, device: torch.device, fresh: bool = True, run_dir: Path | None = None
) -> tuple[Transformer, dict | None]:
    """The model as a new run starts it, on ``device``, and its lineage (else None).

    Seeded from ``train.seed``. With ``train.init`` (``posemb train --init RUN``) and
    ``fresh`` (no checkpoint of this run to restore), the weights are RUN's with the table
    grown by ``train.init_method`` (train/lineage.py), and the lineage record says so.
    analysis/load.py recreates the exact initial table of a fresh run the same way (seed,
    then build). A run of a Hugging Face model (``cfg.hf``) is that model from its folder:
    the source, grown, when fresh; else the run's own folder, whose checkpoint is restored.
    """
    tc = cfg.train
    torch.manual_seed(tc.seed)
    lineage = None
    if cfg.hf is not None and fresh:
        model, lineage = initial_hf_model(cfg)
    elif cfg.hf is not None:
        from ..interop.hf_model import open_hf

        model = open_hf(run_dir, new_head=cfg.hf.new_head, seed=tc.seed)
    elif tc.init and fresh:
        model, lineage = initial_model(cfg)
    else:
        model = Transformer(cfg.model)
    if tc.positions == "stretch" and not cfg.model.has_fractional_positions:
        raise ValueError(
            f"train.positions=stretch gives fractional positions, which "
            f"model.position={cfg.model.position!r} cannot read; use a scheme that does "
            f"({', '.join(FRACTIONAL_SCHEMES)}) or another train.positions"
        )
    limit = model.position_limit
    if limit is not None and tc.seq_len > limit and tc.positions == "start":
        raise ValueError(
            f"train.seq_len={tc.seq_len} is past the learned table "
            f"(model.max_positions={limit}); raise model.max_positions or lower train.seq_len"
        )
    return model.to(device), lineage


def _restore(s: Session) -> None:
    """Load the last checkpoint: weights, optimiser moments, step and every RNG state."""
    run_dir, device = s.run_dir, s.device
    state = resume_state(run_dir)  # every field checked, naming the file and the field
    weights_file = run_file(run_dir, MODEL_FILE)
    weights = {k: v.to(device) for k, v in read_tensors(weights_file).items()}
    load_weights(s.model, model_shards(s.model, weights), str(weights_file))
    moments = optimizer_shards(s.optimizer, read_tensors(run_file(run_dir, OPTIMIZER_FILE)))
    load_optimizer_state(s.optimizer, moments, state["optimizer"])
    saved = state["data_rng"]
    # a run saved by fewer processes (or imported at step 0) gives extra ranks a fresh stream
    if s.rank < len(saved):
        s.rng = rng_from_json(saved[s.rank])
    torch.set_rng_state(rng_from_text(state["torch_rng"]))
    if device.type == "cuda" and state.get("cuda_rng"):
        torch.cuda.set_rng_state(rng_from_text(state["cuda_rng"]), device)
    s.step = int(state["step"])
    if s.main:
        truncate_metrics(run_dir, s.step)


def _first_files(s: Session, tokenizer: Tokenizer, lineage: dict | None) -> None:
    """Rank 0 of a run without a checkpoint: the tokenizer, then config.json (a new run,
    with its ``lineage`` when it started from another run)."""
    run_dir = s.run_dir
    if s.folder.resume:  # killed before its first checkpoint: start again from step 0
        note(f"{run_dir} has no checkpoint yet: training it from step 0 with its settings")
        truncate_metrics(run_dir, 0)
    start_files = None
    if s.cfg.hf is not None and not s.folder.resume:  # the model's own files, then ours
        from ..interop.hf_run import write_start

        start_files, folders = write_start(run_dir, s.model, s.cfg.hf.source)
        if folders:
            note(f"folders of {s.cfg.hf.source} not copied: {', '.join(folders)}")
    if not (run_dir / TOKENIZER_FILE).exists():
        tokenizer.save(run_dir)
    if not s.folder.resume:  # config.json last: a folder with it holds a whole run start
        info = {"kind": tokenizer.kind, "vocab_size": tokenizer.vocab_size}
        write_config(run_dir, s.cfg, info, s.model, lineage, start_files)


def parallel(s: Session) -> torch.nn.Module:
    """``s.model`` as the forward pass runs it: DDP across processes (unless FSDP sharded it
    already), compiled when ``s.compile`` (:mod:`.compile_policy`) decided so before the first
    step; under ``auto`` on a CPU it decides during the loop instead."""
    net: torch.nn.Module = s.model
    if s.world > 1 and not is_sharded(s.model):  # FSDP sharded it in start_session
        device_ids = [s.local_rank] if s.device.type == "cuda" else None
        net = torch.nn.parallel.DistributedDataParallel(s.model, device_ids=device_ids)
    s.compile = start_policy(s)
    d = s.compile.decision
    if s.main and not s.compile.measuring:
        if d.setting == "true" and not d.compiled:
            print(f"posemb: warning: {d.line()}", file=sys.stderr)
        else:
            print(d.line(), flush=True)
    return compile_model(net) if d.compiled else net


@contextlib.contextmanager
def leave_group_at_end(s: Session) -> Iterator[None]:
    """Leave the process group this process created when the ``with`` block ends."""
    try:
        yield
    finally:
        s.net = None  # the DDP reducer holds the group: release it first
        if s.owns_group:  # else gloo's threads can outlive the interpreter: SIGABRT at exit
            with contextlib.suppress(Exception):  # a rank that failed must not hang the others
                dist.barrier()
            dist.destroy_process_group()
