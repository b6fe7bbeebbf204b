"""What a run folder holds, and how a file of it is named and found (docs/DESIGN.md, "The run
folder").

The one home of the run folder's file names. Every reader reaches a file of a folder through
:func:`run_file`, which applies the one path-safety rule (:func:`posemb.data.inside`: a link
leaving the folder is refused before anything is read). :func:`folder_kind` is the one answer
to "is this a posemb run or a Hugging Face model folder?".

A run folder::

    config.json            settings (model, train, data), tokenizer kind, provenance, lineage
    model.safetensors      the weights, with their sha256 in the header
    optimizer.safetensors  AdamW moments (tensors only)
    trainer_state.json     step, RNG states, data position, optimiser hyper-parameters
    checkpoint.commit      the journal of a checkpoint being committed (briefly)
    metrics.jsonl          one JSON object a line
    tokenizer.json         the tokenizer
    run.lock               the writer's lock, while a process writes the run

``config.json`` and ``model.safetensors`` are also the names a Hugging Face model folder
uses (a different schema in ``config.json``; :func:`folder_kind` tells them apart). A
Hugging Face model that posemb fine-tunes is trained into such a folder: its
``config.json`` stays the model's own (``AutoModel`` loads the folder as it is), its
weights carry Hugging Face names, and posemb's settings, provenance and lineage go to
``posemb_run.json``; the checkpoint files are a run's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from ..data.paths import inside
from ..data.tokenizers import TOKENIZER_FILE
from ..files import read_json

CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "trainer_state.json"
JOURNAL = "checkpoint.commit"
METRICS_FILE = "metrics.jsonl"
LOCK_FILE = "run.lock"
RUN_SETTINGS_FILE = "posemb_run.json"  # posemb's settings of a Hugging Face model it trains

__all__ = [
    "CONFIG_FILE",
    "CheckpointError",
    "JOURNAL",
    "LOCK_FILE",
    "METRICS_FILE",
    "MODEL_FILE",
    "OPTIMIZER_FILE",
    "RUN_SETTINGS_FILE",
    "STATE_FILE",
    "TOKENIZER_FILE",
    "folder_kind",
    "refuse_model_folder",
    "run_file",
    "run_path",
    "settings_file",
]


class CheckpointError(ValueError):
    """A run folder or checkpoint that cannot be read (missing, truncated, corrupted)."""


def run_path(run_dir: object) -> Path:
    """``run_dir`` as a Path; a TypeError that says what is wanted for anything else."""
    if not isinstance(run_dir, (str, os.PathLike)):
        raise TypeError(
            f"expected a run folder path (a str or pathlib.Path, e.g. posemb.load('runs/a')), "
            f"got {type(run_dir).__name__}"
        )
    return Path(run_dir)


def settings_file(run_dir: str | Path) -> Path:
    """Where a run's settings are: ``posemb_run.json`` in a Hugging Face folder posemb
    trains, else ``config.json``."""
    hf = run_file(run_dir, RUN_SETTINGS_FILE)
    return hf if hf.is_file() else run_file(run_dir, CONFIG_FILE)


def run_file(run_dir: str | Path, name: str) -> Path:
    """``run_dir / name``, refused (:class:`posemb.data.UnsafePathError`) when it is a link
    that leaves ``run_dir``."""
    return inside(run_path(run_dir), name)


def folder_kind(folder: str | Path, fix: str = "") -> Literal["run", "hf"] | None:
    """What ``folder`` holds, from its ``config.json``: ``"run"`` (a posemb run: a ``model``
    group of settings), ``"hf"`` (a Hugging Face model: a ``model_type``), or None when it
    has no ``config.json``. ``fix`` ends the message when it is neither.

    Raises:
        ValueError: ``config.json`` is not a JSON object, or is neither kind (naming it).
        UnsafePathError: ``config.json`` is a link leaving ``folder``.
    """
    path = run_file(folder, CONFIG_FILE)
    if not path.is_file():
        return None
    config = read_json(path)
    if "model_type" in config:
        return "hf"
    if isinstance(config.get("model"), dict):
        return "run"
    raise ValueError(
        f"{str(path)!r} is neither a posemb run's config (no 'model' settings) nor a Hugging "
        f"Face model's (no 'model_type'){'; ' + fix if fix else ''}"
    )


def refuse_model_folder(out: str | Path, what: str = "--out", sub: str = "eval") -> None:
    """Refuse an output folder that is a run or a model folder (``config.json``,
    ``trainer_state.json``): results are never written into one, nor replace one, ``--force``
    or not (a results folder inside a run, ``runs/a/eval``, is fine)."""
    out = Path(out)
    if not out.is_dir():
        return
    held = [
        n for n in (STATE_FILE, CONFIG_FILE, MODEL_FILE, RUN_SETTINGS_FILE) if (out / n).exists()
    ]
    if held:
        raise ValueError(
            f"{what} {str(out)!r} is a run or model folder (it holds {held[0]}); results are "
            f"never written into one: choose a new folder, e.g. {str(out / sub)!r}"
        )
