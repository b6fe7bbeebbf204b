"""The training loop: AdamW + warmup/cosine, accumulation, clipping, bf16 on CUDA, compile,
evaluation, atomic checkpoints, exact resume, DDP, Ctrl-C and NaN handling.

``train(cfg, run_dir)`` runs it; ``posemb train`` is a thin wrapper. Launch on several
processes with ``torchrun --nproc_per_node N -m posemb train ...`` (gloo on CPU, NCCL on
GPU): each rank reads its own shard, rank 0 alone logs and writes.

Rank 0 holds the run folder's writer lock (train/lock.py) from the first check of the
folder to the end: a second writer is refused naming this process. A run killed before its
first checkpoint resumes from step 0 with its saved settings; a new run that fails before
it removes what it wrote. Before anything is built the memory a step needs is estimated
(model/memory.py) and a size that cannot fit is refused.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ..data import atomic_write_text, rng_from_json, rng_state_to_json
from ..model import Transformer
from ..model.compile_check import check_compile
from ..model.memory import check_training_fits
from ..provenance import count_parameters
from .checkpoint import (
    CONFIG_FILE,
    JOURNAL,
    METRICS_FILE,
    MODEL_FILE,
    OPTIMIZER_FILE,
    STATE_FILE,
    complete_pending,
    load_optimizer_state,
    load_weights,
    read_config,
    read_tensors,
    read_trainer_state,
    save_checkpoint,
    write_config,
)
from .config import RunConfig
from .lock import LOCK_FILE, RunLock
from .optim import build_optimizer, lr_at
from .stream import TrainData, make_tokenizer


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


# -- environment ------------------------------------------------------------------------------
def _dist_env() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"train.device={name!r} but CUDA is not available; use train.device=cpu or auto"
        )
    return torch.device(name)


def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.cpu().numpy().tobytes()).decode()


def _unb64(s: str) -> torch.Tensor:
    return torch.from_numpy(np.frombuffer(base64.b64decode(s), dtype=np.uint8).copy())


# -- the loop --------------------------------------------------------------------------------------
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
    rank, world, local_rank = _dist_env()
    if resume:
        cfg = _resume_config(run_dir, overrides)
    elif cfg is None:
        raise ValueError("train() needs a RunConfig unless resume=True")
    elif not isinstance(cfg, RunConfig):
        raise TypeError(f"train() takes a RunConfig (build_config(...)), got {type(cfg).__name__}")
    tc = cfg.train
    device = pick_device(tc.device, local_rank)
    if tc.batch_size % (world * tc.grad_accum):
        raise ValueError(
            f"train.batch_size={tc.batch_size} must divide by processes x grad_accum = {world} x {tc.grad_accum}"
        )
    micro = tc.batch_size // (world * tc.grad_accum)
    check_training_fits(cfg.model, micro, tc.seq_len, device, 2 if _autocast(tc, device) else 4)
    main = rank == 0
    lock, created = _claim_run(run_dir, resume) if main else (None, False)
    progress = {"checkpoints": 0}
    try:
        return _train(cfg, run_dir, resume, device, micro, progress)
    except BaseException:
        if main and not resume and progress["checkpoints"] == 0:
            _remove_unstarted(run_dir, created)  # nothing worth keeping: do not block --out
        raise
    finally:
        if lock is not None:
            lock.release()


def _resume_config(run_dir: Path, overrides: dict[str, Any] | None) -> RunConfig:
    cfg = read_config(run_dir)
    if overrides:
        from .config import build_config

        flat = {
            f"{g}.{k}": v
            for g, vals in cfg.to_dict().items()
            if isinstance(vals, dict)
            for k, v in vals.items()
        }
        cfg = build_config(None, {**flat, **overrides})
    return cfg


def _autocast(tc, device: torch.device) -> bool:
    return (tc.dtype == "bfloat16") or (tc.dtype == "auto" and device.type == "cuda")


def _claim_run(run_dir: Path, resume: bool) -> tuple[RunLock, bool]:
    """Lock the run folder (creating a new one); return the lock and whether it was created."""
    if resume:
        lock = RunLock(run_dir).acquire()
        try:
            complete_pending(run_dir)  # finish a checkpoint a kill interrupted (holding the lock)
        except BaseException:
            lock.release()
            raise
        return lock, False
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(
            f"--out {str(run_dir)!r} is a file, not a directory; choose a new directory for the run"
        )
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = RunLock(run_dir).acquire()
    try:
        _check_fresh_out(run_dir)
    except BaseException:
        lock.release()
        if created:
            with contextlib.suppress(OSError):
                run_dir.rmdir()
        raise
    return lock, created


# what a run holds before its first checkpoint (config.json is written last of them)
_START_FILES = (CONFIG_FILE, "tokenizer.json", METRICS_FILE, "tb", LOCK_FILE)


def _is_start_file(name: str) -> bool:
    """A file of a run start: one of _START_FILES, a ``.next`` file of an uncommitted
    checkpoint, or the temporary file of an atomic write a kill interrupted."""
    if name in _START_FILES or name.endswith(".next"):
        return True
    inner = name[1:].rsplit(".", 2)[0] if name.startswith(".") and name.endswith(".tmp") else ""
    return inner in (*_START_FILES, JOURNAL)


def _check_fresh_out(run_dir: Path) -> None:
    """Refuse an --out that holds a run or other files; clear a run that never checkpointed."""
    if (run_dir / STATE_FILE).exists() or (run_dir / JOURNAL).exists():
        raise ValueError(
            f"{str(run_dir)!r} already holds a run; continue it with --resume {run_dir} or choose another --out"
        )
    if (run_dir / MODEL_FILE).exists():
        raise ValueError(
            f"{str(run_dir)!r} holds weights (model.safetensors) but no trainer state; "
            "delete it or choose another --out"
        )
    names = {p.name for p in run_dir.iterdir()}
    foreign = sorted(n for n in names if not _is_start_file(n))
    if foreign:
        raise ValueError(
            f"{str(run_dir)!r} is not empty and is not a posemb run (it holds {foreign[0]!r}); "
            "choose a new or empty directory for --out"
        )
    if CONFIG_FILE in names:
        _note(
            f"{run_dir} held a run that stopped before its first checkpoint (no weights saved); "
            "starting it anew"
        )
    _remove_unstarted(run_dir, created=False)


def _remove_unstarted(run_dir: Path, created: bool) -> None:
    """Remove what a run writes before its first checkpoint (and the folder, if ours)."""
    import shutil

    with contextlib.suppress(OSError):
        for p in run_dir.iterdir():
            if not _is_start_file(p.name) or p.name == LOCK_FILE:
                continue  # not ours; or the lock, still held: RunLock.release removes it
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink(missing_ok=True)
        if created:
            (run_dir / LOCK_FILE).unlink(missing_ok=True)
            run_dir.rmdir()


def _note(text: str) -> None:
    print(f"posemb: note: {text}", file=sys.stderr)


def _train(
    cfg: RunConfig,
    run_dir: Path,
    resume: bool,
    device: torch.device,
    micro: int,
    progress: dict[str, int],
) -> TrainResult:
    """The training run itself, in a folder this process holds (rank 0) or reads (others)."""
    rank, world, local_rank = _dist_env()
    tc = cfg.train
    if device.type == "cuda" and device.index is not None:
        # NCCL collectives on Python objects (the checkpoint's all_gather_object) and barrier()
        # run on the *current* device: without this every rank would use cuda:0
        torch.cuda.set_device(device)
    owns_group = world > 1 and not dist.is_initialized()
    if owns_group:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if world > 1 and resume:
        dist.barrier()  # rank 0 has completed a pending checkpoint before the others read it
    main = rank == 0
    has_checkpoint = resume and (run_dir / STATE_FILE).exists()

    tokenizer = make_tokenizer(cfg, run_dir, resume and (run_dir / "tokenizer.json").exists())
    if (
        tokenizer.vocab_size > cfg.model.vocab_size
    ):  # grow to the tokenizer; a larger (padded) size stays
        cfg = replace(cfg, model=cfg.model.replace(vocab_size=tokenizer.vocab_size))
    data = TrainData(cfg, tokenizer, rank=rank, world_size=world)

    torch.manual_seed(tc.seed)
    model = Transformer(cfg.model)
    limit = model.position_limit
    if limit is not None and tc.seq_len > limit and tc.positions == "start":
        raise ValueError(
            f"train.seq_len={tc.seq_len} is past the learned table (model.max_positions={limit}); "
            "raise model.max_positions or lower train.seq_len"
        )
    model.to(device)
    optimizer = build_optimizer(model, tc, device)
    rng = np.random.default_rng([tc.seed, rank])
    step = 0
    if has_checkpoint:
        step, rng = _restore(run_dir, model, optimizer, device, rank, tc.seed)
        if main:
            _truncate_metrics(run_dir, step)
    elif main:
        if resume:  # killed before its first checkpoint: start again from step 0
            _note(f"{run_dir} has no checkpoint yet: training it from step 0 with its settings")
            _truncate_metrics(run_dir, 0)
        if not (run_dir / "tokenizer.json").exists():
            tokenizer.save(run_dir)
        if not resume:  # config.json last: a folder with it holds a whole run start
            write_config(
                run_dir, cfg, {"kind": tokenizer.kind, "vocab_size": tokenizer.vocab_size}, model
            )
    if main:
        print(_size_line(model, cfg), flush=True)

    autocast = _autocast(tc, device)
    net: torch.nn.Module = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[local_rank] if device.type == "cuda" else None
        )
    if _use_compile(cfg, device, main):
        net = torch.compile(net)

    def amp():
        return (
            torch.autocast(device.type, dtype=torch.bfloat16)
            if autocast
            else contextlib.nullcontext()
        )

    def save_all(at_step: int) -> None:
        rngs = [rng_state_to_json(rng)]
        if world > 1:  # every rank contributes its data RNG state
            rngs = [None] * world
            dist.all_gather_object(rngs, rng_state_to_json(rng))
        if main:
            cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
            save_checkpoint(
                run_dir,
                model,
                optimizer,
                _state_record(at_step, rngs, torch.get_rng_state(), cuda_rng, world),
            )
        progress["checkpoints"] += 1

    stop = {"signal": None}

    def on_signal(signum, frame):  # finish the current step, then save and stop
        stop["signal"] = signum

    # every rank: Ctrl-C under torchrun reaches all of them (and torchrun forwards it); a rank
    # left with the default handler would die and take the collective save down with it
    old_handlers = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # not in the main thread
            old_handlers[sig] = signal.signal(sig, on_signal)

    bar = _progress(tc, step, main)
    writer = _tensorboard(run_dir) if main else None
    tokens_per_step = tc.batch_size * tc.seq_len
    t0 = time.perf_counter()
    t_last, steps_since = t0, 0
    last_loss, val_loss, val_acc, tok_s = float("nan"), None, None, 0.0
    model.train()
    try:
        while step < tc.max_steps:
            lr = lr_at(step, tc)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss_sum = torch.zeros((), device=device)
            for i in range(tc.grad_accum):
                b = data.batch(micro, rng)
                ids, labels = (
                    b.input_ids.to(device, non_blocking=True),
                    b.labels.to(device, non_blocking=True),
                )
                pos = b.positions.to(device) if b.positions is not None else None
                sync = contextlib.nullcontext()
                if world > 1 and i < tc.grad_accum - 1:
                    sync = net.no_sync() if hasattr(net, "no_sync") else contextlib.nullcontext()
                with sync, amp():
                    loss = net(ids, positions=pos, labels=labels).loss / tc.grad_accum
                    loss.backward()
                loss_sum += loss.detach()
            if world > 1:
                dist.all_reduce(loss_sum, op=dist.ReduceOp.AVG)
            last_loss = float(loss_sum)
            if not math.isfinite(last_loss):
                raise TrainingDiverged(
                    f"loss became {last_loss} at step {step + 1}; stopped without saving: "
                    f"{_kept(run_dir)} (lower train.lr or raise train.warmup_steps)"
                )
            # the norm is checked too: a backward pass can overflow under a finite loss, and the
            # update would write NaN weights into the next checkpoint (inf max_norm: no clipping)
            grad_norm = float(
                torch.nn.utils.clip_grad_norm_(
                    model.parameters(), tc.grad_clip if tc.grad_clip > 0 else float("inf")
                )
            )
            if not math.isfinite(grad_norm):
                raise TrainingDiverged(
                    f"gradient norm became {grad_norm} at step {step + 1} (loss {last_loss:.4f}); stopped "
                    f"without saving: {_kept(run_dir)} (lower train.lr or "
                    "raise train.warmup_steps)"
                )
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            steps_since += 1

            record: dict[str, Any] = {}
            if step % tc.log_every == 0 or step == tc.max_steps:
                now = time.perf_counter()
                tok_s = steps_since * tokens_per_step / max(now - t_last, 1e-9)
                t_last, steps_since = now, 0
                record.update(train_loss=round(last_loss, 6), lr=lr, tokens_per_s=round(tok_s, 1))
            if step % tc.eval_every == 0 or step == tc.max_steps:
                val_loss, val_acc = evaluate(
                    model, data, tc.eval_batches, micro, device, amp, seed=tc.seed
                )
                model.train()
                record.update(val_loss=round(val_loss, 6), train_loss=round(last_loss, 6))
                if val_acc is not None:
                    record["val_accuracy"] = round(val_acc, 6)
            if record and main:
                record = {"step": step, **record, "elapsed_s": round(time.perf_counter() - t0, 3)}
                _append_metrics(run_dir, record, writer)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(
                    loss=f"{last_loss:.3f}",
                    tok_s=f"{tok_s:,.0f}",
                    **({"val": f"{val_loss:.3f}"} if val_loss is not None else {}),
                )
            stop_now = stop["signal"] is not None
            if world > 1:
                flag = torch.tensor([1.0 if stop_now else 0.0], device=device)
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                stop_now = bool(flag.item())
            if step % tc.checkpoint_every == 0 or step == tc.max_steps or stop_now:
                save_all(step)
            if stop_now:
                raise TrainingInterrupted(
                    f"interrupted at step {step}; checkpoint saved in {run_dir}. Continue with: "
                    f"posemb train --resume {run_dir}"
                )
    finally:
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
        if owns_group:  # else gloo's threads can outlive the interpreter: SIGABRT at exit
            del net  # the DDP reducer holds the group: release it first
            with contextlib.suppress(Exception):  # a rank that failed must not hang the others here
                dist.barrier()
            dist.destroy_process_group()
    wall = time.perf_counter() - t0
    return TrainResult(step, last_loss, val_loss, val_acc, tok_s, wall, run_dir)


def _restore(
    run_dir: Path,
    model: Transformer,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    rank: int,
    seed: int,
) -> tuple[int, np.random.Generator]:
    """Load the last checkpoint into ``model``/``optimizer``; return its step and data RNG."""
    state = read_trainer_state(run_dir)
    load_weights(
        model,
        {k: v.to(device) for k, v in read_tensors(run_dir / MODEL_FILE).items()},
        str(run_dir / MODEL_FILE),
    )
    load_optimizer_state(optimizer, read_tensors(run_dir / OPTIMIZER_FILE), state["optimizer"])
    saved = state["data_rng"]
    # a run saved by fewer processes (or imported at step 0) gives extra ranks a fresh stream
    rng = rng_from_json(saved[rank]) if rank < len(saved) else np.random.default_rng([seed, rank])
    torch.set_rng_state(_unb64(state["torch_rng"]))
    if device.type == "cuda" and state.get("cuda_rng"):
        torch.cuda.set_rng_state(_unb64(state["cuda_rng"]), device)
    return int(state["step"]), rng


def _use_compile(cfg: RunConfig, device: torch.device, main: bool) -> bool:
    """``train.compile``, after the compiled-kernel self-check on the CPU (model/compile_check)."""
    tc = cfg.train
    if not (tc.compile == "true" or (tc.compile == "auto" and device.type == "cuda")):
        return False
    if device.type != "cpu":
        return True
    check = check_compile(cfg.model, device)
    if not check.ok and main:
        print(
            f"posemb: warning: train.compile=true: {check.reason}; training eagerly instead "
            "(the same results, slower)",
            file=sys.stderr,
        )
    return check.ok


def write_initial_checkpoint(
    run_dir: str | Path, model: Transformer, cfg: RunConfig, tokenizer
) -> None:
    """Make weights that did not come from ``train`` (imported, extended) a run at step 0.

    Writes config.json, tokenizer.json and a checkpoint with a fresh AdamW state and the
    data stream at its start, so every command reads it and ``posemb train --resume``
    fine-tunes it (for ``train.max_steps`` steps, which ``--set`` may change).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_config(run_dir, cfg, {"kind": tokenizer.kind, "vocab_size": tokenizer.vocab_size}, model)
    tokenizer.save(run_dir)
    optimizer = build_optimizer(model, cfg.train, torch.device("cpu"))  # no moments yet
    torch_rng = torch.Generator().manual_seed(cfg.train.seed).get_state()
    data_rng = rng_state_to_json(np.random.default_rng([cfg.train.seed, 0]))
    save_checkpoint(run_dir, model, optimizer, _state_record(0, [data_rng], torch_rng, None, 1))


