"""Runs started from another run's weights: a fine-tune, usually at a longer length.

``posemb train --init RUN --extend METHOD --set model.max_positions=N ... --out RUN2``
starts RUN2 from RUN's weights: its position table grown to ``N`` positions with
``METHOD`` (any of ``posemb.EXTEND_METHODS``), everything else copied. The optimiser (fresh
AdamW moments), the schedule (warm-up from step 0 to ``train.lr``, cosine to
``train.min_lr`` at ``train.max_steps``) and the data stream (``train.seed``) start fresh:
RUN2 is a new run, resumable with ``--resume`` like any other. Its settings are RUN's own,
then a ``--config`` file, then ``--set``; the architecture must stay RUN's (only
``model.max_positions``, ``model.dropout``, ``model.attention`` and the overflow policy may
change), and RUN's tokenizer is used.

RUN2's config.json records its ``lineage`` (the record's format: :mod:`posemb.runs.lineage`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from ..model import Transformer
from ..model.config import ModelConfig
from ..positional.checks import is_int
from ..runs.checkpoint import step_reached
from ..runs.config import RunConfig, build_config, flat_settings
from ..runs.layout import MODEL_FILE, RUN_SETTINGS_FILE, folder_kind, run_file, run_path
from ..runs.lineage import read_lineage, tokens_trained, trained_positions
from ..runs.load import read_config
from ..runs.weights import HASH_KEY, load_weights, read_weights_file, state_dict_for_save

# model settings a run started from another may change (they leave every weight's shape)
CHANGEABLE = ("max_positions", "dropout", "attention")
# position options it may change: the policy past the table's end
CHANGEABLE_OPTIONS = ("overflow",)


def init_config(
    run: str | Path,
    method: str | None = None,
    settings: dict[str, Any] | None = None,
) -> RunConfig:
    """The settings of a run started from ``run``: its own, then ``settings`` (flat
    ``group.key`` values, as ``--config`` and ``--set`` give them), with ``train.init`` and
    ``train.init_method`` set.

    When ``method`` is given and ``settings`` set ``model.max_positions`` but not
    ``train.seq_len``, the new run trains at the new length (what a fine-tune after an
    extension is for).

    Example::

        cfg = init_config("runs/a", "interpolate",
                          {"model.max_positions": 256, "train.max_steps": 60})
        train(cfg, "runs/a-256")
    """
    source = run_path(run)
    settings = dict(settings or {})
    if folder_kind(source) == "hf":
        return init_hf_config(source, method, settings)
    flat = flat_settings(read_config(source))
    if method and "model.max_positions" in settings and "train.seq_len" not in settings:
        settings["train.seq_len"] = settings["model.max_positions"]
    flat.update(settings)
    flat["train.init"] = str(source.resolve())
    flat["train.init_method"] = method or ""
    return build_config(None, flat)


def init_hf_config(source: Path, method: str | None, settings: dict[str, Any]) -> RunConfig:
    """The settings of a fine-tune of the Hugging Face model in ``source``: its objective
    and tokenizer, ``model.*`` a summary of it (the only model setting that may change is
    ``model.max_positions``, which needs ``method``), ``settings`` for the rest. Without a
    ``train.seq_len`` it trains at the positions it serves.

    Raises:
        ValueError: a model setting other than the size, a size change without a method
            (or a method without one), a tokenizer without the mask token a masked-LM
            needs, a tokenizer larger than the model's vocabulary, FSDP, or position
            recipes other than ``start`` (the model numbers its positions itself).
    """
    from ..interop.hf_model import read_folder, summary_config
    from ..interop.tokenizers import model_tokenizer, special_token_id

    folder = read_folder(source)
    where = str(source)
    size = settings.pop("model.max_positions", folder.positions)
    _check_hf_settings(folder, settings, size, method, where)
    tokenizer = model_tokenizer(folder.path)
    if settings.get("data.tokenizer", tokenizer.kind) != tokenizer.kind:
        raise ValueError(
            f"data.tokenizer={settings['data.tokenizer']!r}: a Hugging Face model reads its own "
            f"tokenizer ({where}); drop data.tokenizer"
        )
    mask_id = special_token_id(folder.path, tokenizer, "mask_token")
    if folder.objective == "masked" and mask_id is None:
        raise ValueError(
            f"{where}'s tokenizer has no mask token ([MASK] or <mask>, or the mask_token of "
            "tokenizer_config.json): a masked-LM model trains on masked text"
        )
    model = summary_config(folder.config, folder.objective, size)
    if tokenizer.vocab_size > model.vocab_size:
        raise ValueError(
            f"{where}'s tokenizer has {tokenizer.vocab_size} ids, more than the model's "
            f"vocabulary of {model.vocab_size}: they do not belong together"
        )
    flat = {f"model.{k}": v for k, v in model.to_dict().items()}
    flat.update({"train.seq_len": size, "data.tokenizer": tokenizer.kind})
    flat.update(settings)
    flat.update(
        {
            "train.init": str(source.resolve()),
            "train.init_method": method or "",
            "hf.source": str(source.resolve()),
            "hf.model_type": folder.model_type,
            "hf.objective": folder.objective,
            "hf.mask_token_id": -1 if mask_id is None else mask_id,
        }
    )
    cfg = build_config(None, flat)
    if cfg.train.positions != "start":
        raise ValueError(
            f"train.positions={cfg.train.positions!r}: a Hugging Face model numbers its own "
            "positions (0 .. t-1, after its reserved rows); train it with train.positions=start"
        )
    if cfg.train.parallel == "fsdp":
        raise ValueError(
            "train.parallel=fsdp shards posemb's own blocks; a Hugging Face model trains on "
            "several processes with train.parallel=ddp"
        )
    return cfg


def _check_hf_settings(
    folder, settings: dict[str, Any], size: Any, method: str | None, where: str
) -> None:
    """What ``--init HF_DIR`` refuses before reading the tokenizer: model settings other than
    the size, posemb's own hf.* settings, synthetic data, a smaller table, a size change
    without a method (or a method without one)."""
    from ..data import is_synthetic
    from ..interop.hf_model import SYNTHETIC, summary_config

    other = sorted(k for k in settings if k.startswith("model."))
    if other:
        raise ValueError(
            f"{other[0]}: a Hugging Face model keeps its own architecture (its config.json); "
            "only model.max_positions (with --extend METHOD) may change with --init HF_DIR"
        )
    fixed = sorted(k for k in settings if k in _FROM_THE_FOLDER)
    if fixed:
        raise ValueError(
            f"{fixed[0]} is read from {where} (posemb sets it); of the hf.* settings only "
            "hf.new_head is yours to set"
        )
    if is_synthetic(str(settings.get("data.source", ""))):
        raise ValueError(SYNTHETIC)
    if is_int(size) and size < folder.positions:
        raise ValueError(
            f"model.max_positions={size} is below the {folder.positions} positions {where} "
            "serves: a fine-tune grows a table, never crops it (posemb extend --allow-shrink "
            "crops one on disk)"
        )
    _check_method(summary_config(folder.config, folder.objective, folder.positions),
                  folder.positions, size, method or "", where)  # fmt: skip


# set by posemb from the folder of a Hugging Face model (never by the user)
_FROM_THE_FOLDER = (
    "hf.source",
    "hf.model_type",
    "hf.objective",
    "hf.mask_token_id",
    "train.init",
    "train.init_method",
)


def initial_hf_model(cfg: RunConfig) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The Hugging Face model a fine-tune starts from (its tables grown by
    ``train.init_method``, fresh rows and a fresh head drawn from ``train.seed``), and its
    lineage record."""
    from ..interop.hf_files import read_weights
    from ..interop.hf_model import open_hf, read_folder
    from ..runs.weights import content_sha256

    tc, hf = cfg.train, cfg.hf
    source = Path(hf.source)
    before = read_folder(source)
    model = open_hf(
        source,
        positions=cfg.model.max_positions,
        method=tc.init_method or None,
        new_head=hf.new_head,
        seed=tc.seed,
    )
    if model.dropped:
        print(
            f"posemb: note: {len(model.dropped)} tensors of {source} have no place in "
            f"{type(model.hf).__name__} and are not kept ({', '.join(model.dropped[:3])}"
            f"{', ...' if len(model.dropped) > 3 else ''}); a model loaded from the output "
            "with another head gets them fresh",
            file=sys.stderr,
        )
    step = step_reached(source)
    source_tokens, trained = None, before.positions
    if run_file(source, RUN_SETTINGS_FILE).is_file():  # a fine-tune of a fine-tune: the chain
        src_cfg, src_lineage = read_config(source), read_lineage(source)
        source_tokens = tokens_trained(src_cfg, step, src_lineage)
        trained = trained_positions(src_cfg, src_lineage)
    lineage = {
        "source": str(source.resolve()),
        "source_step": step,
        "source_sha256": content_sha256(read_weights(source)),
        "source_tokens": source_tokens,
        "source_trained_positions": trained,
        "method": tc.init_method or None,
        "from_positions": before.positions,
        "positions": model.position_limit,
        "source_lineage": read_lineage(source),
    }
    return model, lineage


