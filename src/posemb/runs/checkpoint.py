"""Checkpoints of a run: weights, optimiser moments and trainer state, committed atomically.

A checkpoint spans three files, so it is committed with a tiny journal: each file is first
written completely to ``NAME.next`` (fsynced), then ``checkpoint.commit`` is written
atomically, listing the renames; the renames follow and the journal is removed. A kill at
any moment leaves either the previous checkpoint (journal not yet written: the ``.next``
files are ignored) or a journal that the next resume completes; the writer also removes the
``.next`` files and temporary files (``.NAME.<8 random characters>.tmp``, safetensors'
``.tmp<6 random characters>``) a killed writer left when it resumes
(:func:`remove_stale_temporaries`). Readers (``posemb.load``) never modify the run
directory: they read ``model.safetensors``, which is replaced only by rename, so a run can
be sampled or evaluated while it trains. Nothing is ever unpickled.

``trainer_state.json`` holds the step, every RNG state exact resumption needs and the
optimiser's hyper-parameters; :func:`step_reached` is the one reading of "the step a run
reached". :func:`write_initial_checkpoint` makes weights that did not come from training
(imported, extended) a run at step 0, so every command reads it and ``train --resume``
fine-tunes it.
"""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import rng_from_json, rng_state_to_json
from ..files import atomic_write_text, fsync_file, read_json
from ..model import Transformer
from ..model.optim import build_optimizer
from ..positional.checks import is_int
from .config import RunConfig
from .layout import JOURNAL, MODEL_FILE, OPTIMIZER_FILE, STATE_FILE, CheckpointError, run_file
from .load import write_config
from .weights import state_dict_for_save, write_weights


# -- writing -------------------------------------------------------------------------------------
def optimizer_tensors(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimiser state into tensors (for safetensors) and JSON-able hyper-parameters."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{idx}.{key}"] = value.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def load_optimizer_state(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict
) -> None:
    """Restore the moments; hyper-parameters (weight decay, betas, eps, fused) stay the optimizer's
    own, built from the current settings, so ``--resume --set train.weight_decay=...`` applies
    (the learning rate is set every step anyway)."""
    saved, current = meta["param_groups"], optimizer.state_dict()["param_groups"]
    if [len(g["params"]) for g in saved] != [len(g["params"]) for g in current]:
        raise CheckpointError(
            "the checkpoint's optimizer groups parameters differently from these settings "
            "(a changed train.decay_positions or model); resume with the run's own settings"
        )
    groups = [{**cur, "params": old["params"]} for old, cur in zip(saved, current)]
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    for idx, values in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def save_checkpoint(
    run_dir: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    trainer_state: dict[str, Any],
) -> None:
    """Write model, optimiser and trainer state as one atomic checkpoint (see module doc)."""
    run_dir = Path(run_dir)
    step = str(trainer_state.get("step", 0))
    names = [MODEL_FILE, STATE_FILE] + ([OPTIMIZER_FILE] if optimizer is not None else [])
    meta = {"format": "pt", "step": step}
    write_weights(run_dir / f"{MODEL_FILE}.next", state_dict_for_save(model), meta)
    if optimizer is not None:
        tensors, meta = optimizer_tensors(optimizer)
        write_weights(run_dir / f"{OPTIMIZER_FILE}.next", tensors, {"step": step})
        trainer_state = {**trainer_state, "optimizer": meta}
    state_next = run_dir / f"{STATE_FILE}.next"
    try:
        state_next.write_text(json.dumps(trainer_state), encoding="utf-8")
    except OSError as e:  # a full disk: name the file, as every other write does
        raise OSError(e.errno, e.strerror, str(state_next)) from None
    fsync_file(state_next)  # the weights files were fsynced as written
    atomic_write_text(run_dir / JOURNAL, json.dumps({"step": int(step), "files": names}))
    complete_pending(run_dir)


def complete_pending(run_dir: Path) -> None:
    """Finish a checkpoint whose journal was written (roll forward); drop unjournalled
    ``.next`` files."""
    run_dir = Path(run_dir)
    journal = run_dir / JOURNAL
    if journal.exists():
        try:
            files = read_json(journal)["files"]
        except (ValueError, KeyError):  # the journal itself is written atomically; be safe anyway
            files = []
        for name in files:
            nxt = run_dir / f"{name}.next"
            if nxt.exists():
                os.replace(nxt, run_dir / name)
        journal.unlink(missing_ok=True)
    for stale in run_dir.glob("*.next"):
        stale.unlink(missing_ok=True)


# a killed write's temporary file: posemb.files.atomic_open's (.NAME.<8 random characters>.tmp) or
# safetensors' own (.tmp<6 random characters>, as large as the file it was writing)
STALE_TEMPORARY = re.compile(r"\.(.+\.[a-z0-9_]{8}\.tmp|tmp[A-Za-z0-9]{6})")


