"""Token cache: tokenise a split once into a flat memory-mapped ``.bin`` file.

Layout, under ``CACHE/tokens/`` (``CACHE`` is ``$POSEMB_CACHE``, else ``~/.cache/posemb``):

- ``NAME-SPLIT-KEY.bin``: the token ids, 1-D, native byte order, ``uint16`` when the
  vocabulary has at most 65,535 ids, else ``uint32`` (as nanoGPT's ``train.bin``).
- ``NAME-SPLIT-KEY.json``: the sidecar ``{"format": "posemb-tokens", "version": 1,
  "dtype": "uint16", "length": N, "split": ..., "separator": ..., "source": ...,
  "source_fingerprint": ..., "tokenizer_fingerprint": ..., "vocab_size": ...}``.

``KEY`` hashes (source fingerprint, split, tokenizer fingerprint, separator), so a changed
file, split or tokenizer is tokenised afresh and nothing stale is ever read. Documents are
joined by the source's separator (``"\\n\\n"``), encoded once. Both files are written
atomically, the ``.bin`` first and the sidecar last: a ``.bin`` without a matching sidecar is
never used. Two processes filling the same entry at once both write complete files; the
last rename wins with identical content.

Texts are streamed: each document is encoded (long ones in ~1 MB pieces cut after a line
break) and written as it comes, so memory stays at one piece, never the whole corpus.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from ..files import atomic_open, atomic_write_text
from .errors import DataError
from .synthetic import SyntheticTask
from .text import SEPARATOR, TextSource, check_split
from .tokenizers import Tokenizer

log = logging.getLogger(__name__)  # "tokenising ..." notices (the CLI shows them)
FORMAT = "posemb-tokens"
PIECE_CHARS = 1 << 20  # encode long documents in pieces of about this many characters


def default_cache_dir() -> Path:
    """``$POSEMB_CACHE`` if set, else ``~/.cache/posemb``."""
    env = os.environ.get("POSEMB_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "posemb"


def token_dtype(vocab_size: int) -> np.dtype:
    """``uint16`` for vocabularies up to 65,535 ids, else ``uint32``."""
    return np.dtype(np.uint16 if vocab_size <= 65535 else np.uint32)


def cached_tokens(
    source: TextSource | Sequence[str] | str,
    split: str,
    tokenizer: Tokenizer,
    cache_dir: str | Path | None = None,
    *,
    fingerprint: str | None = None,
) -> np.ndarray:
    """The token ids of one split, tokenised on first use and memory-mapped after.

    Args:
        source: a :class:`~.sources.TextSource` (its ``split`` is read), or texts given
            directly (a list of documents, or one string), which are tokenised as they are
            whatever ``split`` says (``split`` is then only part of the cache key).
        split: ``train`` or ``val``.
        tokenizer: the tokenizer; its ``fingerprint()`` is part of the key.
        cache_dir: the cache root; default :func:`default_cache_dir`.
        fingerprint: overrides the source's fingerprint (needed for a one-shot iterator of
            texts, which cannot be hashed without consuming it).

    Returns:
        A read-only ``np.memmap`` ``[n]`` of ``uint16``/``uint32`` ids, or an empty array
        when the split has no text (a zero-length file cannot be mapped).

    Raises:
        DataError: unknown split, or texts that cannot be fingerprinted.
        ValueError: a token id outside the tokenizer's vocabulary.
    """
    split = check_split(split)
    texts, source_fp, name, separator = _resolve(source, split, fingerprint)
    tok_fp = _tokenizer_fingerprint(tokenizer)
    dtype = token_dtype(tokenizer.vocab_size)
    key_text = json.dumps([FORMAT, 1, source_fp, split, tok_fp, separator, dtype.name])
    key = hashlib.sha256(key_text.encode("utf-8")).hexdigest()[:20]
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    stem = f"{_slug(name)}-{split}-{key}"
    bin_path, meta_path = folder / "tokens" / f"{stem}.bin", folder / "tokens" / f"{stem}.json"

    meta = _read_meta(meta_path, bin_path, dtype)
    if meta is None:
        log.info(
            "tokenising the %s split of %s (first use; cached in %s)", split, name, bin_path.parent
        )
        length = _write_tokens(bin_path, _chunks(texts(), tokenizer, separator, dtype))
        meta = {
            "format": FORMAT,
            "version": 1,
            "dtype": dtype.name,
            "length": length,
            "split": split,
            "separator": separator,
            "source": name,
            "source_fingerprint": source_fp,
            "tokenizer_fingerprint": tok_fp,
            "tokenizer_kind": getattr(tokenizer, "kind", None),
            "vocab_size": tokenizer.vocab_size,
        }
        atomic_write_text(meta_path, json.dumps(meta, indent=1, sort_keys=True))
    if meta["length"] == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(bin_path, dtype=dtype, mode="r", shape=(meta["length"],))


def _resolve(
    source: TextSource | Sequence[str] | str, split: str, fingerprint: str | None
) -> tuple[Callable[[], Iterable[str]], str, str, str]:
    """``(make_texts, source_fingerprint, name, separator)`` for any accepted ``source``."""
    if isinstance(source, SyntheticTask):
        raise DataError(
            f"{source!r} generates its batches with .sample(); it has no tokens to cache"
        )
    if isinstance(source, TextSource):
        fp = fingerprint or source.fingerprint()
        return (lambda: source.texts(split)), fp, source.name, source.separator
    docs = [source] if isinstance(source, str) else source
    if fingerprint is None:
        if not isinstance(docs, Sequence):
            raise DataError(
                "cached_tokens got a one-shot iterable of texts: pass a list, a TextSource, "
                "or fingerprint= to name its content"
            )
        h = hashlib.sha256()
        for doc in docs:
            h.update(hashlib.sha256(doc.encode("utf-8", "surrogatepass")).digest())
        fingerprint = h.hexdigest()
    return (lambda: iter(docs)), fingerprint, "texts", SEPARATOR


def _chunks(
    texts: Iterable[str], tokenizer: Tokenizer, separator: str, dtype: np.dtype
) -> Iterator[np.ndarray]:
    """Encode document by document (long ones in pieces), separators between documents."""
    sep = np.asarray(tokenizer.encode(separator), dtype=np.int64)
    vocab = tokenizer.vocab_size
    for i, doc in enumerate(texts):
        if i and len(sep):
            yield sep.astype(dtype)
        for piece in _pieces(doc):
            ids = np.asarray(tokenizer.encode(piece), dtype=np.int64)
            if len(ids) and (ids.min() < 0 or ids.max() >= vocab):
                bad = int(ids[(ids < 0) | (ids >= vocab)][0])
                raise ValueError(f"tokenizer produced id {bad}, outside its vocab_size {vocab}")
            yield ids.astype(dtype)


def _pieces(doc: str, size: int = PIECE_CHARS) -> Iterator[str]:
    """``doc`` in pieces of about ``size`` characters, each cut just after a newline if any."""
    start = 0
    while len(doc) - start > size:
        end = doc.rfind("\n", start + size // 2, start + size)
        end = start + size if end < 0 else end + 1
        yield doc[start:end]
        start = end
    if start < len(doc):
        yield doc[start:]


def _write_tokens(path: Path, chunks: Iterable[np.ndarray]) -> int:
    """Stream ``chunks`` into ``path`` atomically; return the number of tokens."""
    n = 0
    with atomic_open(path, "wb") as f:
        for chunk in chunks:
            f.write(np.ascontiguousarray(chunk).tobytes())
            n += len(chunk)
    return n


def _read_meta(meta_path: Path, bin_path: Path, dtype: np.dtype) -> dict | None:
    """The sidecar when it and the ``.bin`` agree; None means (re)tokenise."""
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        size = bin_path.stat().st_size
    except (OSError, ValueError):
        return None
    ok = (
        isinstance(meta, dict)
        and meta.get("format") == FORMAT
        and meta.get("dtype") == dtype.name
        and isinstance(meta.get("length"), int)
        and size == meta["length"] * dtype.itemsize
    )
    return meta if ok else None


def _tokenizer_fingerprint(tokenizer: Tokenizer) -> str:
    fp = getattr(tokenizer, "fingerprint", None)
    if callable(fp):
        return fp()
    raise DataError(f"{tokenizer!r} has no fingerprint(): the cache cannot key its tokens")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._]+", "_", name).strip("._")[:40] or "data"
