"""``export-hf`` and ``import-hf``: a posemb run <-> a Hugging Face GPT-2 directory.

Export writes ``config.json`` (GPT2Config fields), ``model.safetensors`` (GPT-2 names,
Conv1D layout; the tied ``lm_head.weight`` omitted, as ``save_pretrained`` does) and the
tokenizer files the run's tokenizer can be expressed as (see :mod:`.tokenizers`), so
``GPT2LMHeadModel.from_pretrained(DST)`` gives posemb's logits.

Import reads a local GPT-2 directory (safetensors only, one file or shards) into a posemb
run with a step-0 checkpoint (see :mod:`.runs`), so ``posemb.load``, ``generate``, ``eval``,
``analyze`` and ``train --resume`` work on it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..data import inside, load_tokenizer
from ..model import Transformer
from ..train.checkpoint import load_weights, read_config, state_dict_for_save
from ..train.config import DataConfig, RunConfig, TrainConfig
from .files import (
    SAFETENSORS,
    read_json,
    read_safetensors,
    read_weights,
    require_dir,
    write_json,
    write_safetensors,
)
from .gpt2 import from_hf, hf_config, incompatibilities, model_config_from_hf, to_hf
from .outdir import output_dir
from .runs import write_run
from .tokenizers import export_tokenizer, import_tokenizer


def export_run(run_dir: str | Path, dst: str | Path, *, force: bool = False) -> list[str]:
    """Write ``run_dir`` as a GPT2LMHeadModel directory ``dst``; return notes for the user.

    Raises:
        ValueError: the run's config has fields GPT-2 cannot express (each one named), or
            its weights don't match the config.
        FileExistsError: ``dst`` exists and is not empty, without ``force``.
    """
    run_dir = require_dir(Path(run_dir), "run directory")
    inside(run_dir, "config.json")  # a link leaving the run is refused before it is read
    cfg = read_config(run_dir).model
    problems = incompatibilities(cfg)
    if problems:
        raise ValueError(f"{str(run_dir)!r} cannot be exported as GPT-2: {'; '.join(problems)}")
    # read the weights without touching the run (load_model would complete a pending checkpoint)
    weights = inside(run_dir, SAFETENSORS)
    tensors, _ = read_safetensors(weights)
    model = Transformer(cfg)
    load_weights(model, tensors, str(weights))
    hf_tensors = to_hf(state_dict_for_save(model), cfg)
    try:
        tokenizer = load_tokenizer(run_dir)
    except FileNotFoundError:
        tokenizer = None
    with output_dir(dst, force=force, src=run_dir) as out:
        write_json(out / "config.json", hf_config(cfg))
        write_safetensors(out / "model.safetensors", hf_tensors)
        notes = export_tokenizer(tokenizer, out, cfg.max_positions)
    return notes


def import_hf_dir(hf_dir: str | Path, dst: str | Path, *, force: bool = False) -> list[str]:
    """Write the GPT-2 directory ``hf_dir`` as a posemb run ``dst``; return notes for the user.

    Raises:
        ValueError: not GPT-2, a GPT-2 variant posemb cannot compute identically (each field
            named), weights that don't match the config, or only pickled weights.
        FileExistsError: ``dst`` exists and is not empty, without ``force``.
    """
    hf_dir = require_dir(Path(hf_dir), "Hugging Face directory")
    config = inside(hf_dir, "config.json")
    model_cfg = model_config_from_hf(read_json(config), str(config))
    model = Transformer(model_cfg)
    load_weights(model, from_hf(read_weights(hf_dir), model_cfg), str(hf_dir))
    tokenizer, notes = import_tokenizer(hf_dir)
    if tokenizer.vocab_size > model_cfg.vocab_size:
        notes.append(
            f"warning: the tokenizer has {tokenizer.vocab_size} ids but the model only {model_cfg.vocab_size}; "
            "text using the extra ids will be refused"
        )
    train = TrainConfig()
    train = replace(train, seq_len=min(train.seq_len, model_cfg.max_positions))
    run_cfg = RunConfig(model=model_cfg, train=train, data=DataConfig(tokenizer=tokenizer.kind))
    with output_dir(dst, force=force, src=hf_dir) as out:
        write_run(out, model, run_cfg, tokenizer)
    return notes
