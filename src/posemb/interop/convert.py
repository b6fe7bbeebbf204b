"""``export-hf`` and ``import-hf``: a posemb run <-> a Hugging Face causal LM directory.

Export writes ``config.json`` (the fields of the architecture that holds the run exactly,
:mod:`.architectures`), ``model.safetensors`` (its key names and layouts; a tied
``lm_head.weight`` omitted, as ``save_pretrained`` does) and the tokenizer files the run's
tokenizer can be expressed as (:mod:`.tokenizers`), so ``AutoModelForCausalLM`` and
``AutoTokenizer`` load ``DST`` and give posemb's logits. ``config.json`` also records the
run's own settings under ``"posemb"`` (transformers keeps the key and ignores it).

Import reads a local GPT-2, GPT-NeoX or MPT directory (safetensors only, one file or
shards) into a posemb run with a step-0 checkpoint (as the trainer writes one), so ``posemb.load``,
``generate``, ``eval``, ``analyze`` and ``train --resume`` work on it. When the
``"posemb"`` record still describes the weights (exporting it again would give these very
tensors), the run gets those settings back, so export then import is exact: the same
config and ``torch.equal`` weights. A model changed elsewhere is read from its Hugging
Face fields alone.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from torch import Tensor

from .. import __version__
from ..data import inside, load_tokenizer
from ..files import read_json, write_json, write_safetensors
from ..model import ModelConfig, Transformer
from ..runs import CONFIG_FILE, MODEL_FILE, load_model, read_config, write_initial_checkpoint
from ..runs.config import DataConfig, RunConfig, TrainConfig
from ..runs.weights import load_weights, state_dict_for_save
from .architectures import Architecture, export_target, import_source
from .hf_files import read_weights, require_dir
from .metadata import HF_METADATA, cast, read_metadata, read_run_metadata, token_ids
from .outdir import output_dir
from .tokenizers import HF_TOKENIZER, POSEMB_TOKENIZER, export_tokenizer, import_tokenizer

MARKER = "posemb"  # config.json key holding the run's own model settings


def export_run(run_dir: str | Path, dst: str | Path, *, force: bool = False) -> list[str]:
    """Write ``run_dir`` as a Hugging Face causal LM directory ``dst``; return notes.

    Raises:
        ValueError: no Hugging Face architecture holds the run's config exactly (each field
            that differs is named), or its weights don't match the config.
        FileExistsError: ``dst`` exists and is not empty, without ``force``.
    """
    run_dir = require_dir(Path(run_dir), "run directory")
    run_cfg = read_config(run_dir)  # config.json through the path-safety rule
    cfg = run_cfg.model
    arch = export_target(cfg, repr(str(run_dir)))
    model, _ = load_model(run_dir, cfg=run_cfg)  # the weights checked against their hash
    meta = read_run_metadata(run_dir)
    hf_tensors = cast(
        arch.module.to_hf(state_dict_for_save(model), cfg), meta.get("dtype", "float32")
    )
    config = {
        **arch.module.hf_config(cfg),
        **token_ids(meta, cfg.vocab_size),
        "torch_dtype": meta.get("dtype", "float32"),
        MARKER: {"version": __version__, "model": cfg.to_dict()},
    }
    try:
        tokenizer = load_tokenizer(run_dir)
    except FileNotFoundError:
        tokenizer = None
    with output_dir(dst, force=force, src=run_dir) as out:
        write_json(out / CONFIG_FILE, config)
        write_safetensors(out / MODEL_FILE, hf_tensors)
        if meta.get("generation_config"):
            write_json(out / "generation_config.json", meta["generation_config"])
        notes = export_tokenizer(tokenizer, out, cfg.max_positions, meta.get("tokenizer"))
    return arch.module.export_notes(cfg) + notes


def import_hf_dir(hf_dir: str | Path, dst: str | Path, *, force: bool = False) -> list[str]:
    """Write the Hugging Face directory ``hf_dir`` as a posemb run ``dst``; return notes.

    Raises:
        ValueError: not an architecture posemb reads, a variant posemb cannot compute
            identically (each field named), weights that don't match the config, or only
            pickled weights.
        FileExistsError: ``dst`` exists and is not empty, without ``force``.
    """
    hf_dir = require_dir(Path(hf_dir), "Hugging Face directory")
    config_path = inside(hf_dir, CONFIG_FILE)
    config = read_json(config_path)
    arch = import_source(config, str(config_path))
    from_fields = arch.module.model_config_from_hf(config, str(config_path))
    hf_tensors = read_weights(hf_dir)
    model_cfg, tensors, notes = _settings(arch, config, from_fields, hf_tensors, str(config_path))
    model = Transformer(model_cfg)
    load_weights(model, tensors, str(hf_dir))
    tokenizer, tok_notes = import_tokenizer(hf_dir)
    notes += tok_notes
    if tokenizer.vocab_size > model_cfg.vocab_size:
        notes.append(
            f"warning: the tokenizer has {tokenizer.vocab_size} ids but the model only "
            f"{model_cfg.vocab_size}; text using the extra ids will be refused"
        )
    own = (
        any(inside(hf_dir, n).is_file() for n in (HF_TOKENIZER, "vocab.json"))
        and not inside(hf_dir, POSEMB_TOKENIZER).is_file()
    )
    meta = read_metadata(hf_dir, config, hf_tensors, own)
    train = TrainConfig()
    train = replace(train, seq_len=min(train.seq_len, model_cfg.max_positions))
    run_cfg = RunConfig(model=model_cfg, train=train, data=DataConfig(tokenizer=tokenizer.kind))
    with output_dir(dst, force=force, src=hf_dir) as out:
        write_initial_checkpoint(out, model, run_cfg, tokenizer)
        write_json(out / HF_METADATA, meta)
    return notes


def _settings(
    arch: Architecture,
    config: dict[str, Any],
    from_fields: ModelConfig,
    hf_tensors: dict[str, Tensor],
    where: str,
) -> tuple[ModelConfig, dict[str, Tensor], list[str]]:
    """The run's ModelConfig and weights: the ``"posemb"`` record's settings when they still
    describe these weights exactly, else what the Hugging Face fields say."""
    recorded = config.get(MARKER)
    if not isinstance(recorded, dict) or not isinstance(recorded.get("model"), dict):
        return from_fields, arch.module.from_hf(hf_tensors, from_fields), []
    stale = (
        f"the posemb settings recorded in config.json no longer describe {arch.label}'s fields "
        "or weights (changed elsewhere?); imported from the Hugging Face fields alone"
    )
    try:
        cfg = ModelConfig.from_dict(recorded["model"])
        same = not arch.module.incompatibilities(cfg) and (
            arch.module.model_config_from_hf(arch.module.hf_config(cfg), where) == from_fields
        )
        if same:  # narrow() refuses a filled bias or table that differs from its fill
            return cfg, arch.module.from_hf(hf_tensors, cfg), []
    except (ValueError, TypeError):
        pass
    return from_fields, arch.module.from_hf(hf_tensors, from_fields), [stale]