def check_architecture(source: ModelConfig, new: ModelConfig, where: str) -> None:
    """Refuse a change of architecture: only :data:`CHANGEABLE` fields may differ."""
    old_d, new_d = source.to_dict(), new.to_dict()
    for key in old_d:
        if key in CHANGEABLE or key == "position_options" or old_d[key] == new_d[key]:
            continue
        raise ValueError(
            f"model.{key}={new_d[key]!r} differs from {where}'s {old_d[key]!r}: a run started "
            f"with --init keeps the source's architecture (only model.max_positions, "
            f"model.dropout, model.attention and the overflow policy may change)"
        )
    old_o, new_o = dict(old_d["position_options"]), dict(new_d["position_options"])
    for key in CHANGEABLE_OPTIONS:
        old_o.pop(key, None)
        new_o.pop(key, None)
    if old_o != new_o:
        raise ValueError(
            f"model.position_options={new_d['position_options']!r} differs from {where}'s "
            f"{old_d['position_options']!r}: only the overflow policy may change with --init"
        )


def initial_model(cfg: RunConfig) -> tuple[Transformer, dict[str, Any]]:
    """The model a run with ``train.init`` starts from, and its lineage record.

    The source's weights (checked against their content hash), with the table grown or
    cropped to ``cfg.model.max_positions`` by ``train.init_method``; fresh ``random`` rows
    are drawn from ``train.seed``. Rows the method keeps are the source's bit for bit.

    Raises:
        CheckpointError: the source is not a readable run.
        ValueError: the architecture differs, or the table changes size without a method
            (or a method is given for a size that does not change, or a scheme without a
            table).
    """
    tc = cfg.train
    source = run_path(tc.init)
    where = str(source)
    src_cfg = read_config(source)
    check_architecture(src_cfg.model, cfg.model, where)
    if cfg.data.tokenizer != src_cfg.data.tokenizer:
        raise ValueError(
            f"data.tokenizer={cfg.data.tokenizer!r} differs from {where}'s "
            f"{src_cfg.data.tokenizer!r}: a run started with --init uses the source's tokenizer"
        )
    weights = run_file(source, MODEL_FILE)
    tensors, metadata = read_weights_file(weights)
    model = Transformer(src_cfg.model)
    load_weights(model, tensors, str(weights))
    old, new = src_cfg.model.max_positions, cfg.model.max_positions
    _check_method(src_cfg.model, old, new, tc.init_method, where)
    if src_cfg.model.has_position_table and new != old:
        generator = torch.Generator().manual_seed(tc.seed)  # fresh rows of `random`
        model = model.extend_positions(new, tc.init_method, generator=generator)
    start = Transformer(cfg.model)  # the new settings (dropout, overflow), then the weights
    load_weights(start, state_dict_for_save(model), where)
    step = _source_step(source, metadata)
    lineage = {
        "source": str(source.resolve()),
        "source_step": step,
        "source_sha256": metadata.get(HASH_KEY),
        "source_tokens": tokens_trained(src_cfg, step, read_lineage(source)),
        "source_trained_positions": trained_positions(src_cfg, read_lineage(source)),
        "method": tc.init_method or None,
        "from_positions": old,
        "positions": new,
        "source_lineage": read_lineage(source),
    }
    return start, lineage


def _check_method(src: ModelConfig, old: int, new: int, method: str, where: str) -> None:
    if not src.has_position_table:
        if method:
            raise ValueError(
                f"{where} uses model.position={src.position!r}, which has no table to extend: "
                f"drop --extend (train.init_method); it serves any length as it is"
            )
        return
    if new != old and not method:
        raise ValueError(
            f"model.max_positions={new} differs from {where}'s {old}: choose how the table "
            f"changes size with --extend METHOD (train.init_method), e.g. --extend interpolate"
        )
    if new == old and method:
        raise ValueError(
            f"--extend {method} (train.init_method) needs a new table size: set "
            f"model.max_positions (now {old}, as {where}), or drop --extend"
        )


def _source_step(source: Path, metadata: dict[str, str]) -> int | None:
    """The step of the source's weights: its header's (as written with them), else the step
    its checkpoint reached; None for weights that did not come from training
    (save_pretrained)."""
    if str(metadata.get("step", "")).isdigit():
        return int(metadata["step"])
    return step_reached(source)