def _state_record(
    step: int, data_rngs: list, torch_rng: torch.Tensor, cuda_rng: torch.Tensor | None, world: int
) -> dict[str, Any]:
    """trainer_state.json: the step and every RNG state that exact resumption needs."""
    return {
        "step": step,
        "data_rng": data_rngs,
        "torch_rng": _b64(torch_rng),
        "cuda_rng": _b64(cuda_rng) if cuda_rng is not None else None,
        "world_size": world,
    }


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


@torch.no_grad()
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
        ids, labels = b.input_ids.to(device), b.labels.to(device)
        with amp():
            out = model(ids, labels=labels)
        losses.append(float(out.loss))
        if data.is_synthetic:
            from ..data import exact_match_from_logits

            accs.append(exact_match_from_logits(out.logits.float(), labels))
    return float(np.mean(losses)), (float(np.mean(accs)) if accs else None)


def _progress(tc, step: int, main: bool):
    if not (main and tc.progress):
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        return None
    import sys

    interval = (
        0.1 if sys.stderr.isatty() else 15.0
    )  # a log file gets a line every 15 s, not every step
    return tqdm(
        total=tc.max_steps,
        initial=step,
        desc="train",
        unit="step",
        dynamic_ncols=True,
        leave=True,
        mininterval=interval,
    )


def _tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard not installed: metrics.jsonl only
        return None
    return SummaryWriter(str(run_dir / "tb"))


def _append_metrics(run_dir: Path, record: dict[str, Any], writer) -> None:
    with open(run_dir / METRICS_FILE, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    if writer is not None:
        for k, v in record.items():
            if k != "step" and isinstance(v, (int, float)):
                writer.add_scalar(k, v, record["step"])


def _truncate_metrics(run_dir: Path, step: int) -> None:
    """On resume, drop metric lines written after the checkpoint being resumed."""
    path = run_dir / METRICS_FILE
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                kept.append(line)
        except ValueError:  # a line torn by a kill
            continue
    atomic_write_text(path, "".join(k + "\n" for k in kept))
