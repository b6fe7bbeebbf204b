"""What a Hugging Face model carries besides its weights, kept through a posemb run.

``import-hf`` writes ``hf_metadata.json`` into the run it makes; ``export-hf`` (and
``extend`` of the run) carry it on, so ``import-hf`` then ``export-hf`` gives back::

    what                                    from
    bos/eos/pad token ids (config.json)     config.json
    the tokenizer's special tokens          tokenizer_config.json, special_tokens_map.json
    (eos_token, bos_token, ...)             (only when the run's tokenizer is the model's own)
    generation_config.json                  generation_config.json, as it was
    the weights' dtype (float16, bfloat16)  the safetensors tensors; a posemb run trains in
                                            float32, and float16/bfloat16 -> float32 -> back
                                            is exact

A run trained by posemb has no such file: its export has no special tokens and float32.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..data import inside
from ..files import read_json
from ..positional.checks import is_int

HF_METADATA = "hf_metadata.json"
TOKEN_IDS = ("bos_token_id", "eos_token_id", "pad_token_id")
SPECIAL_TOKENS = (
    "bos_token",
    "eos_token",
    "unk_token",
    "pad_token",
    "sep_token",
    "cls_token",
    "mask_token",
    "additional_special_tokens",
    "add_bos_token",
    "add_eos_token",
)
DTYPES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}


def weights_dtype(tensors: dict[str, Tensor]) -> str:
    """The name of the floating dtype most of ``tensors``' values have (float32 if none)."""
    counts: Counter[str] = Counter()
    for t in tensors.values():
        if t.dtype in DTYPES:
            counts[DTYPES[t.dtype]] += t.numel()
    return counts.most_common(1)[0][0] if counts else "float32"


def _optional(src: Path, name: str) -> dict[str, Any]:
    path = inside(src, name)
    return read_json(path) if path.is_file() else {}


def read_metadata(
    src: Path, config: dict[str, Any], tensors: dict[str, Tensor], own_tokenizer: bool
) -> dict[str, Any]:
    """The metadata of the Hugging Face folder ``src`` (see the module doc)."""
    meta: dict[str, Any] = {
        "model_type": config.get("model_type"),
        "dtype": weights_dtype(tensors),
        "config": {k: config[k] for k in TOKEN_IDS if is_int(config.get(k))},
    }
    if own_tokenizer:
        tokens = {
            **_optional(src, "special_tokens_map.json"),
            **_optional(src, "tokenizer_config.json"),
        }
        meta["tokenizer"] = {k: tokens[k] for k in SPECIAL_TOKENS if tokens.get(k) is not None}
    generation = _optional(src, "generation_config.json")
    if generation:
        meta["generation_config"] = generation
    return meta


def read_run_metadata(run_dir: Path) -> dict[str, Any]:
    """A run's ``hf_metadata.json``, or ``{}`` when it has none."""
    return _optional(Path(run_dir), HF_METADATA)


def token_ids(meta: dict[str, Any], vocab_size: int) -> dict[str, int]:
    """The kept token ids that exist in a vocabulary of ``vocab_size``."""
    ids = meta.get("config", {})
    return {k: v for k, v in ids.items() if k in TOKEN_IDS and is_int(v) and 0 <= v < vocab_size}


def cast(tensors: dict[str, Tensor], dtype: str) -> dict[str, Tensor]:
    """Floating tensors cast to the dtype named ``dtype`` (others unchanged)."""
    target = {v: k for k, v in DTYPES.items()}.get(dtype, torch.float32)
    return {k: v.to(target) if v.is_floating_point() else v for k, v in tensors.items()}
