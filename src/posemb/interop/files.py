"""Directories in: JSON files, their fields, and safetensors weights only.

Every file is read from its folder through :func:`posemb.data.inside`: a shard name in
``model.safetensors.index.json`` that is absolute or has ``..``, or any file that is a link
leaving the folder, is refused with one line before anything is read or written. Weights
are read from safetensors only (one file or an index of shards): nothing is ever unpickled,
so a directory with only ``pytorch_model.bin`` is refused with the fix. Numbers in a
``config.json`` are checked by :func:`config_int` / :func:`config_float` (a null, a string,
a fraction or a negative names the field). Output folders: :mod:`.outdir`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..data.atomic import _umask, atomic_write_text
from ..data.paths import inside

SAFETENSORS = "model.safetensors"
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
_REQUIRED: Any = object()


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; missing, a folder, not UTF-8 or not an object: one line."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory, not a JSON file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing") from None
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
        raise ValueError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


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
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
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
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or not minimum <= value < below:
        upper = "" if below == math.inf else f" and below {below:g}"
        raise ValueError(
            f"{where}: {key}={json.dumps(value)} is not valid; it must be a number >= {minimum:g}"
            f"{upper}"
        )
    return float(value)


# -- weights -------------------------------------------------------------------------------------
def weight_files(directory: Path) -> list[str]:
    """The safetensors files holding a model's weights (one, or the shards of an index).

    Every name is checked to lie inside ``directory`` (:func:`posemb.data.inside`), so the
    names returned are safe to read there and to write under an output folder.
    """
    directory = Path(directory)
    single = inside(directory, SAFETENSORS)
    if single.is_dir():
        raise IsADirectoryError(f"{single} is a directory, not a safetensors weights file")
    if single.exists():
        return [SAFETENSORS]
    index_path = inside(directory, SAFETENSORS_INDEX)
    if index_path.exists():
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
    pickled = [name for name in OTHER_WEIGHTS if (directory / name).is_file()]
    if pickled:
        raise ValueError(
            f"{str(directory)!r} has only {', '.join(pickled)} and no model.safetensors; posemb never "
            f"unpickles weights. Convert it once where you trust the file: {conversion_hint(directory)}"
        )
    raise FileNotFoundError(f"{str(directory)!r} has no {SAFETENSORS} (nor {SAFETENSORS_INDEX})")


def conversion_hint(directory: Path) -> str:
    """The Python line that rewrites a pickled Hugging Face folder as safetensors.

    It names the class of ``config.json``'s ``architectures`` (``BertForMaskedLM``), not
    ``AutoModel``: ``AutoModel`` loads the base model only, and its ``save_pretrained``
    drops the task head (``cls.predictions.*``), silently breaking fill-mask.
    """
    cls = "AutoModel"
    try:
        architectures = read_json(inside(directory, "config.json")).get("architectures")
    except (OSError, ValueError):  # no readable config: the base model is all we can name
        architectures = None
    if isinstance(architectures, list) and architectures and isinstance(architectures[0], str):
        if architectures[0].isidentifier():
            cls = architectures[0]
    return (
        f'python -c "from transformers import {cls}; '
        f"{cls}.from_pretrained('SRC').save_pretrained('NEW_DIR', safe_serialization=True)\""
    )


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[Any]:
    """``safe_open(path)``; a missing, non-regular or damaged file is one line naming it."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory, not a safetensors weights file")
    try:
        with safe_open(str(path), framework="pt") as f:
            yield f
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing") from None
    except (SafetensorError, OSError, RuntimeError) as e:
        raise ValueError(
            f"{path} is not a readable safetensors file ({str(e).splitlines()[0]}); the file is "
            "damaged or truncated: download or copy it again"
        ) from None


def tensor_names(path: Path) -> list[str]:
    """The tensor names of one safetensors file (its header only)."""
    with _opened(path) as f:
        return list(f.keys())


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of one safetensors file; a damaged file is a ``ValueError``."""
    with _opened(path) as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})


def read_weights(directory: Path) -> dict[str, torch.Tensor]:
    """All tensors of a directory's safetensors weights (shards merged)."""
    tensors: dict[str, torch.Tensor] = {}
    for name in weight_files(directory):
        tensors.update(read_safetensors(Path(directory) / name)[0])
    return tensors


def write_safetensors(
    path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    """Contiguous copies, metadata ``format=pt`` (transformers requires it); mode 0666 & ~umask
    like every other file posemb writes (safetensors' ``save_file`` alone makes 0600)."""
    out = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(out, str(path), metadata={"format": "pt", **(metadata or {})})
    os.chmod(path, 0o666 & ~_umask())
