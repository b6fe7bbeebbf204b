"""Find a learned position table: in a posemb run, a safetensors file or a Hugging Face
directory.

Only safetensors are read (:mod:`posemb.files`); nothing is ever unpickled, so a directory
holding only ``pytorch_model.bin`` is refused with the way to convert it
(:func:`posemb.interop.hf_files.refuse_other_weights`). Every file of a directory is read
through the one path-safety rule (:func:`posemb.runs.run_file`,
:func:`posemb.interop.hf_files.weight_files`: the shard names of an index, and links, must
stay inside the directory).

- posemb run: the model's table (``Transformer.POSITION_TABLE_KEY``) from
  ``model.safetensors``, checked against the content hash recorded in it, the offset from
  ``model.position_options``, and the exact initial table, recreated by seeding
  ``train.seed`` and building the model as the trainer does.
- safetensors file: the tensor named by ``--key``, else the unique 2-D tensor whose name
  contains ``pos``.
- Hugging Face directory: the position table of a family of the one table
  :data:`posemb.interop.families.FAMILIES` (the one ``posemb extend`` grows), with its
  reserved rows (RoBERTa: ``padding_idx + 1``; OPT, BART: 2). A model with several tables
  (an encoder's and a decoder's) needs ``--key``; another model type, the unique 2-D
  tensor named ``*pos*``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..files import read_json, read_tensor, tensor_shapes
from ..interop.families import FAMILIES, matches, table_sizes
from ..interop.hf_files import PICKLE_SUFFIXES, refuse_other_weights, weight_files
from ..interop.vision import VISION_FAMILIES
from ..interop.vision import sizes as vision_sizes
from ..model import Transformer
from ..positional.checks import closest
from ..runs import (
    CONFIG_FILE,
    MODEL_FILE,
    folder_kind,
    read_config,
    read_lineage,
    run_file,
    step_reached,
    trained_positions,
)
from ..runs.weights import read_tensors

RUN_KEY = Transformer.POSITION_TABLE_KEY
# a Hugging Face Hub name: "name" or "owner/name", no absolute or relative filesystem path
HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


@dataclass
class LoadedTable:
    """A position table and what is known about it.

    Attributes:
        table: ``[offset + n, d]`` the whole table as stored (float32 or wider).
        offset: reserved leading rows (not positions; excluded from the diagnostics).
        key: the tensor's name.
        source: the path given.
        kind: ``"posemb run"``, ``"safetensors file"`` or ``"Hugging Face <model_type>"``.
        initial: the exact initial table (same shape) when known (posemb runs), else None.
        init_note: how ``initial`` was obtained, or why it is unknown.
        context: facts of a posemb run (``seq_len``, ``positions``, ``causal``, ``seed``,
            ``max_positions``, ``step``) used to explain the result.
        grid: ``(H, W)`` when the rows after ``offset`` are a vision model's patches
            (row-major), else None.
        name: what to call the table in a title (:func:`display_name`): never a local path.
    """

    table: Tensor
    offset: int
    key: str
    source: Path
    kind: str
    initial: Tensor | None = None
    init_note: str = ""
    context: dict[str, Any] = field(default_factory=dict)
    grid: tuple[int, int] | None = None
    name: str = ""


def display_name(path: Path, config: dict[str, Any] | None = None, scheme: str = "") -> str:
    """The model's name for a report's title, never a local absolute path.

    A Hugging Face folder: its config's ``_name_or_path`` when that is a Hub name
    (``owner/name``), else the folder's name; a posemb run: the run folder's name and its
    scheme; a file: its name (with its folder's for a generic ``model.safetensors``)."""
    name_or_path = str((config or {}).get("_name_or_path") or "")
    if HUB_NAME.fullmatch(name_or_path):
        return name_or_path
    where = path.resolve()
    if scheme:
        return f"{where.name} ({scheme})"
    if where.is_file() and where.name == MODEL_FILE:
        return f"{where.parent.name}/{where.name}"
    return where.name


def load_table(
    source: str | Path,
    key: str | None = None,
    offset: int | None = None,
    grid: tuple[int, int] | None = None,
) -> LoadedTable:
    """Load the position table at ``source`` (see the module doc for what is accepted).

    Raises:
        FileNotFoundError: ``source`` does not exist.
        ValueError: no table, an ambiguous one, a non-learned run, pickle-only weights, a
            bad ``offset``; the message names what was found and how to choose.
    """
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(
            f"{str(path)!r} does not exist; pass a posemb run directory, a .safetensors file or a "
            "local Hugging Face model directory"
        )
    if not path.is_dir():
        if path.suffix in PICKLE_SUFFIXES:
            raise ValueError(
                f"{path} is a pickle checkpoint; posemb reads safetensors only and never unpickles "
                "weights (convert it: save_pretrained(DIR) writes model.safetensors)"
            )
        loaded = _from_file(path, key)
    else:
        kind = folder_kind(path, fix="pass the .safetensors file itself with --key NAME")
        if kind == "hf":
            loaded = _from_hf(path, read_json(run_file(path, CONFIG_FILE)), key)
        elif kind == "run":
            loaded = _from_run(path, key)
        elif run_file(path, MODEL_FILE).exists():
            loaded = _from_file(path / MODEL_FILE, key)
        else:
            refuse_other_weights(path)
            raise ValueError(
                f"{path} holds no config.json and no model.safetensors; pass a posemb run, a "
                "Hugging Face model directory or a .safetensors file"
            )
    if offset is not None:
        loaded.offset = offset
    if grid is not None:
        loaded.grid = tuple(grid)
    rows = loaded.table.shape[0]
    if loaded.grid is not None and loaded.offset + loaded.grid[0] * loaded.grid[1] != rows:
        H, W = loaded.grid
        raise ValueError(
            f"--grid {H}x{W} with offset {loaded.offset} needs {loaded.offset + H * W} rows; "
            f"{loaded.key} has {rows}"
        )
    if not 0 <= loaded.offset <= rows - 2:
        raise ValueError(
            f"--offset {loaded.offset} leaves fewer than 2 positions in {loaded.key} "
            f"({rows} rows); choose an offset from 0 to {rows - 2}"
        )
    return loaded


# -- safetensors ----------------------------------------------------------------------------------
def _as_float(t: Tensor) -> Tensor:
    """A table as float32 (or float64, if stored so): the diagnostics' precision."""
    return t if t.dtype == torch.float64 else t.float()


def guess_table_key(shapes: dict[str, tuple[int, ...]], where: str) -> str:
    """The unique 2-D tensor whose name contains ``pos`` (case-insensitive), or a ValueError
    listing the candidates."""
    found = [k for k, s in shapes.items() if len(s) == 2 and "pos" in k.lower()]
    if len(found) == 1:
        return found[0]
    if not found:
        raise ValueError(
            f"{where} has no 2-D tensor with 'pos' in its name; choose the table with --key NAME "
            f"(2-D tensors: {_names(k for k, s in shapes.items() if len(s) == 2)})"
        )
    raise ValueError(
        f"{where} has {len(found)} candidate position tables: {_names(found)}; "
        "choose one with --key NAME"
    )


def _check_key(shapes: dict[str, tuple[int, ...]], key: str, where: str) -> None:
    if key not in shapes:
        two_d = [k for k, s in shapes.items() if len(s) == 2]
        near = closest(key, list(shapes))
        hint = f" Did you mean {near!r}?" if near else ""
        raise ValueError(f"{where} has no tensor {key!r}.{hint} 2-D tensors: {_names(two_d)}")
    if len(shapes[key]) != 2:
        raise ValueError(
            f"{key!r} in {where} has shape {shapes[key]}; a position table is 2-D "
            "[positions, width]"
        )


def _names(names, limit: int = 12) -> str:
    names = list(names)
    more = f", … ({len(names) - limit} more)" if len(names) > limit else ""
    return (", ".join(names[:limit]) + more) if names else "none"


def _from_file(path: Path, key: str | None) -> LoadedTable:
    shapes = tensor_shapes(path)
    key = key or guess_table_key(shapes, str(path))
    _check_key(shapes, key, str(path))
    return LoadedTable(
        _as_float(read_tensor(path, key)),
        0,
        key,
        path,
        "safetensors file",
        init_note="initial values unknown: untrained rows found by a heuristic",
        name=display_name(path),
    )


# -- posemb runs ---------------------------------------------------------------------------------
def _from_run(run_dir: Path, key: str | None) -> LoadedTable:
    cfg = read_config(run_dir)
    scheme = cfg.model.position
    if key is None and not cfg.model.has_position_table:
        raise ValueError(
            f"analyze needs a learned table; {run_dir} uses {scheme} (no position table to "
            "analyze). Train with model.position=learned, or name a tensor with --key"
        )
    weights = run_file(run_dir, MODEL_FILE)
    tensors = read_tensors(weights)  # checked against the hash recorded in the file
    key = key or RUN_KEY
    _check_key({k: tuple(t.shape) for k, t in tensors.items()}, key, str(weights))
    table = _as_float(tensors[key])
    tc = cfg.train
    context = {
        "scheme": scheme,
        "seq_len": tc.seq_len,
        "positions": tc.positions,
        "causal": cfg.model.causal,
        "seed": tc.seed,
        "max_positions": cfg.model.max_positions,
        "init": cfg.model.position_options.get("init", "normal"),
        "step": step_reached(run_dir),
        # leading positions its training sequences (and its sources') reached: the rest are
        # untrained whatever extension put in them
        "trained_positions": trained_positions(cfg, read_lineage(run_dir)),
    }
    initial, note = _initial_table(cfg, key, table.shape)
    return LoadedTable(
        table,
        int(cfg.model.position_options.get("offset", 0)),
        key,
        run_dir,
        "posemb run",
        initial=initial,
        init_note=note,
        context=context,
        name=display_name(run_dir, scheme=scheme),
    )


def _initial_table(cfg, key: str, shape: torch.Size) -> tuple[Tensor | None, str]:
    """The run's exact initial table: the trainer seeds ``train.seed`` then builds the model."""
    with torch.random.fork_rng(devices=[]):  # leave the caller's RNG alone
        torch.manual_seed(cfg.train.seed)
        model = Transformer(cfg.model)
    initial = model.state_dict().get(key)
    if initial is None or initial.shape != shape:
        return (
            None,
            f"the initial {key!r} could not be recreated: untrained rows found by a heuristic",
        )
    return (
        initial.detach().float(),
        f"exact: initial table recreated from train.seed={cfg.train.seed}",
    )


# -- Hugging Face --------------------------------------------------------------------------------
def _from_hf(model_dir: Path, config: dict[str, Any], key: str | None) -> LoadedTable:
    model_type = str(config["model_type"])
    if model_type in VISION_FAMILIES and key is None:
        return _from_vision(model_dir, config, model_type)
    files: dict[str, Path] = {}  # tensor name -> the file holding it
    shapes: dict[str, tuple[int, ...]] = {}
    for name in weight_files(model_dir):  # refuses pickle-only directories and unsafe names
        found = tensor_shapes(model_dir / name)
        shapes.update(found)
        files.update(dict.fromkeys(found, model_dir / name))
    where = f"{model_dir} ({model_type})"
    family = FAMILIES.get(model_type)
    if key is None and family is None:
        key = guess_table_key(shapes, f"{where}, a model type analyze has no rule for,")
    elif key is None:
        found = [k for t in family.tables for k in shapes if matches(k, t.key)]
        if not found:
            names = " or ".join(f"*{t.key}" for t in family.tables)
            raise ValueError(
                f"{where} has no tensor named {names}; choose the table with --key NAME "
                f"(2-D tensors: {_names(k for k, s in shapes.items() if len(s) == 2)})"
            )
        if len(found) > 1:
            raise ValueError(
                f"{where} has {len(found)} candidate position tables: {_names(found)}; "
                "choose one with --key NAME"
            )
        key = found[0]
    _check_key(shapes, key, where)
    offset = 0
    for table in family.tables if family is not None else ():
        if matches(key, table.key):  # its config read as extend reads it (docs/HF.md)
            where = f"{model_dir / 'config.json'}"
            offset = table_sizes(table, config, where, key, shapes[key][0])[1]
    return LoadedTable(
        _as_float(read_tensor(files[key], key)),
        offset,
        key,
        model_dir,
        f"Hugging Face {model_type}",
        init_note="initial values unknown: untrained rows found by a heuristic",
        context={"model_type": model_type},
        name=display_name(model_dir, config),
    )


def _from_vision(model_dir: Path, config: dict[str, Any], model_type: str) -> LoadedTable:
    """A vision model's 2-D table: its prefix rows (class, distillation) are the offset."""
    family = VISION_FAMILIES[model_type]
    where = f"{model_dir / CONFIG_FILE}"
    _, image, patch = vision_sizes(config, family, where)
    files: dict[str, Path] = {}
    for name in weight_files(model_dir):
        files.update(dict.fromkeys(tensor_shapes(model_dir / name), model_dir / name))
    found = [k for k in files if matches(k, family.key)]
    if len(found) != 1:
        raise ValueError(f"{where}: expected one table named [PREFIX.]{family.key}, found {found}")
    table = read_tensor(files[found[0]], found[0])
    table = table[0] if table.dim() == 3 else table  # [1, P + N, d] parameters
    side = image // patch
    return LoadedTable(
        _as_float(table),
        family.prefix,
        found[0],
        model_dir,
        f"Hugging Face {model_type}",
        init_note="initial values unknown: untrained rows found by a heuristic",
        context={"model_type": model_type, "image_size": image, "patch_size": patch},
        grid=(side, side),
        name=display_name(model_dir, config),
    )
