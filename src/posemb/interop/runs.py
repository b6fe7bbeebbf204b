"""Writing a posemb run directory for weights that did not come from ``posemb train``.

An imported or extended model becomes a run that every command reads (``posemb.load``,
``generate``, ``eval``, ``analyze``) and that ``posemb train --resume`` fine-tunes: besides
``config.json``, ``model.safetensors`` and ``tokenizer.json`` it gets a step-0 checkpoint
(a fresh AdamW state, the data stream at its start), written by the trainer's own
``save_checkpoint``. Resuming then trains ``train.max_steps`` steps from these weights;
choose them on the command line::

    posemb train --resume RUN --data corpus.txt --set train.max_steps=500 train.lr=6e-5
"""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import torch

from ..data import Tokenizer, rng_state_to_json
from ..model import Transformer
from ..train.checkpoint import save_checkpoint, write_config
from ..train.config import RunConfig
from ..train.optim import build_optimizer


def write_run(run_dir: Path, model: Transformer, cfg: RunConfig, tokenizer: Tokenizer) -> None:
    """config.json, tokenizer.json, and a step-0 checkpoint (model, optimizer, trainer state)."""
    run_dir = Path(run_dir)
    write_config(run_dir, cfg, {"kind": tokenizer.kind, "vocab_size": tokenizer.vocab_size})
    tokenizer.save(run_dir)
    seed = cfg.train.seed
    optimizer = build_optimizer(model, cfg.train, torch.device("cpu"))  # no moments yet
    torch_rng = torch.Generator().manual_seed(seed).get_state()
    save_checkpoint(run_dir, model, optimizer, {
        "step": 0,
        "data_rng": [rng_state_to_json(np.random.default_rng([seed, 0]))],  # rank 0's stream
        "torch_rng": base64.b64encode(torch_rng.numpy().tobytes()).decode(),
        "cuda_rng": None,
        "world_size": 1,
    })
