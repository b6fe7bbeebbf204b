"""posemb: learnable absolute positional embeddings, and the positional family around them."""

from .model import KVCache, ModelConfig, Transformer, TransformerOutput
from .positional import (
    EXTEND_METHODS,
    SCHEMES,
    LearnedAbsolutePositionalEmbedding,
    PositionalScheme,
    PositionOutOfRangeError,
    build_scheme,
    extend_table,
)

__version__ = "0.1.0"


def load(run_dir):
    """Load a run directory: ``(model, tokenizer)`` from config.json + model.safetensors."""
    from .train.checkpoint import load_run

    return load_run(run_dir)


__all__ = [
    "EXTEND_METHODS",
    "SCHEMES",
    "KVCache",
    "LearnedAbsolutePositionalEmbedding",
    "ModelConfig",
    "PositionOutOfRangeError",
    "PositionalScheme",
    "Transformer",
    "TransformerOutput",
    "build_scheme",
    "extend_table",
    "load",
]