def remove_stale_temporaries(run_dir: Path) -> list[str]:
    """Remove the temporary files a killed writer left in ``run_dir`` (only the writer, who
    holds the run's lock, calls this: no live write can be in progress). Returns the names."""
    removed = []
    for entry in Path(run_dir).iterdir():
        if STALE_TEMPORARY.fullmatch(entry.name) and entry.is_file() and not entry.is_symlink():
            entry.unlink(missing_ok=True)
            removed.append(entry.name)
    return sorted(removed)


def rng_to_text(state: torch.Tensor) -> str:
    """A torch RNG state (a uint8 tensor) as base64 text, for trainer_state.json."""
    return base64.b64encode(state.cpu().numpy().tobytes()).decode()


def rng_from_text(text: str) -> torch.Tensor:
    """The torch RNG state :func:`rng_to_text` wrote."""
    return torch.from_numpy(np.frombuffer(base64.b64decode(text), dtype=np.uint8).copy())


def trainer_state_record(
    step: int, data_rngs: list, torch_rng: torch.Tensor, cuda_rng: torch.Tensor | None, world: int
) -> dict[str, Any]:
    """trainer_state.json: the step and every RNG state that exact resumption needs."""
    return {
        "step": step,
        "data_rng": data_rngs,
        "torch_rng": rng_to_text(torch_rng),
        "cuda_rng": rng_to_text(cuda_rng) if cuda_rng is not None else None,
        "world_size": world,
    }


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
    optimizer = build_optimizer(model, **cfg.train.optimizer_options())  # no moments yet
    torch_rng = torch.Generator().manual_seed(cfg.train.seed).get_state()
    data_rng = rng_state_to_json(np.random.default_rng([cfg.train.seed, 0]))
    record = trainer_state_record(0, [data_rng], torch_rng, None, 1)
    save_checkpoint(run_dir, model, optimizer, record)


# -- reading -------------------------------------------------------------------------------------
def read_trainer_state(run_dir: str | Path) -> dict[str, Any]:
    """The run's ``trainer_state.json`` (a :class:`CheckpointError` when missing or damaged)."""
    path = run_file(run_dir, STATE_FILE)
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: the run has no checkpoint to resume from")
    try:
        return read_json(path)
    except ValueError as e:
        raise CheckpointError(f"{e}; the trainer state is damaged") from None


def resume_state(run_dir: str | Path) -> dict[str, Any]:
    """The run's ``trainer_state.json`` for ``--resume``, every field checked (type and
    range) before anything is restored: a damaged field is a :class:`CheckpointError`
    naming the file and the field, never a deep error from numpy or torch."""
    state = read_trainer_state(run_dir)
    path = run_file(run_dir, STATE_FILE)

    def damaged(field: str, why: str) -> CheckpointError:
        return CheckpointError(
            f"{path}: {field!r} {why}; the trainer state is damaged: restore it from a copy, or "
            "start the run again"
        )

    step = state.get("step")
    if not is_int(step) or step < 0:
        raise damaged("step", f"must be an integer >= 0, got {_shown(step)}")
    world = state.get("world_size", 1)
    if not is_int(world) or world < 1:
        raise damaged("world_size", f"must be an integer >= 1, got {_shown(world)}")
    rngs = state.get("data_rng")
    if not isinstance(rngs, list) or not rngs:
        raise damaged("data_rng", f"must be a list of generator states, got {_shown(rngs)}")
    for i, value in enumerate(rngs):
        try:
            rng_from_json(value)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError):
            why = f"is not a numpy generator state: {_shown(value)}"
            raise damaged(f"data_rng[{i}]", why) from None
    for key in ("torch_rng", "cuda_rng"):
        value = state.get(key)
        if value is None and key == "cuda_rng":
            continue
        size = torch.get_rng_state().numel() if key == "torch_rng" else None
        if not _is_rng_text(value, size):
            want = f"{size} bytes" if size else "bytes"
            raise damaged(key, f"must be a base64 RNG state of {want}, got {_shown(value)}")
    optimizer = state.get("optimizer")
    if not isinstance(optimizer, dict) or not isinstance(optimizer.get("param_groups"), list):
        raise damaged("optimizer", "must hold the optimizer's 'param_groups'")
    return state


def _is_rng_text(value: object, size: int | None) -> bool:
    if not isinstance(value, str):
        return False
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        return False
    return len(raw) == size if size is not None else len(raw) > 0


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def step_reached(run_dir: str | Path) -> int | None:
    """The step of the run's last checkpoint, or None when it has none (or it cannot be read:
    a missing, damaged or foreign ``trainer_state.json``, or a link leaving the folder)."""
    try:
        step = read_trainer_state(run_dir).get("step")
    except (OSError, ValueError):  # CheckpointError and UnsafePathError are ValueErrors
        return None
    return step if is_int(step) and step >= 0 else None
