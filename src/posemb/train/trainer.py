"""The training loop: AdamW + warmup/cosine, accumulation, clipping, bf16 on CUDA, compile,
evaluation, atomic checkpoints, exact resume, DDP, Ctrl-C and NaN handling.

``train(cfg, run_dir)`` runs it; ``posemb train`` is a thin wrapper. Launch on several
processes with ``torchrun --nproc_per_node N -m posemb train ...`` (gloo on CPU, NCCL on
GPU): each rank reads its own shard, rank 0 alone logs and writes.

It reads top to bottom, a step a function:

1. :func:`train`: the settings, the device and the memory check (model/memory.py: a size
   that cannot fit is refused before anything is built), then the run folder
   (posemb/runs/claim.py: the writer lock, the checks of ``--out``, the cleanup of a new run
   that fails before its first checkpoint);
2. :func:`_train`: the session (train/session.py: process group, tokenizer, data, model,
   optimiser, the last checkpoint restored), its model wrapped for parallelism;
3. :func:`_loop`: :func:`_train_step` (one optimiser step and its NaN checks), then
   :func:`_after_step` (metrics, evaluation, a checkpoint, a stop that Ctrl-C asked for),
   until ``train.max_steps``;
4. the end, by context managers whatever happens: the metrics closed, the signal handlers
   back (:func:`_stop_requests`), the process group left (``leave_group_at_end``).
"""

from __future__ import annotations

import contextlib
import math
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ..data import exact_match, rng_state_to_json
from ..model import Transformer
from ..model.memory import check_training_fits
from ..provenance import count_parameters
from ..runs.checkpoint import read_trainer_state, save_checkpoint, trainer_state_record
from ..runs.claim import RunFolder, open_run
from ..runs.config import RunConfig, TrainConfig, build_config, flat_settings
from ..runs.layout import STATE_FILE
from ..runs.load import read_config
from .metrics import MetricsLog
from .schedule import lr_at
from .session import (
    Session,
    dist_env,
    leave_group_at_end,
    parallel,
    start_session,
    use_autocast,
)
from .sharding import full_copies, full_tensor
from .stream import TrainData


class TrainingDiverged(RuntimeError):
    """The loss became NaN or inf; the last good checkpoint is kept."""


class TrainingInterrupted(RuntimeError):
    """Ctrl-C (SIGINT) or SIGTERM: a checkpoint was saved at the last finished step."""


@dataclass
class TrainResult:
    step: int
    train_loss: float
    val_loss: float | None
    val_accuracy: float | None
    tokens_per_s: float
    wall_s: float
    run_dir: Path


# -- the run ------------------------------------------------------------------------------------
def train(
    cfg: RunConfig | None,
    run_dir: str | Path,
    *,
    resume: bool = False,
    overrides: dict[str, Any] | None = None,
) -> TrainResult:
    """Train a model into ``run_dir`` (or continue the run there with ``resume=True``).

    ``overrides`` (``{"train.max_steps": 2000}``) may change training settings on resume.
    The run folder is locked while this process writes it (a second writer is refused);
    a new run that fails before its first checkpoint removes what it wrote.
    """
    run_dir = Path(run_dir)
    rank, world, local_rank = dist_env()
    cfg = _run_config(cfg, run_dir, resume, overrides)
    tc = cfg.train
    device = pick_device(tc.device, local_rank)
    if tc.batch_size % (world * tc.grad_accum):
        raise ValueError(
            f"train.batch_size={tc.batch_size} must divide by processes x grad_accum = "
            f"{world} x {tc.grad_accum}"
        )
    micro = tc.batch_size // (world * tc.grad_accum)
    check_training_fits(cfg.model, micro, tc.seq_len, device, 2 if use_autocast(tc, device) else 4)
    with open_run(run_dir, resume, main=rank == 0) as folder:
        return _train(cfg, folder, device, micro)


