"""Which Hugging Face architecture holds which posemb run, exactly.

One row per positional scheme. A run is exported to its scheme's architecture when every
field of its config has an exact counterpart there; otherwise the export is refused with
one line naming each field that differs::

    scheme       architecture                      exact when
    learned      GPT-2 (GPT2LMHeadModel)           no offset, overflow 'error'
    sinusoidal   GPT-2, the vectors as its table   (serves N = model.max_positions)
    rope         GPT-NeoX (GPTNeoXForCausalLM)     scale >= 1 (linear rope_scaling)
    nope         GPT-NeoX with rotary_pct=0.0
    alibi        MPT (MptForCausalLM)              bias=false, activation 'gelu', d_ff 4 d
    t5, shaw     none: no Hugging Face causal LM has these biases in this block

and, for every row: causal, LayerNorm, an activation transformers names exactly. Import
reads the same architectures back (:data:`ARCHITECTURES`).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ..model import ModelConfig
from . import gpt2, gpt_neox, mpt


@dataclass(frozen=True)
class Architecture:
    """A Hugging Face causal LM posemb writes and reads.

    Attributes:
        model_type: ``config.json``'s ``model_type``.
        name: its class (``config.json``'s ``architectures``).
        label: how messages call it.
        schemes: the posemb schemes it holds.
        module: ``key_map``, ``to_hf``, ``from_hf``, ``incompatibilities``, ``hf_config``,
            ``export_notes`` and ``model_config_from_hf`` for it.
    """

    model_type: str
    name: str
    label: str
    schemes: tuple[str, ...]
    module: ModuleType


ARCHITECTURES: dict[str, Architecture] = {
    "gpt2": Architecture("gpt2", "GPT2LMHeadModel", "GPT-2", gpt2.SCHEMES, gpt2),
    "gpt_neox": Architecture(
        "gpt_neox", "GPTNeoXForCausalLM", "GPT-NeoX", gpt_neox.SCHEMES, gpt_neox
    ),
    "mpt": Architecture("mpt", "MptForCausalLM", "MPT", mpt.SCHEMES, mpt),
}
NO_COUNTERPART = {
    "t5": "no Hugging Face causal LM has T5's learned relative bias in a GPT-2-style block "
    "(T5's own decoder belongs to an encoder-decoder)",
    "shaw": "no Hugging Face causal LM has Shaw et al.'s relative key vectors",
}


def export_target(cfg: ModelConfig, where: str) -> Architecture:
    """The architecture that holds ``cfg`` exactly; else a one-line ``ValueError`` naming
    every field that differs (or the scheme that has no counterpart)."""
    if cfg.position in NO_COUNTERPART:
        raise ValueError(
            f"{where} cannot be exported: model.position={cfg.position!r}: "
            f"{NO_COUNTERPART[cfg.position]}; schemes that export: learned, sinusoidal, rope, "
            "nope, alibi (docs/HF.md)"
        )
    arch = next(a for a in ARCHITECTURES.values() if cfg.position in a.schemes)
    problems = arch.module.incompatibilities(cfg)
    if problems:
        raise ValueError(f"{where} cannot be exported as {arch.label}: {'; '.join(problems)}")
    return arch


def import_source(config: dict[str, Any], where: str) -> Architecture:
    """The architecture of a Hugging Face ``config.json``, or a one-line refusal."""
    model_type = config.get("model_type")
    if model_type is None:
        hint = (
            " (it is a posemb run: use it directly)"
            if isinstance(config.get("model"), dict)
            else ""
        )
        raise ValueError(
            f"{where} has no model_type: not a Hugging Face model config{hint}; import-hf reads "
            f"{_supported()}"
        )
    if model_type not in ARCHITECTURES:
        raise ValueError(f"{where} is a {model_type!r} model; import-hf reads {_supported()}")
    return ARCHITECTURES[model_type]


def _supported() -> str:
    return ", ".join(f"{a.label} (model_type {a.model_type!r})" for a in ARCHITECTURES.values())
