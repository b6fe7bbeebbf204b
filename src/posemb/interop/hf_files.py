"""Hugging Face model folders in: their config fields, and safetensors weights only.

Every file is read from its folder through :func:`posemb.data.inside`: a shard name in
``model.safetensors.index.json`` that is absolute or has ``..``, or any file that is a
link leaving the folder, is refused with one line before anything is read or written.
Weights are read from safetensors only (one file or an index of shards): nothing is ever
unpickled, so a directory with only ``pytorch_model.bin`` is refused with the fix. Numbers
in a ``config.json`` are checked by :func:`config_int` / :func:`config_float` (a null, a
string, a fraction or a negative names the field). File reading and writing itself lives in
:mod:`posemb.files`; a posemb run's files in :mod:`posemb.runs`; output folders in
:mod:`.outdir`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from ..data.paths import inside
from ..files import read_json, read_safetensors
from ..positional.checks import is_finite_number, is_int
from ..runs.layout import CONFIG_FILE, MODEL_FILE  # the ecosystem's names, a run's too

SAFETENSORS_INDEX = "model.safetensors.index.json"
# Weight files we never read (pickle or other frameworks); never copied to an output either,
# since they would hold the old, unextended weights.
OTHER_WEIGHTS = (
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "tf_model.h5",
    "flax_model.msgpack",
    "model.ckpt.index",
    "rust_model.ot",
)
# a single weights file with one of these suffixes is a pickle (torch.save)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_REQUIRED: Any = object()


def require_dir(path: Path, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist")
    if not path.is_dir():
        raise NotADirectoryError(f"{what} {str(path)!r} is not a directory")
    return path


# -- numbers in config.json ----------------------------------------------------------------------
def config_int(
    config: dict[str, Any], key: str, where: str, *, minimum: int = 1, default: Any = _REQUIRED
) -> Any:
    """``config[key]`` as an integer ``>= minimum``; null, text, fractions and smaller values
    are refused naming the field (``default`` when the key is absent; else it is required)."""
    if key not in config:
        if default is _REQUIRED:
            raise ValueError(f"{where} lacks the field {key!r}; it must be an integer >= {minimum}")
        return default
    value = config[key]
    if not is_int(value) or value < minimum:
        raise ValueError(
            f"{where}: {key}={json.dumps(value)} is not valid; it must be an integer >= {minimum}"
        )
    return value


def config_float(
    config: dict[str, Any],
    key: str,
    where: str,
    *,
    minimum: float = 0.0,
    below: float = math.inf,
    default: Any = _REQUIRED,
) -> Any:
    """``config[key]`` as a finite number in ``[minimum, below)``, else one line naming it."""
    if key not in config:
        if default is _REQUIRED:
            raise ValueError(f"{where} lacks the field {key!r}")
        return default
    value = config[key]
    if not is_finite_number(value) or not minimum <= value < below:
        upper = "" if below == math.inf else f" and below {below:g}"
        raise ValueError(
            f"{where}: {key}={json.dumps(value)} is not valid; it must be a number "
            f">= {minimum:g}{upper}"
        )
    return float(value)


# -- weights -------------------------------------------------------------------------------------
def weight_files(directory: Path) -> list[str]:
    """The safetensors files holding a model's weights (one, or the shards of an index).

    Every name is checked to lie inside ``directory`` (:func:`posemb.data.inside`), so the
    names returned are safe to read there and to write under an output folder.
    """
    directory = Path(directory)
    single = inside(directory, MODEL_FILE)
    if single.is_dir():
        raise IsADirectoryError(f"{single} is a directory, not a safetensors weights file")
    if single.exists():
        return [MODEL_FILE]
    index_path = inside(directory, SAFETENSORS_INDEX)
    if index_path.exists():
        return _shard_names(directory, index_path)
    refuse_other_weights(directory)
    raise FileNotFoundError(f"{str(directory)!r} has no {MODEL_FILE} (nor {SAFETENSORS_INDEX})")


def refuse_other_weights(directory: Path) -> None:
    """The one refusal of a folder whose only weights posemb never reads: pickles
    (``pytorch_model.bin``, ``*.pt``, ...) or other frameworks' files, with the line that
    converts them once. Returns when there are none."""
    directory = Path(directory)
    found = [name for name in OTHER_WEIGHTS if (directory / name).is_file()]
    found += sorted(
        p.name for p in directory.iterdir() if p.suffix in PICKLE_SUFFIXES and p.name not in found
    )
    if found:
        raise ValueError(
            f"{str(directory)!r} has only {', '.join(found)} and no model.safetensors; "
            "posemb never unpickles weights. Convert it once where you trust the file: "
            f"{conversion_hint(directory)}"
        )


def _shard_names(directory: Path, index_path: Path) -> list[str]:
    """The shard files an index names, each checked to lie inside ``directory``."""
    weight_map = read_json(index_path).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise ValueError(f"{index_path} has no weight_map")
    for value in weight_map.values():
        if not isinstance(value, str):  # raises, naming the value
            inside(directory, value, named_by=index_path)
    names = sorted(set(weight_map.values()))
    for name in names:
        inside(directory, name, named_by=index_path)
    return names


def conversion_hint(directory: Path) -> str:
    """The Python line that rewrites a pickled Hugging Face folder as safetensors.

    It names the class of ``config.json``'s ``architectures`` (``BertForMaskedLM``), not
    ``AutoModel``: ``AutoModel`` loads the base model only, and its ``save_pretrained``
    drops the task head (``cls.predictions.*``), silently breaking fill-mask.
    """
    cls = "AutoModel"
    try:
        architectures = read_json(inside(directory, CONFIG_FILE)).get("architectures")
    except (OSError, ValueError):  # no readable config: the base model is all we can name
        architectures = None
    if isinstance(architectures, list) and architectures and isinstance(architectures[0], str):
        if architectures[0].isidentifier():
            cls = architectures[0]
    return (
        f'python -c "from transformers import {cls}; '
        f"{cls}.from_pretrained('SRC').save_pretrained('NEW_DIR', safe_serialization=True)\""
    )


def read_weights(directory: Path) -> dict[str, torch.Tensor]:
    """All tensors of a Hugging Face directory's safetensors weights (shards merged)."""
    tensors: dict[str, torch.Tensor] = {}
    for name in weight_files(directory):
        tensors.update(read_safetensors(Path(directory) / name)[0])
    return tensors
