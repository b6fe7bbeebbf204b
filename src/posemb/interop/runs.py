"""Writing a posemb run directory for weights that did not come from ``posemb train``.

An imported or extended model becomes a run that every command reads (``posemb.load``,
``generate``, ``eval``, ``analyze``) and that ``posemb train --resume`` fine-tunes: the
trainer's own :func:`~posemb.train.trainer.write_initial_checkpoint` gives it a step-0
checkpoint (a fresh AdamW state, the data stream at its start). Resuming then trains
``train.max_steps`` steps from these weights; choose them on the command line::

    posemb train --resume RUN --data corpus.txt --set train.max_steps=500 train.lr=6e-5

:func:`save_pretrained` (``Transformer.save_pretrained``) writes the smaller folder of a
model in memory: ``config.json`` and ``model.safetensors`` (and ``tokenizer.json`` when
given), which ``Transformer.from_pretrained`` and, with a tokenizer, ``posemb.load`` read.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..data import Tokenizer
from ..model import Transformer
from ..train.checkpoint import MODEL_FILE, STATE_FILE, save_model, write_config
from ..train.config import DataConfig, RunConfig, TrainConfig
from ..train.trainer import write_initial_checkpoint


def write_run(run_dir: Path, model: Transformer, cfg: RunConfig, tokenizer: Tokenizer) -> None:
    """config.json, tokenizer.json, and a step-0 checkpoint (model, optimizer, trainer state)."""
    write_initial_checkpoint(run_dir, model, cfg, tokenizer)


def save_pretrained(
    model: Transformer, directory: str | Path, tokenizer: Tokenizer | None = None
) -> Path:
    """Write ``model`` as a posemb run folder: ``config.json`` + ``model.safetensors``.

    Args:
        model: the model (its ``config`` is written; tied weights are stored once).
        directory: created if missing; files of an earlier ``save_pretrained`` are replaced.
        tokenizer: also written (``tokenizer.json``), so ``posemb.load(directory)`` works.

    Raises:
        FileExistsError: ``directory`` holds a training run (``trainer_state.json``): its
            settings and checkpoint would be overwritten.
    """
    directory = Path(directory)
    if (directory / STATE_FILE).exists():
        raise FileExistsError(
            f"{str(directory)!r} is a training run ({STATE_FILE}); save_pretrained would overwrite "
            "its settings and checkpoint: save to a new folder"
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
