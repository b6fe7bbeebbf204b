"""Run directories and checkpoints (SPEC §5): safetensors + JSON, written atomically.

A run directory holds::

    config.json            model, training and data settings (+ tokenizer kind), schema version
    model.safetensors      the weights
    optimizer.safetensors  optimiser moments (tensors only)
    trainer_state.json     step, RNG states, data position, optimiser hyper-parameters
    metrics.jsonl          one JSON object a line
    tokenizer.json         the tokenizer

A checkpoint spans three files, so it is committed with a tiny journal: each file is first
written completely to ``NAME.next`` (fsynced), then ``checkpoint.commit`` is written
atomically, listing the renames; the renames follow and the journal is removed. A kill at
any moment leaves either the previous checkpoint (journal not yet written: the ``.next``
files are ignored) or a journal that the next resume completes. Readers (``posemb.load``)
never modify the run directory: they read ``model.safetensors``, which is replaced only by
rename, so a run can be sampled or evaluated while it trains. Nothing is ever unpickled.

Integrity: safetensors has no checksum, so each weights file carries the sha256 of its own
tensors (names, dtypes, shapes and bytes, in name order) in its header metadata
(``posemb_sha256``), computed when the checkpoint is written and checked whenever a run's
weights are read here (``posemb.load``, ``--resume``, generate, eval). The hash travels
inside the file it describes, so a reader never pairs it with another checkpoint's file
while the run trains. ``verify=False`` or ``POSEMB_VERIFY=0`` skips the check; files
written before hashes were recorded load unchecked, with a note. Weights files get the mode
of every other file of a run (0666 less the umask: 0644), not safetensors' 0600.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.tokenizers import load_tokenizer
from ..files import atomic_write_text, fsync_file, read_json, read_safetensors, write_safetensors
from ..model import Transformer
from ..provenance import run_provenance
from .config import DataConfig, RunConfig, TrainConfig

MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "trainer_state.json"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
JOURNAL = "checkpoint.commit"
HASH_KEY = "posemb_sha256"  # safetensors metadata: sha256 of the file's tensors
VERIFY_ENV = "POSEMB_VERIFY"  # POSEMB_VERIFY=0: load weights without checking their hash


class CheckpointError(ValueError):
    """A run directory or checkpoint that cannot be read (missing, truncated, corrupted)."""


# -- writing -------------------------------------------------------------------------------------
def state_dict_for_save(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Contiguous CPU tensors, tied weights stored once (``lm_head.weight`` is ``wte.weight``)."""
    model = getattr(model, "_orig_mod", model)
    sd = model.state_dict()
    if getattr(model, "config", None) is not None and model.config.tie_embeddings:
        sd.pop("lm_head.weight", None)
    return {k: v.detach().to("cpu").contiguous() for k, v in sd.items()}


def content_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over every tensor in name order: name, dtype, shape, then its raw bytes."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(f"{name}\0{str(t.dtype).removeprefix('torch.')}\0{list(t.shape)}\n".encode())
        h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    return h.hexdigest()


