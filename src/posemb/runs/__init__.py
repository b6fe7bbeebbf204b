"""The run folder: its files, its settings, its checkpoints, and loading the model it holds.

A run folder is posemb's unit of work on disk (docs/DESIGN.md, "The run folder"): the
trainer writes it (:mod:`posemb.train`), and evaluation, analysis, interop and experiments
read it through this package only, never through the trainer.

- :mod:`.layout`: the file names, :func:`run_file` (every read goes through the one
  path-safety rule), :func:`folder_kind` (a posemb run or a Hugging Face model folder?).
- :mod:`.config`: the settings (``RunConfig``: model, train, data), presets, TOML, ``--set``.
- :mod:`.load`: :func:`read_config`, :func:`load_model` (the one loader), :func:`load_run`
  (``posemb.load``), :func:`save_pretrained`.
- :mod:`.weights`: safetensors carrying their own sha256, checked on every read.
- :mod:`.checkpoint`: atomic checkpoints, trainer state, :func:`step_reached`, step-0 runs.
- :mod:`.lineage`: the run a fine-tune started from, and the tokens behind a chain.
- :mod:`.claim`, :mod:`.lock`: one writer per folder; a failed start leaves nothing behind.

Example::

    from posemb.runs import load_model, step_reached
    model, cfg = load_model("runs/a")
    step_reached("runs/a")            # 600, or None before the first checkpoint
"""

from .checkpoint import read_trainer_state, step_reached, write_initial_checkpoint
from .config import PRESETS, DataConfig, RunConfig, TrainConfig, build_config, parse_sets, read_toml
from .layout import (
    CONFIG_FILE,
    METRICS_FILE,
    MODEL_FILE,
    RUN_SETTINGS_FILE,
    STATE_FILE,
    TOKENIZER_FILE,
    CheckpointError,
    folder_kind,
    refuse_model_folder,
    run_file,
)
from .lineage import read_lineage, tokens_trained, trained_positions
from .load import load_model, load_run, read_config, save_pretrained

__all__ = [
    "CONFIG_FILE",
    "METRICS_FILE",
    "MODEL_FILE",
    "PRESETS",
    "RUN_SETTINGS_FILE",
    "STATE_FILE",
    "TOKENIZER_FILE",
    "CheckpointError",
    "DataConfig",
    "RunConfig",
    "TrainConfig",
    "build_config",
    "folder_kind",
    "load_model",
    "load_run",
    "parse_sets",
    "read_config",
    "read_lineage",
    "read_toml",
    "read_trainer_state",
    "refuse_model_folder",
    "run_file",
    "save_pretrained",
    "step_reached",
    "tokens_trained",
    "trained_positions",
    "write_initial_checkpoint",
]
