"""``posemb extend``: grow (or crop) the position table of a posemb run or a local Hugging
Face model directory, updating everything that has to agree with its size.

Supported Hugging Face families (``model_type`` in ``config.json``)::

    family      table key (base-model prefix optional)          limit in config.json          offset
    gpt2        [transformer.]wpe.weight                        n_positions (+ n_ctx)         0
    bert        [bert.]embeddings.position_embeddings.weight    max_position_embeddings       0
    roberta     [roberta.]embeddings.position_embeddings.weight max_position_embeddings = N+2 pad_token_id+1 (2)
    opt         [model.]decoder.embed_positions.weight          max_position_embeddings = N   2
    distilbert  [distilbert.]embeddings.position_embeddings.weight  max_position_embeddings   0

The offset convention: ``N`` (``--to N``) always counts the positions a model can serve.
RoBERTa and OPT reserve 2 leading rows (RoBERTa's ``padding_idx`` row and the one before;
OPT's fixed offset 2), so both tables have ``N + 2`` rows; RoBERTa's config counts them
(``max_position_embeddings = N + 2``: 514 for 512 positions), OPT's does not (2048 for
2048). The reserved rows are copied exactly by every method.

Also updated: ``position_ids`` / ``token_type_ids`` buffers stored in the weights (older
checkpoints), ``model_max_length`` in ``tokenizer_config.json``; GPT-2's stale
``attn.bias`` causal-mask buffers (``[1, 1, N, N]``, rebuilt by transformers >= 4.40) are
dropped. Every other file is copied unchanged (a link as the file it points to; a link
leaving ``src`` is refused, see :func:`posemb.data.inside`); other weight formats are never
copied.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
from safetensors import safe_open

from ..data import inside, load_tokenizer
from ..model import Transformer
from ..positional import extend_table
from ..train.checkpoint import load_weights, read_config
from .files import (
    OTHER_WEIGHTS,
    SAFETENSORS,
    SAFETENSORS_INDEX,
    config_float,
    config_int,
    read_json,
    read_safetensors,
    require_dir,
    tensor_names,
    weight_files,
    write_json,
    write_safetensors,
)
from .outdir import copy_file, files_to_copy, output_dir
from .runs import write_run

TOKENIZER_CONFIG = "tokenizer_config.json"
_NO_LIMIT = 10**20  # transformers writes int(1e30) as model_max_length for "no limit"


@dataclass(frozen=True)
class Family:
    """Where a Hugging Face architecture keeps its table and its size."""

    table: str  # key suffix of the table, without the base-model prefix
    limit: str  # config.json field holding the size
    offset: int  # reserved leading rows
    counts_offset: bool  # the config field counts the reserved rows too (RoBERTa)
    also: tuple[str, ...] = ()  # other config fields equal to the limit when present


_EMBEDDINGS = "embeddings.position_embeddings.weight"
FAMILIES: dict[str, Family] = {
    "gpt2": Family("wpe.weight", "n_positions", 0, False, also=("n_ctx",)),
    "bert": Family(_EMBEDDINGS, "max_position_embeddings", 0, False),
    "roberta": Family(_EMBEDDINGS, "max_position_embeddings", 2, True),
    "opt": Family("decoder.embed_positions.weight", "max_position_embeddings", 2, False),
    "distilbert": Family(_EMBEDDINGS, "max_position_embeddings", 0, False),
}


@dataclass
class Extension:
    """What was done: kind (``posemb`` or a model_type), sizes in positions, notes."""

    kind: str
    old: int
    new: int
    notes: list[str]


def extend(
    src: str | Path,
    dst: str | Path,
    to: int,
    method: str,
    *,
    allow_shrink: bool = False,
    force: bool = False,
    seed: int = 0,
) -> Extension:
    """Write ``src`` with its table grown (or cropped) to ``to`` positions into ``dst``.

    Args:
        src: a posemb run directory or a local Hugging Face model directory (never modified).
        dst: the new directory (refused if it exists and is not empty, unless ``force``).
        to: positions the result serves (reserved offset rows not counted).
        method: one of ``posemb.EXTEND_METHODS``.
        allow_shrink: allow ``to`` below the current size (rows are cropped).
        seed: seed of the fresh rows of ``method="random"``.
    """
    src = require_dir(Path(src), "SRC")
    if isinstance(to, bool) or not isinstance(to, int) or to < 1:
        raise ValueError(f"--to must be a positive integer, got {to!r}")
    config_path = inside(src, "config.json")
    config = read_json(config_path) if config_path.exists() else None
    if config is None:
        raise FileNotFoundError(
            f"{str(src)!r} has no config.json: it is neither a posemb run nor a Hugging Face model"
        )
    generator = torch.Generator().manual_seed(seed)
    if "model_type" not in config:
        if not isinstance(config.get("model"), dict):
            raise ValueError(
                f"{str(config_path)!r} has neither 'model_type' (a Hugging Face model) nor "
                "'model' settings (a posemb run)"
            )
        return _extend_run(src, dst, to, method, allow_shrink, force, generator)
    return _extend_hf(src, config, dst, to, method, allow_shrink, force, generator)


def _check_size(old: int, to: int, allow_shrink: bool) -> None:
    if to < old and not allow_shrink:
        raise ValueError(
            f"--to {to} is smaller than the current {old} positions; pass --allow-shrink to crop the table"
        )


# -- posemb runs -------------------------------------------------------------------------------------
def _extend_run(src: Path, dst, to, method, allow_shrink, force, generator) -> Extension:
    cfg = read_config(src)
    if cfg.model.position != "learned":
        raise ValueError(
            f"{str(src)!r} uses model.position={cfg.model.position!r}, which has no table to extend "
            "(only 'learned' does)"
        )
    opts = cfg.model.position_options
    offset, old = int(opts.get("offset", 0)), cfg.model.max_positions
    _check_size(old, to, allow_shrink)
    weights = inside(src, SAFETENSORS)
    tensors, _ = read_safetensors(weights)
    if "pos.weight" not in tensors:
        raise ValueError(f"{weights} has no 'pos.weight' tensor: it is not this run's checkpoint")
    tensors["pos.weight"] = extend_table(
        tensors["pos.weight"],
        offset + to,
        method,
        offset,
        std=float(opts.get("std", 0.02)),
        generator=generator,
    )
    model_cfg = cfg.model.replace(max_positions=to)
    train = replace(cfg.train, seq_len=min(cfg.train.seq_len, to))  # a cropped table trains shorter
    new_cfg = replace(cfg, model=model_cfg, train=train)
    model = Transformer(model_cfg)
    load_weights(model, tensors, str(weights))
    tokenizer = load_tokenizer(src)
    with output_dir(dst, force=force, src=src) as out:
        write_run(out, model, new_cfg, tokenizer)
    notes = [
        "the new run starts at step 0 with a fresh optimizer; fine-tune it with "
        f"`posemb train --resume {dst} --set train.max_steps=...` (metrics were not copied)"
    ]
    return Extension("posemb", old, to, notes)


# -- Hugging Face directories --------------------------------------------------------------------------
def _family(config: dict, src: Path, where: str) -> tuple[str, Family, int]:
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or model_type not in FAMILIES:
        raise ValueError(
            f"{str(src)!r} is a {model_type!r} model; posemb extend supports {', '.join(FAMILIES)} "
            "(learned absolute tables) and posemb runs"
        )
    family = FAMILIES[model_type]
    offset = family.offset
    if model_type == "roberta":  # positions start after padding_idx
        offset = config_int(config, "pad_token_id", where, minimum=0, default=1) + 1
    if model_type == "distilbert" and config.get("sinusoidal_pos_embds", False):
        raise ValueError(
            f"{str(src)!r} uses fixed sinusoidal positions (sinusoidal_pos_embds=true), not a learned table"
        )
    return model_type, family, offset


def _find_table(src: Path, files: list[str], suffix: str) -> tuple[str, str]:
    """(file, key) of the one tensor named ``suffix`` or ``PREFIX.suffix``."""
    found = []
    for name in files:
        found += [
            (name, k) for k in tensor_names(src / name) if k == suffix or k.endswith("." + suffix)
        ]
    if len(found) != 1:
        what = (
            "no tensor" if not found else f"{len(found)} tensors ({', '.join(k for _, k in found)})"
        )
        raise ValueError(
            f"{str(src)!r}: expected one position table named [PREFIX.]{suffix}, found {what}"
        )
    return found[0]


def _fix_buffers(tensors: dict[str, torch.Tensor], old_len: int, new_len: int, gpt2: bool) -> bool:
    """Resize length-dependent buffers in place; True if anything changed."""
    changed = False
    for key in list(tensors):
        t = tensors[key]
        leaf = key.rsplit(".", 1)[-1]
        if (
            leaf in ("position_ids", "token_type_ids")
            and t.dim() in (1, 2)
            and t.shape[-1] == old_len
        ):
            base = torch.arange(new_len) if leaf == "position_ids" else torch.zeros(new_len)
            tensors[key] = base.to(t.dtype).reshape(*t.shape[:-1], new_len)
            changed = True
        elif gpt2 and key.endswith(".attn.bias") and t.dim() == 4:  # stale causal mask
            del tensors[key]
            changed = True
    return changed


def _extend_hf(
    src: Path, config: dict, dst, to, method, allow_shrink, force, generator
) -> Extension:
    where = str(src / "config.json")
    model_type, family, offset = _family(config, src, where)
    stored = config_int(
        config, family.limit, where, minimum=offset + 1 if family.counts_offset else 1
    )
    old = stored - offset if family.counts_offset else stored
    new_stored = to + offset if family.counts_offset else to
    _check_size(old, to, allow_shrink)
    files = weight_files(src)  # refuses pickled-only directories
    table_file, table_key = _find_table(src, files, family.table)

    notes: list[str] = []
    skip = {"config.json", TOKENIZER_CONFIG, SAFETENSORS_INDEX, *files, *OTHER_WEIGHTS}
    copied, skipped = files_to_copy(src, skip)  # refuses links leaving src before any write
    with output_dir(dst, force=force, src=src) as out:
        removed: set[str] = set()
        for name in files:
            tensors, metadata = read_safetensors(src / name)
            before = set(tensors)
            changed = _fix_buffers(tensors, stored, new_stored, model_type == "gpt2")
            if name == table_file:
                table = tensors[table_key]
                if table.shape[0] != offset + old:
                    raise ValueError(
                        f"{table_key} has {table.shape[0]} rows but {family.limit}={stored} implies "
                        f"{offset + old} ({offset} reserved + {old} positions)"
                    )
                std_key = "initializer_range" if "initializer_range" in config else "init_std"
                std = config_float(config, std_key, where, default=0.02)
                tensors[table_key] = extend_table(
                    table, offset + to, method, offset, std=std, generator=generator
                )
                changed = True
            removed |= before - set(tensors)
            if changed:
                write_safetensors(out / name, tensors, metadata)
            else:  # a shard without the table or buffers: byte-for-byte copy
                copy_file(src / name, out / name)
        if inside(src, SAFETENSORS_INDEX).is_file():
            _write_index(src, out, files, removed)
        for key in (family.limit, *family.also):
            if key in config:
                config[key] = new_stored
        write_json(out / "config.json", config)
        if inside(src, TOKENIZER_CONFIG).is_file():
            tok_cfg = read_json(src / TOKENIZER_CONFIG)
            for key in ("model_max_length", "max_len"):
                if isinstance(tok_cfg.get(key), int) and tok_cfg[key] < _NO_LIMIT:
                    tok_cfg[key] = to
            write_json(out / TOKENIZER_CONFIG, tok_cfg)
        for path in copied:
            copy_file(path, out / path.name)
    if removed:
        notes.append(
            f"dropped {len(removed)} stale buffer(s) transformers rebuilds (e.g. {sorted(removed)[0]})"
        )
    left = [n for n in OTHER_WEIGHTS if (src / n).is_file()]
    if left:
        notes.append(f"not copied (old, unextended weights): {', '.join(left)}")
    if skipped:
        notes.append(f"folders not copied: {', '.join(skipped)}")
    return Extension(model_type, old, to, notes)


def _write_index(src: Path, out: Path, files: list[str], removed: set[str]) -> None:
    """The shard index with the new total size and without removed keys."""
    index = read_json(src / SAFETENSORS_INDEX)
    index["weight_map"] = {k: v for k, v in index["weight_map"].items() if k not in removed}
    total = 0
    for name in files:
        with safe_open(str(out / name), framework="pt") as f:
            for k in f.keys():
                t = f.get_slice(k)
                total += _numel(t.get_shape()) * _itemsize(t.get_dtype())
    index.setdefault("metadata", {})["total_size"] = total
    write_json(out / SAFETENSORS_INDEX, index)


def _numel(shape: list[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


_ITEMSIZE = {
    "F64": 8,
    "I64": 8,
    "U64": 8,
    "F32": 4,
    "I32": 4,
    "U32": 4,
    "F16": 2,
    "BF16": 2,
    "I16": 2,
    "U16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
}


def _itemsize(dtype: str) -> int:
    return _ITEMSIZE.get(dtype, 4)