def _run_config(
    cfg: RunConfig | None, run_dir: Path, resume: bool, overrides: dict[str, Any] | None
) -> RunConfig:
    """The settings: the run's own on resume (with ``overrides``), else ``cfg``."""
    if resume:
        return _resume_config(run_dir, overrides)
    if cfg is None:
        raise ValueError("train() needs a RunConfig unless resume=True")
    if not isinstance(cfg, RunConfig):
        raise TypeError(f"train() takes a RunConfig (build_config(...)), got {type(cfg).__name__}")
    return cfg


def _resume_config(run_dir: Path, overrides: dict[str, Any] | None) -> RunConfig:
    cfg = read_config(run_dir)
    fixed = sorted(k for k in overrides or {} if k.startswith(("model.", "hf.")))
    if cfg.hf is not None and fixed:
        raise ValueError(
            f"{fixed[0]}: a Hugging Face model's run keeps its model as it started; --resume "
            "takes train.* and data.* settings (start a new run with --init to change it)"
        )
    if overrides:
        cfg = build_config(None, {**flat_settings(cfg), **overrides})
    return cfg


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"train.device={name!r} but CUDA is not available; use train.device=cpu or auto"
        )
    return torch.device(name)


def _train(cfg: RunConfig, folder: RunFolder, device: torch.device, micro: int) -> TrainResult:
    """The run in a folder this process holds (rank 0) or reads (the others)."""
    s = start_session(cfg, folder, device, micro)
    if s.main:
        print(_size_line(s.model, s.cfg), flush=True)
    s.net = parallel(s)
    with (
        leave_group_at_end(s),
        _stop_requests() as stop,
        MetricsLog(s.run_dir, s.cfg.train, s.step, s.main) as log,
    ):
        _loop(s, log, stop)
    return TrainResult(
        s.step,
        log.train_loss,
        log.val_loss,
        log.val_accuracy,
        log.tokens_per_s,
        log.wall_s,
        s.run_dir,
    )


# -- the loop -----------------------------------------------------------------------------------
def _loop(s: Session, log: MetricsLog, stop: _StopRequest) -> None:
    """Train until ``train.max_steps`` (or the held-out exact match of
    ``train.stop_at_accuracy``): one step, then its logging, evaluation and checkpoint."""
    s.model.train()
    if _already_competent(s):
        return
    while s.step < s.cfg.train.max_steps:
        t = time.perf_counter()
        loss, lr = _train_step(s)
        if s.compile is not None and s.main:
            s.compile.stepped(s, time.perf_counter() - t, log.note)
        log.stepped(loss)
        if _after_step(s, log, stop, lr):
            return


def competence(run_dir: str | Path) -> dict[str, Any] | None:
    """What a run that stopped at ``train.stop_at_accuracy`` recorded in trainer_state.json:
    ``{"step", "val_accuracy", "threshold"}``; None when it never reached it (or has no
    readable checkpoint)."""
    try:
        record = read_trainer_state(run_dir).get("competence")
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("step"), int) else None


def _already_competent(s: Session) -> bool:
    """A resumed run that stopped at its accuracy already meets ``train.stop_at_accuracy``
    (the same threshold or a lower one): it is not trained further."""
    threshold = s.cfg.train.stop_at_accuracy
    if s.step == 0 or threshold <= 0:
        return False
    reached = competence(s.run_dir)
    if reached is None or reached["step"] != s.step or reached["val_accuracy"] < threshold:
        return False
    if s.main:
        acc = reached["val_accuracy"]
        print(
            f"held-out exact match {acc:.3f} reached at step {s.step} "
            f"(train.stop_at_accuracy={threshold}): not trained further",
            flush=True,
        )
    return True


