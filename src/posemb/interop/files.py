"""Directories in and out: safe output folders, JSON files, and safetensors weights only.

Every command here writes a whole directory. It is built in a temporary sibling folder and
renamed into place at the end, so a failure or a kill never leaves a half-written ``DST``,
and an existing ``DST`` is only replaced with ``--force``. The source is never written to.
Weights are read from safetensors only (one file or an index of shards): nothing is ever
unpickled, so a directory with only ``pytorch_model.bin`` is refused with the fix.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..data.atomic import _umask, atomic_write_text

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


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing") from None
    except ValueError as e:
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


# -- weights -------------------------------------------------------------------------------------
def weight_files(directory: Path) -> list[str]:
    """The safetensors files holding a model's weights (one, or the shards of an index)."""
    directory = Path(directory)
    if (directory / SAFETENSORS).is_file():
        return [SAFETENSORS]
    if (directory / SAFETENSORS_INDEX).is_file():
        index = read_json(directory / SAFETENSORS_INDEX)
        weight_map = index.get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise ValueError(f"{directory / SAFETENSORS_INDEX} has no weight_map")
        return sorted(set(weight_map.values()))
    pickled = [name for name in OTHER_WEIGHTS if (directory / name).is_file()]
    if pickled:
        raise ValueError(
            f"{str(directory)!r} has only {', '.join(pickled)} and no model.safetensors; posemb never "
            "unpickles weights. Convert it once where you trust the file: "
            "AutoModel.from_pretrained(SRC).save_pretrained(NEW_DIR, safe_serialization=True)"
        )
    raise FileNotFoundError(f"{str(directory)!r} has no {SAFETENSORS} (nor {SAFETENSORS_INDEX})")


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of one safetensors file; a damaged file is a ``ValueError``."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing") from None
    except (SafetensorError, OSError, RuntimeError) as e:
        raise ValueError(
            f"{path} is not a readable safetensors file ({str(e).splitlines()[0]})"
        ) from None


def read_weights(directory: Path) -> dict[str, torch.Tensor]:
    """All tensors of a directory's safetensors weights (shards merged)."""
    tensors: dict[str, torch.Tensor] = {}
    for name in weight_files(directory):
        tensors.update(read_safetensors(Path(directory) / name)[0])
    return tensors


def write_safetensors(
    path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    """Contiguous copies, metadata ``format=pt`` (transformers requires it)."""
    out = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    save_file(out, str(path), metadata={"format": "pt", **(metadata or {})})


# -- the output directory ------------------------------------------------------------------------
def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


@contextlib.contextmanager
def output_dir(dst: str | Path, *, force: bool, src: str | Path | None = None) -> Iterator[Path]:
    """A fresh folder to fill; it becomes ``dst`` when the ``with`` block ends cleanly.

    Args:
        dst: the directory to create. An existing empty directory is fine; an existing
            file or non-empty directory is refused unless ``force`` (then it is replaced).
        force: replace an existing ``dst``.
        src: the source directory; ``dst`` may not be it, inside it, or hold it.
    """
    dst = Path(dst)
    target = dst.resolve()
    if src is not None:
        source = Path(src).resolve()
        if _inside(target, source) or _inside(source, target):
            raise ValueError(
                f"DST {str(dst)!r} overlaps SRC {str(src)!r}; the source is never modified: choose "
                "a DST outside it"
            )
    occupied = dst.is_file() or dst.is_symlink() or (dst.is_dir() and any(dst.iterdir()))
    if occupied and not force:
        raise FileExistsError(
            f"{str(dst)!r} already exists and is not empty; choose another DST or pass --force"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; DST gets a normal folder's mode
        yield tmp
        old = None
        if dst.is_symlink() or dst.is_file():
            dst.unlink()
        elif dst.exists():
            old = target.parent / f"{tmp.name}.old"
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def copy_files(src: Path, dst: Path, skip: set[str]) -> list[str]:
    """Copy ``src``'s top-level files (following links) except ``skip``; return skipped folders."""
    skipped_dirs = []
    for entry in sorted(Path(src).iterdir()):
        if entry.name in skip:
            continue
        if entry.is_dir():
            if not entry.name.startswith("."):
                skipped_dirs.append(entry.name)
            continue
        if entry.is_file():
            shutil.copy2(entry, dst / entry.name)
    return skipped_dirs
