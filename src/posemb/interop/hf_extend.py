"""``posemb extend``: grow (or crop) the position table of a posemb run or a local Hugging
Face model directory, updating everything that has to agree with its size.

A posemb run's model grows its own table (:meth:`posemb.Transformer.extend_positions`).
Which Hugging Face families are supported, where their tables live and how their reserved
rows are counted: the one table :data:`posemb.interop.families.FAMILIES`. ``N`` (``--to
N``) always counts the positions the model can serve; reserved rows are copied exactly by
every method. Every table of a row grows (BART: the encoder's and the decoder's).

Also updated: ``position_ids`` / ``token_type_ids`` buffers stored in the weights (older
checkpoints); the limits repeated in tokenizer, sentence-transformers and generation files
(:mod:`.limits`); stale ``[1, 1, N, N]`` causal-mask buffers (rebuilt by transformers) are
dropped. Every other file is copied unchanged (a link as the file it points to; a link
leaving ``src`` is refused, see :func:`posemb.data.inside`); other weight formats are never
copied.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import torch

from ..data import inside, load_tokenizer
from ..files import read_json, read_safetensors, tensor_shapes, write_json, write_safetensors
from ..positional import EXTEND_METHODS, TABLE_SCHEMES, extend_table
from ..positional.checks import check_positive_int
from ..runs import CONFIG_FILE, folder_kind, load_model, read_config, write_initial_checkpoint
from .families import FAMILIES, Family, family_of, matches, positions_served, table_sizes
from .hf_files import OTHER_WEIGHTS, SAFETENSORS_INDEX, config_float, require_dir, weight_files
from .limits import read_limit_files, update_limits
from .metadata import HF_METADATA
from .outdir import copy_file, files_to_copy, output_dir
from .vision import VISION_FAMILIES, VisionExtension, extend_vision

__all__ = ["FAMILIES", "Extension", "extend", "extend_tensors"]


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
    to: int | None = None,
    method: str | None = None,
    *,
    image_size: int | None = None,
    antialias: bool | None = None,
    allow_shrink: bool = False,
    force: bool = False,
    seed: int = 0,
) -> Extension | VisionExtension:
    """Write ``src`` with its table grown (or cropped) to ``to`` positions into ``dst``; a
    vision model's 2-D table resampled for ``image_size`` px (:mod:`.vision`).

    Args:
        src: a posemb run directory or a local Hugging Face model directory (never modified).
        dst: the new directory (refused if it exists and is not empty, unless ``force``).
        to: positions the result serves (reserved offset rows not counted).
        method: one of ``posemb.EXTEND_METHODS``; with ``image_size``, one of
            ``posemb.GRID_METHODS`` (default: the family's own run-time resampling).
        image_size: a vision model's new image size in pixels (instead of ``to``).
        antialias: with ``image_size``: resample with antialiasing (default: as the family).
        allow_shrink: allow ``to`` below the current size (rows are cropped).
        seed: seed of the fresh rows of ``method="random"`` (``pad-random``).
    """
    src = require_dir(Path(src), "SRC")
    kind = folder_kind(src)
    if kind is None:
        raise FileNotFoundError(
            f"{str(src)!r} has no config.json: it is neither a posemb run nor a Hugging Face model"
        )
    generator = torch.Generator().manual_seed(seed)
    config = read_json(inside(src, CONFIG_FILE)) if kind == "hf" else None
    if image_size is not None:
        if config is None:
            raise ValueError(
                "--image-size resamples a vision model's grid of patches; a posemb run's table "
                "is one-dimensional: use --to N --method METHOD"
            )
        return extend_vision(
            src,
            config,
            dst,
            image_size,
            method,
            antialias=antialias,
            force=force,
            seed=seed,
            allow_shrink=allow_shrink,
        )
    model_type = config.get("model_type") if config is not None else None
    if isinstance(model_type, str) and model_type in VISION_FAMILIES:
        raise ValueError(
            f"{str(src)!r} is a {config['model_type']!r} vision model: its table is a grid of "
            "image patches; give the new image size: posemb extend SRC DST --image-size N"
        )
    if to is None or method is None:
        raise ValueError(
            "give the new size and how rows are made: --to N --method METHOD, METHOD one of "
            + ", ".join(EXTEND_METHODS)
        )
    check_positive_int("--to", to)
    if kind == "run":
        return _extend_run(src, dst, to, method, allow_shrink, force, generator)
    return _extend_hf(src, config, dst, to, method, allow_shrink, force, generator)


def _check_size(old: int, to: int, allow_shrink: bool) -> None:
    if to < old and not allow_shrink:
        raise ValueError(
            f"--to {to} is smaller than the current {old} positions; pass --allow-shrink to "
            "crop the table"
        )


# -- posemb runs ---------------------------------------------------------------------------------
def _extend_run(src: Path, dst, to, method, allow_shrink, force, generator) -> Extension:
    """The run's model grows its own table; the new run starts at step 0."""
    cfg = read_config(src)
    if not cfg.model.has_position_table:
        with_table = ", ".join(repr(name) for name in TABLE_SCHEMES)
        raise ValueError(
            f"{str(src)!r} uses model.position={cfg.model.position!r}, which has no table to "
            f"extend (only {with_table} does)"
        )
    old = cfg.model.max_positions
    _check_size(old, to, allow_shrink)
    model, _ = load_model(src, cfg=cfg)  # the weights checked against their recorded hash
    new = model.extend_positions(to, method, generator=generator)
    train = replace(cfg.train, seq_len=min(cfg.train.seq_len, to))  # a cropped table trains shorter
    new_cfg = replace(cfg, model=new.config, train=train)
    tokenizer = load_tokenizer(src)
    with output_dir(dst, force=force, src=src) as out:
        write_initial_checkpoint(out, new, new_cfg, tokenizer)
        if inside(src, HF_METADATA).is_file():  # an imported run: its token ids, dtype, ...
            copy_file(src / HF_METADATA, out / HF_METADATA)
    notes = [
        "the new run starts at step 0 with a fresh optimizer; fine-tune it with "
        f"`posemb train --resume {dst} --set train.max_steps=...` (metrics were not copied)"
    ]
    return Extension("posemb", old, to, notes)


# -- Hugging Face directories --------------------------------------------------------------------
@dataclass
class _Grown:
    """One table of a family in one directory: where it is and its sizes."""

    file: str  # the weights file holding it
    key: str  # its full tensor name
    limit: str  # its config field
    also: tuple[str, ...]
    offset: int  # reserved rows
    stored: int  # the config value now
    old: int  # positions now
    new_stored: int  # the config value to write


def _find_table(src: Path, files: list[str], suffix: str) -> tuple[str, str, int]:
    """(file, key, rows) of the one tensor named ``suffix`` or ``PREFIX.suffix``."""
    found = []
    for name in files:
        shapes = tensor_shapes(src / name)
        found += [(name, k, shapes[k][0]) for k in shapes if matches(k, suffix) and shapes[k]]
    if len(found) != 1:
        what = (
            "no tensor"
            if not found
            else f"{len(found)} tensors ({', '.join(k for _, k, _ in found)})"
        )
        raise ValueError(
            f"{str(src)!r}: expected one position table named [PREFIX.]{suffix}, found {what}"
        )
    return found[0]


def _tables(src: Path, config: dict, family: Family, files: list[str], to: int) -> list[_Grown]:
    where = str(src / CONFIG_FILE)
    grown = []
    for table in family.tables:
        positions_served(table, config, where)  # the config first: its errors name it
        file, key, rows = _find_table(src, files, table.key)
        sizes = table_sizes(table, config, where, key, rows)
        grown.append(_table(table, sizes, to, file, key))
    return grown


def _table(table, sizes: tuple[int, int, int], to: int, file: str, key: str) -> _Grown:
    stored, offset, old = sizes
    new_stored = to + offset if table.counts_offset else to
    return _Grown(file, key, table.limit, table.also, offset, stored, old, new_stored)


def _set_limits(config: dict, grown: list[_Grown]) -> None:
    """The new size in every ``config.json`` field that holds it."""
    for g in grown:
        for key in (g.limit, *g.also):
            if key in config:
                config[key] = g.new_stored


def extend_tensors(
    tensors: dict[str, torch.Tensor],
    config: dict,
    where: str,
    to: int,
    method: str,
    *,
    allow_shrink: bool = False,
    generator: torch.Generator | None = None,
) -> int:
    """:func:`extend` in memory: every table of the family in ``tensors`` (a whole model's
    weights, changed in place) grown to ``to`` positions, stale length-dependent buffers fixed
    or dropped, and the size fields of ``config`` (changed in place) rewritten. Returns the
    positions the model served before. Reserved rows are copied exactly, as on disk."""
    _, family = family_of(config, where)
    grown = []
    for table in family.tables:
        positions_served(table, config, where)
        found = [k for k in tensors if matches(k, table.key)]
        if len(found) != 1:
            raise ValueError(
                f"{where}: expected one position table named [PREFIX.]{table.key}, found "
                f"{len(found)}"
            )
        sizes = table_sizes(table, config, where, found[0], tensors[found[0]].shape[0])
        grown.append(_table(table, sizes, to, "", found[0]))
    for g in grown:
        _check_size(g.old, to, allow_shrink)
    _fix_buffers(tensors, grown[0].stored, grown[0].new_stored, family.masks)
    for g in grown:
        _grow(tensors, g, config, where, method, to, generator)
    _set_limits(config, grown)
    return grown[0].old


def _fix_buffers(
    tensors: dict[str, torch.Tensor], old_len: int, new_len: int, masks: tuple[str, ...]
) -> bool:
    """Resize length-dependent buffers in place; True if anything changed.

    ``position_ids`` ``[..., old_len]`` keeps its first value (0, or an offset) and counts
    on; ``token_type_ids`` becomes zeros; a causal mask named by ``masks`` is dropped.
    """
    changed = False
    for key in list(tensors):
        t = tensors[key]
        leaf = key.rsplit(".", 1)[-1]
        if (
            leaf in ("position_ids", "token_type_ids")
            and t.dim() in (1, 2)
            and t.shape[-1] == old_len
        ):
            start = int(t.reshape(-1)[0]) if leaf == "position_ids" and t.numel() else 0
            base = torch.arange(start, start + new_len) if leaf == "position_ids" else None
            base = torch.zeros(new_len) if base is None else base
            tensors[key] = base.to(t.dtype).reshape(*t.shape[:-1], new_len)
            changed = True
        elif t.dim() == 4 and key.endswith(masks):  # stale causal mask
            del tensors[key]
            changed = True
    return changed


def _grow(tensors, g: _Grown, config: dict, where: str, method: str, to: int, generator) -> None:
    table = tensors[g.key]
    if table.shape[0] != g.offset + g.old:
        raise ValueError(
            f"{g.key} has {table.shape[0]} rows but {g.limit}={g.stored} implies "
            f"{g.offset + g.old} ({g.offset} reserved + {g.old} positions)"
        )
    std_key = "initializer_range" if "initializer_range" in config else "init_std"
    std = config_float(config, std_key, where, default=0.02)
    tensors[g.key] = extend_table(
        table, g.offset + to, method, g.offset, std=std, generator=generator
    )


def _extend_hf(
    src: Path, config: dict, dst, to, method, allow_shrink, force, generator
) -> Extension:
    """Grow every table of the family, rewrite the limits, copy the rest (module doc)."""
    where = str(src / CONFIG_FILE)
    model_type, family = family_of(config, where)
    files = weight_files(src)  # refuses pickled-only directories
    grown = _tables(src, config, family, files, to)
    for g in grown:
        _check_size(g.old, to, allow_shrink)
    first = grown[0]
    limit_files = read_limit_files(src, config)
    _set_limits(config, grown)
    rewritten, notes = update_limits(limit_files, first.old, to)
    rewritten.add(CONFIG_FILE)

    skip = {SAFETENSORS_INDEX, *rewritten, *files, *OTHER_WEIGHTS}
    copied, skipped = files_to_copy(src, skip)  # refuses links leaving src before any write
    grow = partial(_grow, config=config, where=where, method=method, to=to, generator=generator)
    with output_dir(dst, force=force, src=src) as out:
        removed, total = _write_weights(src, out, files, grown, family, grow)
        if inside(src, SAFETENSORS_INDEX).is_file():
            _write_index(src, out, removed, total)
        for name in sorted(rewritten):
            write_json(out / name, limit_files[name])
        for path in copied:
            copy_file(path, out / path.name)
    return Extension(model_type, first.old, to, notes + _hf_notes(src, removed, skipped))


def _write_weights(
    src: Path, out: Path, files: list[str], grown: list[_Grown], family: Family, grow
) -> tuple[set[str], int]:
    """Each weights file into ``out``, its tables grown by ``grow`` and its buffers fixed.

    Returns:
        The names of the tensors dropped (stale buffers), and the bytes of every tensor
        written (the index's ``total_size``).
    """
    first = grown[0]
    removed: set[str] = set()
    total = 0
    for name in files:
        tensors, metadata = read_safetensors(src / name)
        before = set(tensors)
        changed = _fix_buffers(tensors, first.stored, first.new_stored, family.masks)
        for g in grown:
            if g.file == name:
                grow(tensors, g)
                changed = True
        removed |= before - set(tensors)
        total += sum(t.numel() * t.element_size() for t in tensors.values())
        if changed:
            write_safetensors(out / name, tensors, metadata)
        else:  # a shard without a table or buffers: byte-for-byte copy
            copy_file(src / name, out / name)
    return removed, total


def _write_index(src: Path, out: Path, removed: set[str], total: int) -> None:
    """The shard index with the new total size (bytes) and without removed keys."""
    index = read_json(src / SAFETENSORS_INDEX)
    index["weight_map"] = {k: v for k, v in index["weight_map"].items() if k not in removed}
    index.setdefault("metadata", {})["total_size"] = total
    write_json(out / SAFETENSORS_INDEX, index)


def _hf_notes(src: Path, removed: set[str], skipped: list[str]) -> list[str]:
    """What the user should know about what was dropped or not copied."""
    notes = []
    if removed:
        notes.append(
            f"dropped {len(removed)} stale buffer(s) transformers rebuilds (e.g. "
            f"{sorted(removed)[0]})"
        )
    left = [n for n in OTHER_WEIGHTS if (src / n).is_file()]
    if left:
        notes.append(f"not copied (old, unextended weights): {', '.join(left)}")
    if skipped:
        notes.append(f"folders not copied: {', '.join(skipped)}")
    return notes
