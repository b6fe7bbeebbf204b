"""The transformer around the positional schemes."""

from .config import PRESETS, ModelConfig
from .transformer import KVCache, Transformer, TransformerOutput

__all__ = ["PRESETS", "KVCache", "ModelConfig", "Transformer", "TransformerOutput"]