def _train_step(s: Session) -> tuple[float, float]:
    """One optimiser step over ``train.grad_accum`` micro-batches; its loss and learning rate.

    Raises:
        TrainingDiverged: the loss or the gradient norm is NaN or inf (nothing is updated).
    """
    tc = s.cfg.train
    lr = lr_at(s.step, tc)
    for group in s.optimizer.param_groups:
        group["lr"] = lr
    loss_sum = torch.zeros((), device=s.device)
    for i in range(tc.grad_accum):
        b = s.data.batch(s.micro, s.rng)
        ids = b.input_ids.to(s.device, non_blocking=True)
        targets = b.targets.to(s.device, non_blocking=True)
        pos = b.positions.to(s.device) if b.positions is not None else None
        with _no_sync(s, last=i == tc.grad_accum - 1), s.amp():
            micro_loss = s.net(ids, positions=pos, targets=targets).loss / tc.grad_accum
            micro_loss.backward()
        loss_sum += micro_loss.detach()
    if s.world > 1:
        dist.all_reduce(loss_sum, op=dist.ReduceOp.AVG)
    if s.step < tc.table_only_steps:  # only the position tables learn: the rest stays as it is
        tables = {id(p) for p in s.model.position_parameters()}
        for p in s.model.parameters():
            if id(p) not in tables:
                p.grad = None  # AdamW skips it: no update, no decay, no moments
    loss = float(loss_sum)
    if not math.isfinite(loss):
        raise TrainingDiverged(f"loss became {loss} at step {s.step + 1}; {_stopped(s)}")
    # the norm is checked too: a backward pass can overflow under a finite loss, and the
    # update would write NaN weights into the next checkpoint (inf max_norm: no clipping)
    max_norm = tc.grad_clip if tc.grad_clip > 0 else float("inf")
    grad_norm = float(full_tensor(torch.nn.utils.clip_grad_norm_(s.model.parameters(), max_norm)))
    if not math.isfinite(grad_norm):
        raise TrainingDiverged(
            f"gradient norm became {grad_norm} at step {s.step + 1} "
            f"(loss {loss:.4f}); {_stopped(s)}"
        )
    s.optimizer.step()
    s.optimizer.zero_grad(set_to_none=True)
    s.step += 1
    return loss, lr


def _no_sync(s: Session, last: bool) -> contextlib.AbstractContextManager:
    """DDP: no gradient all-reduce until the last micro-batch of a step."""
    if s.world > 1 and not last and hasattr(s.net, "no_sync"):
        return s.net.no_sync()
    return contextlib.nullcontext()


def _stopped(s: Session) -> str:
    return (
        f"stopped without saving: {_kept(s.run_dir)} (lower train.lr or raise train.warmup_steps)"
    )