def write_weights(
    path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    """A safetensors file carrying its content hash (posemb.files.write_safetensors: fsynced,
    the run's file mode, an I/O error an OSError naming ``path``)."""
    write_safetensors(path, tensors, {**(metadata or {}), HASH_KEY: content_sha256(tensors)})


def save_model(model: torch.nn.Module, path: Path, metadata: dict[str, str] | None = None) -> None:
    write_weights(Path(path), state_dict_for_save(model), metadata)


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
    save_model(model, run_dir / f"{MODEL_FILE}.next", {"format": "pt", "step": step})
    if optimizer is not None:
        tensors, meta = optimizer_tensors(optimizer)
        write_weights(run_dir / f"{OPTIMIZER_FILE}.next", tensors, {"step": step})
        trainer_state = {**trainer_state, "optimizer": meta}
    (run_dir / f"{STATE_FILE}.next").write_text(json.dumps(trainer_state), encoding="utf-8")
    fsync_file(run_dir / f"{STATE_FILE}.next")  # the weights files were fsynced as written
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


def write_config(
    run_dir: Path,
    cfg: RunConfig,
    tokenizer_info: dict[str, Any] | None = None,
    model: torch.nn.Module | None = None,
    lineage: dict[str, Any] | None = None,
) -> None:
    """config.json: the settings, the tokenizer, with ``model`` the run's ``provenance``
    (versions, command, data source and fingerprint, parameter count), and with ``lineage``
    the run it started from (train/lineage.py)."""
    data = cfg.to_dict()
    if tokenizer_info:
        data["tokenizer"] = tokenizer_info
    if model is not None:
        data["provenance"] = run_provenance(cfg, model)
    if lineage is not None:
        data["lineage"] = lineage
    atomic_write_text(Path(run_dir) / CONFIG_FILE, json.dumps(data, indent=2) + "\n")


def rng_to_text(state: torch.Tensor) -> str:
    """A torch RNG state (a uint8 tensor) as base64 text, for trainer_state.json."""
    return base64.b64encode(state.cpu().numpy().tobytes()).decode()


def rng_from_text(text: str) -> torch.Tensor:
    """The torch RNG state :func:`rng_to_text` wrote."""
    return torch.from_numpy(np.frombuffer(base64.b64decode(text), dtype=np.uint8).copy())


# -- reading -------------------------------------------------------------------------------------
def run_path(run_dir: object) -> Path:
    """``run_dir`` as a Path; a TypeError that says what is wanted for anything else."""
    if not isinstance(run_dir, (str, os.PathLike)):
        raise TypeError(
            f"expected a run folder path (a str or pathlib.Path, e.g. posemb.load('runs/a')), "
            f"got {type(run_dir).__name__}"
        )
    return Path(run_dir)


def read_config(run_dir: str | Path) -> RunConfig:
    run_dir = run_path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise CheckpointError(
            f"{str(run_dir)!r} is a file, not a run directory; pass the folder a run was "
            "trained into (posemb train --out DIR)"
        )
    if not run_dir.is_dir():
        raise CheckpointError(
            f"run directory {str(run_dir)!r} does not exist; train one with "
            "`posemb train --out DIR`"
        )
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(
            f"{str(run_dir)!r} is not a posemb run: no {CONFIG_FILE} "
            "(train one with `posemb train`)"
        )
    try:
        data = read_json(path)
    except ValueError as e:
        raise CheckpointError(f"{e}; the run's config is damaged") from None
    return RunConfig.from_dict(data)


def read_lineage(run_dir: str | Path) -> dict[str, Any] | None:
    """The ``lineage`` record of a run's config.json (a run started with ``--init``), or None."""
    try:
        lineage = read_json(run_path(run_dir) / CONFIG_FILE).get("lineage")
    except (OSError, ValueError):
        return None
    return lineage if isinstance(lineage, dict) else None


def read_tensors(path: Path, verify: bool | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a run's weights file, checked against the hash in its header.

    Args:
        path: ``model.safetensors`` or ``optimizer.safetensors`` of a run.
        verify: check the content hash; None: unless ``POSEMB_VERIFY=0``.

    Raises:
        CheckpointError: missing, unreadable, or not matching its recorded hash.
    """
    return read_weights_file(path, verify)[0]


def read_weights_file(
    path: Path, verify: bool | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """:func:`read_tensors`, with the file's header metadata (``step``, the content hash)."""
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; the run has no checkpoint yet")
    try:
        tensors, metadata = read_safetensors(path, fix="restore it or retrain")
    except (OSError, ValueError) as e:
        raise CheckpointError(str(e)) from None
    recorded = metadata.get(HASH_KEY)
    if verify is None:
        verify = os.environ.get(VERIFY_ENV, "1").strip().lower() not in ("0", "false", "no")
    if not verify:
        return tensors, metadata
    if recorded is None:
        _note_once(
            f"{path} has no recorded content hash (written before posemb recorded them): "
            "loaded without verification"
        )
    elif content_sha256(tensors) != recorded:
        raise CheckpointError(
            f"{path} does not match the sha256 recorded when it was written: the file is "
            f"corrupted; restore it from a copy or retrain ({VERIFY_ENV}=0 loads it anyway)"
        )
    return tensors, metadata


_NOTED: set[str] = set()


def _note_once(text: str) -> None:
    if text not in _NOTED:
        _NOTED.add(text)
        print(f"posemb: note: {text}", file=sys.stderr)


def load_weights(model: Transformer, tensors: dict[str, torch.Tensor], where: str) -> None:
    if model.config.tie_embeddings:
        tensors = {k: v for k, v in tensors.items() if k != "lm_head.weight"}
    expected = (
        set(state_dict_for_save(model)) if model.config.tie_embeddings else set(model.state_dict())
    )
    missing, unexpected = expected - set(tensors), set(tensors) - expected
    if missing or unexpected:
        raise CheckpointError(
            f"{where} does not match its config: missing {sorted(missing)[:5]}, unexpected "
            f"{sorted(unexpected)[:5]}"
        )
    own = model.state_dict()
    for k, v in tensors.items():
        if own[k].shape != v.shape:
            raise CheckpointError(
                f"{where}: {k} has shape {tuple(v.shape)}, the config expects {tuple(own[k].shape)}"
            )
    model.load_state_dict(tensors, strict=False)


def load_model(
    run_dir: str | Path, device: str | torch.device = "cpu", verify: bool | None = None
) -> tuple[Transformer, RunConfig]:
    run_dir = run_path(run_dir)
    cfg = read_config(run_dir)
    # Read-only: a reader (generate, eval) may run while the run trains, so it never finishes
    # or drops a pending checkpoint (that would delete or move the trainer's files under it).
    # model.safetensors is complete at every moment: it is only ever replaced by a rename.
    model = Transformer(cfg.model)
    load_weights(model, read_tensors(run_dir / MODEL_FILE, verify), str(run_dir / MODEL_FILE))
    return model.to(device).eval(), cfg


def load_run(run_dir: str | Path, device: str | torch.device = "cpu", verify: bool | None = None):
    """``(model, tokenizer)`` of a run directory (``posemb.load``).

    ``verify`` checks each weights file against its recorded sha256 (None: unless
    ``POSEMB_VERIFY=0``); a mismatch is a :class:`CheckpointError`.
    """
    model, _ = load_model(run_dir, device, verify)
    try:
        tokenizer = load_tokenizer(run_dir)
    except FileNotFoundError:
        raise CheckpointError(f"{run_dir} has no tokenizer.json; the run is incomplete") from None
    return model, tokenizer


def read_trainer_state(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: the run has no checkpoint to resume from")
    try:
        return read_json(path)
    except ValueError as e:
        raise CheckpointError(f"{e}; the trainer state is damaged") from None


def save_pretrained(model: Transformer, directory: str | Path, tokenizer=None) -> Path:
    """Write ``model`` as a posemb run folder: ``config.json`` + ``model.safetensors``
    (``Transformer.save_pretrained``).

    Args:
        model: the model (its ``config`` is written; tied weights are stored once).
        directory: created if missing; files of an earlier ``save_pretrained`` are replaced.
        tokenizer: also written (``tokenizer.json``), so ``posemb.load(directory)`` works.

    Raises:
        FileExistsError: ``directory`` holds a training run (``trainer_state.json``): its
            settings and checkpoint would be overwritten.
    """
    directory = run_path(directory)
    if (directory / STATE_FILE).exists():
        raise FileExistsError(
            f"{str(directory)!r} is a training run ({STATE_FILE}); save_pretrained would "
            "overwrite its settings and checkpoint: save to a new folder"
        )
    directory.mkdir(parents=True, exist_ok=True)
    cfg = model.config
    train = replace(TrainConfig(), seq_len=min(TrainConfig().seq_len, cfg.max_positions))
    data = DataConfig(tokenizer=tokenizer.kind) if tokenizer is not None else DataConfig()
    info = {"kind": tokenizer.kind, "vocab_size": tokenizer.vocab_size} if tokenizer else None
    write_config(directory, RunConfig(model=cfg, train=train, data=data), info)
    save_model(model, directory / MODEL_FILE)
    if tokenizer is not None:
        tokenizer.save(directory)
    return directory
