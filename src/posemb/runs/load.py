"""Reading and writing a run's settings, and loading its model: ``posemb.load``.

Every file is reached through :func:`.layout.run_file` (the one path-safety rule): a
``config.json``, ``model.safetensors`` or ``tokenizer.json`` that is a link leaving the run
is refused before it is read. :func:`load_model` is the one loader of a run's model (the
weights checked against their recorded hash).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ..data.tokenizers import load_tokenizer
from ..files import atomic_write_text, read_json
from ..model import Transformer
from ..provenance import run_provenance
from .config import DataConfig, RunConfig, TrainConfig
from .layout import (
    CONFIG_FILE,
    MODEL_FILE,
    RUN_SETTINGS_FILE,
    STATE_FILE,
    CheckpointError,
    run_file,
    run_path,
    settings_file,
)
from .weights import load_weights, read_tensors, save_model


def read_config(run_dir: str | Path) -> RunConfig:
    """The settings of a run (its ``config.json``), validated.

    Raises:
        CheckpointError: not a folder, no ``config.json``, or a damaged one.
        ValueError: a setting that is not valid (naming it and the closest valid one).
    """
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
    path = settings_file(run_dir)
    if not path.is_file():
        raise CheckpointError(
            f"{str(run_dir)!r} is not a posemb run: no {CONFIG_FILE} "
            "(train one with `posemb train`; a Hugging Face model folder has one too)"
        )
    try:
        data = read_json(path)
    except ValueError as e:
        raise CheckpointError(f"{e}; the run's config is damaged") from None
    if path.name == CONFIG_FILE and "model_type" in data and _vision(data):
        raise CheckpointError(
            f"{str(run_dir)!r} is a Hugging Face vision model folder, not a posemb run: grow "
            f"its patch grid with posemb extend {run_dir} DST --image-size PX and draw it with "
            f"posemb analyze {run_dir} (docs/HF.md)"
        )
    if path.name == CONFIG_FILE and "model_type" in data:
        raise CheckpointError(
            f"{str(run_dir)!r} is a Hugging Face model folder, not a posemb run: evaluate it with "
            f"posemb eval {run_dir} ..., fine-tune it with posemb train --init {run_dir} ..., or "
            f"bring a GPT-2, GPT-NeoX or MPT model in with posemb import-hf"
        )
    if not isinstance(data.get("model"), dict):
        raise CheckpointError(
            f"{str(path)!r} has no 'model' settings, so it is not a posemb run's config (nor a "
            "Hugging Face model's: no 'model_type'); the run's config is damaged: restore it from "
            "a copy, or train the run again"
        )
    return RunConfig.from_dict(data)


def write_config(
    run_dir: Path,
    cfg: RunConfig,
    tokenizer_info: dict[str, Any] | None = None,
    model: torch.nn.Module | None = None,
    lineage: dict[str, Any] | None = None,
    start_files: list[str] | None = None,
) -> None:
    """config.json (a Hugging Face model's run: posemb_run.json): the settings, the
    tokenizer, with ``model`` the run's ``provenance`` (versions, command, data source and
    fingerprint, parameter count), with ``lineage`` the run it started from
    (:mod:`.lineage`), and with ``start_files`` the other files the run wrote at its start
    (removed with it when it fails before its first checkpoint)."""
    data = cfg.to_dict()
    if tokenizer_info:
        data["tokenizer"] = tokenizer_info
    if model is not None:
        data["provenance"] = run_provenance(cfg, model)
    if lineage is not None:
        data["lineage"] = lineage
    if start_files:
        data["start_files"] = sorted(start_files)
    name = RUN_SETTINGS_FILE if cfg.hf is not None else CONFIG_FILE
    atomic_write_text(Path(run_dir) / name, json.dumps(data, indent=2) + "\n")


def load_model(
    run_dir: str | Path,
    device: str | torch.device = "cpu",
    verify: bool | None = None,
    cfg: RunConfig | None = None,
) -> tuple[Transformer, RunConfig]:
    """``(model, settings)`` of a run, in eval mode on ``device``.

    Args:
        run_dir: the run folder.
        verify: check ``model.safetensors`` against its recorded sha256 (None: unless
            ``POSEMB_VERIFY=0``).
        cfg: the run's settings when the caller has read them already.

    Read-only: a reader (generate, eval) may run while the run trains, so it never finishes
    or drops a pending checkpoint (that would delete or move the trainer's files under it).
    ``model.safetensors`` is complete at every moment: it is only ever replaced by a rename.
    """
    run_dir = run_path(run_dir)
    cfg = cfg if cfg is not None else read_config(run_dir)
    model = Transformer(cfg.model)
    weights = run_file(run_dir, MODEL_FILE)
    load_weights(model, read_tensors(weights, verify), str(weights))
    return model.to(device).eval(), cfg


def load_run(run_dir: str | Path, device: str | torch.device = "cpu", verify: bool | None = None):
    """``(model, tokenizer)`` of a run directory (``posemb.load``).

    ``verify`` checks each weights file against its recorded sha256 (None: unless
    ``POSEMB_VERIFY=0``); a mismatch is a :class:`CheckpointError`.
    """
    model, _ = load_model(run_dir, device, verify)
    try:
        tokenizer = load_tokenizer(run_dir)  # reads tokenizer.json through the same rule
    except FileNotFoundError:
        raise CheckpointError(f"{run_dir} has no tokenizer.json; the run is incomplete") from None
    return model, tokenizer


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


def _vision(config: dict) -> bool:
    """A Hugging Face image model's config (an image size, or a vision tower's settings)."""
    return "image_size" in config or isinstance(config.get("vision_config"), dict)