def _after_step(s: Session, log: MetricsLog, stop: _StopRequest, lr: float) -> bool:
    """Metrics at logging steps, validation at evaluation steps, then a checkpoint when one is
    due, a stop was asked for (then :class:`TrainingInterrupted`) or the held-out exact match
    reached ``train.stop_at_accuracy`` (then True: the loop ends here)."""
    tc = s.cfg.train
    record: dict[str, Any] = {}
    reached = None
    if _due(s.step, tc.log_every, tc):
        record.update(log.throughput(lr))
    if _due(s.step, tc.eval_every, tc):
        val = evaluate(s.model, s.data, tc.eval_batches, s.micro, s.device, s.amp, seed=tc.seed)
        s.model.train()
        record.update(log.validated(*val))
        if 0 < tc.stop_at_accuracy <= (val[1] if val[1] is not None else -1.0):
            reached = {"step": s.step, "val_accuracy": val[1], "threshold": tc.stop_at_accuracy}
            record["competence"] = reached
    log.write(s.step, record)
    log.show()
    stop_now = stop.requested
    if s.world > 1:  # every rank stops at the same step
        flag = torch.tensor([1.0 if stop_now else 0.0], device=s.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        stop_now = bool(flag.item())
    if _due(s.step, tc.checkpoint_every, tc) or stop_now or reached:
        _save(s, reached)
    if stop_now:
        raise TrainingInterrupted(
            f"interrupted at step {s.step}; checkpoint saved in {s.run_dir}. Continue with: "
            f"posemb train --resume {s.run_dir}"
        )
    if reached and s.main:
        acc = reached["val_accuracy"]
        log.note(
            f"held-out exact match {acc:.3f} at step {s.step} reaches "
            f"train.stop_at_accuracy={tc.stop_at_accuracy}: stopped"
        )
    return reached is not None


def _due(step: int, every: int, tc: TrainConfig) -> bool:
    """Every ``every`` steps, and at the last step."""
    return step % every == 0 or step == tc.max_steps


def _save(s: Session, reached: dict[str, Any] | None = None) -> None:
    """A checkpoint: every rank's data RNG state gathered, rank 0 writes (posemb.runs);
    ``reached``: the competence the run stopped at (trainer_state.json's 'competence')."""
    rngs = [rng_state_to_json(s.rng)]
    if s.world > 1:  # every rank contributes its data RNG state
        rngs = [None] * s.world
        dist.all_gather_object(rngs, rng_state_to_json(s.rng))
    model, optimizer = full_copies(s.model, s.optimizer)  # FSDP: every rank gathers
    if s.main:
        cuda_rng = torch.cuda.get_rng_state(s.device) if s.device.type == "cuda" else None
        record = trainer_state_record(s.step, rngs, torch.get_rng_state(), cuda_rng, s.world)
        if s.compile is not None:
            record["compile"] = s.compile.decision.record()
        if reached is not None:
            record["competence"] = reached
        save_checkpoint(s.run_dir, model, optimizer, record)
    s.folder.checkpoints += 1


class _StopRequest:
    """Set by SIGINT or SIGTERM: the loop finishes its step, saves and stops."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: object) -> None:
        self.signum = signum

    @property
    def requested(self) -> bool:
        return self.signum is not None


@contextlib.contextmanager
def _stop_requests() -> Iterator[_StopRequest]:
    """Ctrl-C and SIGTERM ask the loop to stop (after a checkpoint) for the ``with`` block.

    Every rank installs it: Ctrl-C under torchrun reaches all of them (and torchrun forwards
    it); a rank left with the default handler would die and take the collective save down
    with it. The previous handlers come back at the end.
    """
    request = _StopRequest()
    old_handlers = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # not in the main thread
            old_handlers[sig] = signal.signal(sig, request)
    try:
        yield request
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)


def _size_line(model: Transformer, cfg: RunConfig) -> str:
    """``model: 421,632 parameters (2 layers x 128 wide, learned positions: 8,192)``"""
    m = cfg.model
    pos = sum(p.numel() for p in model.position_parameters())
    return (
        f"model: {count_parameters(model):,} parameters ({m.n_layer} layers x {m.d_model} wide, "
        f"{m.position} positions: {pos:,})"
    )


def _kept(run_dir: Path) -> str:
    if (run_dir / STATE_FILE).exists():
        return f"the last good checkpoint in {run_dir} is kept"
    return f"no checkpoint had been written yet in {run_dir}"


@torch.inference_mode()
def evaluate(
    model: Transformer,
    data: TrainData,
    n_batches: int,
    batch_size: int,
    device: torch.device,
    amp,
    seed: int = 0,
    seq_len: int | None = None,
) -> tuple[float, float | None]:
    """Mean validation loss over fixed batches (same batches every time); accuracy for tasks."""
    model.eval()
    rng = np.random.default_rng([seed, 10_000])  # independent of the training stream
    losses, accs = [], []
    for _ in range(n_batches):
        b = data.batch(batch_size, rng, split="val", seq_len=seq_len)
        ids, targets = b.input_ids.to(device), b.targets.to(device)
        with amp():
            out = model(ids, targets=targets)
        losses.append(float(out.loss))
        if data.is_synthetic:  # targets are aligned: each position's guess is its own argmax
            accs.append(exact_match(out.logits.argmax(-1), targets))
    return float(np.mean(losses)), (float(np.mean(accs)) if accs else None)
