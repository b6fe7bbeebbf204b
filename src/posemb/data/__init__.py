"""Data: text sources, tokenizers, the token cache, synthetic tasks and batching.

Typical use (what ``posemb train`` does)::

    from posemb.data import open_source, build_tokenizer, cached_tokens, sample_batch

    source = open_source("stdlib")                      # or a path, a glob, hf:NAME
    tok = build_tokenizer("byte", source.train_texts())
    train = cached_tokens(source, "train", tok)         # np.memmap [n] of uint16
    x = sample_batch(train, 8, 256, np.random.default_rng(0))   # LongTensor [8, 256]

``open_source("synthetic:copy")`` returns a :class:`SyntheticTask` instead, which samples
``(input_ids, labels)`` batches itself; :func:`is_synthetic` tells the two apart by spec.
This package imports nothing of posemb outside ``posemb.data`` but :mod:`posemb.files`.
"""

from ..files import atomic_open, atomic_write_text
from .batching import (
    count_windows,
    iter_windows,
    rng_from_json,
    rng_state_to_json,
    sample_batch,
    shard,
)
from .cache import cached_tokens, default_cache_dir, token_dtype
from .errors import DataError
from .paths import UnsafePathError, inside
from .sources import (
    DEFAULT_SOURCE,
    FileSource,
    FilesSource,
    is_synthetic,
    open_source,
    stdlib_source,
)
from .synthetic import (
    IGNORE_INDEX,
    TASKS,
    SyntheticTask,
    exact_match,
    exact_match_from_logits,
    swap_marked,
)
from .text import SPLITS, TextSource
from .tokenizers import (
    KINDS,
    TOKENIZER_FILE,
    BPETokenizer,
    ByteTokenizer,
    CharTokenizer,
    Tokenizer,
    build_tokenizer,
    load_tokenizer,
)

__all__ = [
    "BPETokenizer",
    "ByteTokenizer",
    "CharTokenizer",
    "DEFAULT_SOURCE",
    "DataError",
    "FileSource",
    "FilesSource",
    "IGNORE_INDEX",
    "KINDS",
    "SPLITS",
    "SyntheticTask",
    "TASKS",
    "TOKENIZER_FILE",
    "TextSource",
    "Tokenizer",
    "UnsafePathError",
    "atomic_open",
    "atomic_write_text",
    "build_tokenizer",
    "cached_tokens",
    "count_windows",
    "default_cache_dir",
    "exact_match",
    "exact_match_from_logits",
    "swap_marked",
    "inside",
    "is_synthetic",
    "iter_windows",
    "load_tokenizer",
    "open_source",
    "rng_from_json",
    "rng_state_to_json",
    "sample_batch",
    "shard",
    "stdlib_source",
    "token_dtype",
]
