"""Writing a posemb run directory for weights that did not come from ``posemb train``.

An imported or extended model becomes a run that every command reads (``posemb.load``,
``generate``, ``eval``, ``analyze``) and that ``posemb train --resume`` fine-tunes: the
trainer's own :func:`~posemb.train.trainer.write_initial_checkpoint` gives it a step-0
checkpoint (a fresh AdamW state, the data stream at its start). Resuming then trains
``train.max_steps`` steps from these weights; choose them on the command line::

    posemb train --resume RUN --data corpus.txt --set train.max_steps=500 train.lr=6e-5
"""

from __future__ import annotations

from pathlib import Path

from ..data import Tokenizer
from ..model import Transformer
from ..train.config import RunConfig
from ..train.trainer import write_initial_checkpoint


def write_run(run_dir: Path, model: Transformer, cfg: RunConfig, tokenizer: Tokenizer) -> None:
    """config.json, tokenizer.json, and a step-0 checkpoint (model, optimizer, trainer state)."""
    write_initial_checkpoint(run_dir, model, cfg, tokenizer)
