"""posemb: learnable absolute positional embeddings, and the positional family around them."""

from .model import KVCache, ModelConfig, Transformer, TransformerOutput
from .positional import (
    EXTEND_METHODS,
    GRID_METHODS,
    SCHEMES,
    GridOutOfRangeError,
    LearnedAbsolutePositionalEmbedding,
    LearnedGridPositionalEmbedding,
    PositionalScheme,
    PositionOutOfRangeError,
    build_scheme,
    extend_grid,
    extend_table,
)

__version__ = "0.1.0"


def load(run_dir, *, verify: bool | None = None):
    """Load a run directory: ``(model, tokenizer)`` from config.json + model.safetensors.

    Args:
        run_dir: the run folder (a str or pathlib.Path).
        verify: check model.safetensors against the sha256 recorded when it was written
            (default: yes, unless the environment sets ``POSEMB_VERIFY=0``).

    Raises:
        TypeError: ``run_dir`` is not a path.
        posemb.runs.CheckpointError: (a ``ValueError``) not a run, or damaged weights.
    """
    # the run folder's format (posemb.runs) is imported when a run is loaded, not with
    # posemb itself: `import posemb` stays the model and the schemes, and runs/ (which
    # imports the model) never meets a half-initialised posemb package
    from .runs.load import load_run

    return load_run(run_dir, verify=verify)


__all__ = [
    "EXTEND_METHODS",
    "GRID_METHODS",
    "SCHEMES",
    "GridOutOfRangeError",
    "KVCache",
    "LearnedAbsolutePositionalEmbedding",
    "LearnedGridPositionalEmbedding",
    "ModelConfig",
    "PositionOutOfRangeError",
    "PositionalScheme",
    "Transformer",
    "TransformerOutput",
    "build_scheme",
    "extend_grid",
    "extend_table",
    "load",
]
