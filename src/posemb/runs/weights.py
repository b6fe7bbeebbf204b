"""A run's weights files: safetensors carrying the sha256 of their own tensors.

safetensors has no checksum, so each weights file of a run carries the sha256 of its own
tensors (names, dtypes, shapes and bytes, in name order) in its header metadata
(``posemb_sha256``), computed when the file is written and checked whenever a run's weights
are read (``posemb.load``, ``--resume``, generate, eval, analyze, extend, export). The hash
travels inside the file it describes, so a reader never pairs it with another checkpoint's
file while the run trains. ``verify=False`` or ``POSEMB_VERIFY=0`` skips the check; files
written before hashes were recorded load unchecked, with a note. Weights files get the mode
of every other file of a run (0666 less the umask: 0644), not safetensors' 0600. Nothing is
ever unpickled.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import torch

from ..files import read_safetensors, write_safetensors
from ..model import Transformer
from .layout import CheckpointError

HASH_KEY = "posemb_sha256"  # safetensors metadata: sha256 of the file's tensors
VERIFY_ENV = "POSEMB_VERIFY"  # POSEMB_VERIFY=0: load weights without checking their hash


def state_dict_for_save(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Contiguous CPU tensors, tied weights stored once: of names that share one tensor
    (``lm_head.weight`` is ``wte.weight``; a Hugging Face head's decoder is its word
    embeddings), the first in the state dict's order is kept, as ``save_pretrained`` does."""
    state = getattr(model, "_orig_mod", model).state_dict(keep_vars=True)
    return {k: state[k].detach().to("cpu").contiguous() for k in saved_names(model)}


def saved_names(model: torch.nn.Module) -> list[str]:
    """The state-dict names :func:`state_dict_for_save` keeps: each tensor under the first
    of its names (a tied weight is one Parameter under two names)."""
    state = getattr(model, "_orig_mod", model).state_dict(keep_vars=True)
    seen: set[int] = set()
    names = []
    for k, v in state.items():
        if id(v) not in seen:
            seen.add(id(v))
            names.append(k)
    return names


def content_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over every tensor in name order: name, dtype, shape, then its raw bytes."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(f"{name}\0{str(t.dtype).removeprefix('torch.')}\0{list(t.shape)}\n".encode())
        h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    return h.hexdigest()


def write_weights(
    path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    """A safetensors file carrying its content hash (posemb.files.write_safetensors: fsynced,
    the run's file mode, an I/O error an OSError naming ``path``)."""
    write_safetensors(path, tensors, {**(metadata or {}), HASH_KEY: content_sha256(tensors)})


def save_model(model: torch.nn.Module, path: Path, metadata: dict[str, str] | None = None) -> None:
    write_weights(Path(path), state_dict_for_save(model), metadata)


def read_tensors(path: Path, verify: bool | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a run's weights file, checked against the hash in its header.

    Args:
        path: ``model.safetensors`` or ``optimizer.safetensors`` of a run.
        verify: check the content hash; None: unless ``POSEMB_VERIFY=0``.

    Raises:
        CheckpointError: missing, unreadable, or not matching its recorded hash.
    """
    return read_weights_file(path, verify)[0]


def read_weights_file(
    path: Path, verify: bool | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """:func:`read_tensors`, with the file's header metadata (``step``, the content hash)."""
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory, not a safetensors weights file")
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; the run has no checkpoint yet")
    try:
        tensors, metadata = read_safetensors(path, fix="restore it or retrain")
    except (OSError, ValueError) as e:
        raise CheckpointError(str(e)) from None
    recorded = metadata.get(HASH_KEY)
    if verify is None:
        verify = os.environ.get(VERIFY_ENV, "1").strip().lower() not in ("0", "false", "no")
    if not verify:
        return tensors, metadata
    if recorded is None:
        _note_once(
            f"{path} has no recorded content hash (written before posemb recorded them): "
            "loaded without verification"
        )
    elif content_sha256(tensors) != recorded:
        raise CheckpointError(
            f"{path} does not match the sha256 recorded when it was written: the file is "
            f"corrupted; restore it from a copy or retrain ({VERIFY_ENV}=0 loads it anyway)"
        )
    return tensors, metadata


_NOTED: set[str] = set()


def _note_once(text: str) -> None:
    if text not in _NOTED:
        _NOTED.add(text)
        print(f"posemb: note: {text}", file=sys.stderr)


def load_weights(model: Transformer, tensors: dict[str, torch.Tensor], where: str) -> None:
    """Put ``tensors`` into ``model``: every name and shape must match its config (a tied
    weight's second name, ``lm_head.weight``, may be present or absent), else a
    :class:`CheckpointError` naming ``where``."""
    own_names = set(model.state_dict(keep_vars=True))
    expected = set(saved_names(model))
    tensors = {k: v for k, v in tensors.items() if k in expected or k not in own_names}
    missing, unexpected = expected - set(tensors), set(tensors) - expected
    if missing or unexpected:
        raise CheckpointError(
            f"{where} does not match its config: missing {sorted(missing)[:5]}, unexpected "
            f"{sorted(unexpected)[:5]}"
        )
    own = model.state_dict()
    for k, v in tensors.items():
        if own[k].shape != v.shape:
            raise CheckpointError(
                f"{where}: {k} has shape {tuple(v.shape)}, the config expects {tuple(own[k].shape)}"
            )
    model.load_state_dict(tensors, strict=False)
