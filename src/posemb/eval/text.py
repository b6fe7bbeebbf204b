"""The evaluation text: seeded spans drawn from across a whole split, scored identically at
every length and by every method, so any two results on it are a paired comparison.

How the text is chosen (``EvalText.draw``):

- ``n`` spans of ``S`` tokens, ``S`` the longest evaluation length. The split is cut into
  ``n`` equal strata and each span starts at a uniformly random offset (seeded) inside its
  stratum: the spans are disjoint and spread over the whole split, never only its head.
  A split too short for ``n`` spans gives as many as fit (the spans then nearly tile it).
- At length ``L`` each span is cut into ``S // L`` windows of ``L`` tokens. A window's first
  token has no context and is never a target, so a target offset ``j`` of a span (its token
  ``j``, predicted from the tokens before it) is scored at ``L`` when ``j % L != 0`` and
  ``j < (S // L) * L``. **The scored targets are the offsets scored at every length**
  (``EvalText.targets``): with the usual lengths ``L, 2L, 4L, 8L`` that is every offset but
  the multiples of ``L`` (63 of every 64 tokens at L = 64). Every length, every extension
  method and the sliding window score exactly these tokens.
- Standard errors are over spans: each span's mean loss over its targets is one
  observation (equal weights: every span has the same targets).
- An encoder (a masked-LM objective) is scored on a fixed seeded mask
  (:meth:`EvalText.with_mask`): the same number of offsets of every span, drawn once with the
  text's seed from the offsets every length covers, are replaced by the mask token and
  predicted in place. Every length and method masks and scores exactly these offsets, so
  the lengths stay paired; a window's first token needs no left context, so any offset can
  be a target.

Shapes: ``n`` spans, ``S`` span length, ``L`` an evaluation length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..data import DataError
from ..provenance import fingerprint_tokens

DEFAULT_TOKENS = 65536  # scored tokens per length unless told otherwise (about 2^16)
DEFAULT_SEED = 0  # the evaluation text's seed: fixed, independent of any training seed
MASK_RATE = 0.15  # an encoder's scored share of the text (BERT's masking rate)


def drawn_tokens(n_tokens: int | None, masked: bool) -> int | None:
    """Tokens to draw for ``n_tokens`` scored ones: an encoder scores only its masked share
    (``MASK_RATE``), so its text is drawn that much longer (None: the default's)."""
    if not masked:
        return n_tokens
    return math.ceil((n_tokens or DEFAULT_TOKENS) / MASK_RATE)


def scored_targets(span_len: int, lengths: list[int]) -> np.ndarray:
    """``bool [S]``: the span offsets that are a target at every length (see module docstring)."""
    j = np.arange(span_len)
    keep = j > 0
    for L in lengths:
        keep &= (j % L != 0) & (j < (span_len // L) * L)
    return keep


def spans_for(lengths: list[int], n_tokens: int | None = None) -> int:
    """Spans of ``max(lengths)`` needed for ``n_tokens`` scored tokens per length (default
    :data:`DEFAULT_TOKENS`)."""
    per_span = int(scored_targets(max(lengths), lengths).sum())
    return max(1, math.ceil((n_tokens or DEFAULT_TOKENS) / max(per_span, 1)))


def draw_starts(n_tokens: int, span_len: int, n_spans: int, seed: int) -> np.ndarray:
    """``int64 [k]`` sorted starts of ``k = min(n_spans, n_tokens // span_len)`` disjoint spans,
    one at a seeded uniform offset in each of ``k`` equal strata of ``[0, n_tokens)``."""
    k = min(n_spans, n_tokens // span_len)
    if k < 1:
        raise DataError(
            f"the evaluation text has {n_tokens} tokens, fewer than one window of {span_len}"
        )
    rng = np.random.default_rng(seed)
    lo = (np.arange(k) * n_tokens) // k  # [k] stratum starts; each stratum holds >= span_len
    hi = (np.arange(1, k + 1) * n_tokens) // k
    return lo + rng.integers(0, hi - lo - span_len + 1)  # [k]


@dataclass
class EvalText:
    """Spans of a token split, the targets scored in them, and where they came from.

    Attributes:
        tokens: ``[N]`` the whole split (a memmap stays on disk).
        starts: ``[n]`` span starts.
        span_len: ``S``, the longest evaluation length.
        lengths: the evaluation lengths the targets are common to.
        seed: the seed the starts were drawn with.
        source: what the split is (``{"source": "stdlib", "split": "val", ...}``).
        names: the documents' names (files) and ``bounds`` their first token, when known.
    """

    tokens: np.ndarray
    starts: np.ndarray
    span_len: int
    lengths: list[int]
    seed: int = DEFAULT_SEED
    source: dict[str, Any] = field(default_factory=dict)
    names: list[str] | None = None
    bounds: np.ndarray | None = None  # [docs] first token of each document
    masked: np.ndarray | None = None  # [n, S] an encoder's targets (with_mask), else None
    mask_id: int | None = None  # the token the masked offsets read

    @classmethod
    def draw(
        cls,
        tokens: np.ndarray,
        lengths: list[int],
        *,
        n_spans: int | None = None,
        n_tokens: int | None = None,
        seed: int = DEFAULT_SEED,
        **info: Any,
    ) -> EvalText:
        """Draw the spans for ``lengths``: ``n_spans`` of them, or enough for ``n_tokens``
        scored tokens per length (default :data:`DEFAULT_TOKENS`), as many as the split holds.
        """
        span_len = max(lengths)
        n_spans = n_spans or spans_for(lengths, n_tokens)
        starts = draw_starts(len(tokens), span_len, n_spans, seed)
        return cls(tokens, starts, span_len, sorted(lengths), seed, **info)

    @property
    def n_spans(self) -> int:
        return len(self.starts)

    def with_mask(self, mask_id: int, rate: float = MASK_RATE) -> EvalText:
        """This text for an encoder: ``round(rate x covered)`` offsets of every span (at least
        one), drawn with the text's seed among the offsets every length covers, read as
        ``mask_id`` and scored in place (module doc)."""
        S = self.span_len
        covered = np.flatnonzero(np.arange(S) < min((S // L) * L for L in self.lengths))
        k = max(1, round(rate * len(covered)))
        rng = np.random.default_rng([self.seed, 1])  # the text's own: one mask for every model
        masked = np.zeros((self.n_spans, S), dtype=bool)
        for row in masked:
            row[rng.choice(covered, size=k, replace=False)] = True
        return replace(self, masked=masked, mask_id=int(mask_id))

    @property
    def targets(self) -> np.ndarray:
        """``bool [S]``: the span offsets scored at every length (next-token scoring); with a
        mask, ``bool [n, S]``: each span's masked offsets."""
        if self.masked is not None:
            return self.masked
        return scored_targets(self.span_len, self.lengths)

    @property
    def targets_per_span(self) -> int:
        return int(self.targets.sum()) // (self.n_spans if self.masked is not None else 1)

    @property
    def scored_tokens(self) -> int:
        """Targets scored per length and method: spans × targets per span."""
        return self.n_spans * self.targets_per_span

    def spans(self) -> np.ndarray:
        """``int64 [n, S]`` the token ids of every span."""
        idx = self.starts[:, None] + np.arange(self.span_len)[None, :]  # [n, S]
        return np.asarray(self.tokens[idx.ravel()], dtype=np.int64).reshape(idx.shape)

    def windows(self, eval_len: int, inputs: bool = False) -> np.ndarray:
        """``int64 [n * (S // L), L]``: each span cut into windows of ``L`` (span-major order);
        ``inputs`` with the masked offsets read as the mask token (a masked text)."""
        per = self.span_len // eval_len
        ids = self.spans()
        if inputs and self.masked is not None:
            ids = np.where(self.masked, self.mask_id, ids)  # [n, S]
        return ids[:, : per * eval_len].reshape(self.n_spans * per, eval_len)

    def window_targets(self, eval_len: int) -> np.ndarray:
        """``bool [n * (S // L), L]``: the masked offsets of each window (a masked text)."""
        per = self.span_len // eval_len
        return self.masked[:, : per * eval_len].reshape(self.n_spans * per, eval_len)

    def fingerprint(self) -> str:
        """Of the span tokens and the scored offsets: equal exactly when the same text is scored."""
        if self.masked is not None:
            mask = np.flatnonzero(self.masked).tolist()
            return fingerprint_tokens(self.spans(), ("posemb-masked-text-1", self.span_len, mask))
        skipped = np.flatnonzero(~self.targets).tolist()
        return fingerprint_tokens(self.spans(), ("posemb-eval-text-1", self.span_len, skipped))

    def files(self) -> list[str] | None:
        """The documents (files) the spans overlap, in split order; None when unnamed."""
        if self.names is None or self.bounds is None:
            return None
        first = np.searchsorted(self.bounds, self.starts, side="right") - 1  # [n]
        last = np.searchsorted(self.bounds, self.starts + self.span_len - 1, side="right") - 1
        docs = sorted({d for a, b in zip(first, last) for d in range(int(a), int(b) + 1)})
        return [self.names[d] for d in docs]

    def summary(self) -> str:
        """``66,024 tokens per length: 131 spans of 512 (seed 0) from across the val split of
        'stdlib' (965,643 tokens)``"""
        where = f"the {self.source.get('split', 'given')} split of {self.source.get('source')!r}"
        return (
            f"{self.scored_tokens:,} tokens per length: {self.n_spans} spans of {self.span_len} "
            f"(seed {self.seed}) from across {where} ({len(self.tokens):,} tokens)"
        )

    def provenance(self) -> dict[str, Any]:
        """What was scored: source, split, spans, scored tokens, fingerprint, files."""
        files = self.files()
        return {
            **self.source,
            "split_tokens": int(len(self.tokens)),
            "seed": self.seed,
            "spans": self.n_spans,
            "span_len": self.span_len,
            "targets_per_span": self.targets_per_span,
            "scored_tokens": self.scored_tokens,
            "standard_error_over": "spans",
            "scored": "masked tokens, predicted in place"
            if self.masked is not None
            else ("next tokens"),
            **({"mask_id": self.mask_id} if self.masked is not None else {}),
            "fingerprint": self.fingerprint(),
            "files": files,
        }


def document_bounds(source, tokenizer, split: str, n_tokens: int):
    """``(names, first_token [docs])`` of a split's documents, or ``(None, None)`` when the
    source does not name its documents or the recount disagrees with the cached tokens."""
    names = source.names(split)
    if names is None:
        return None, None
    sep = len(tokenizer.encode(source.separator))
    starts, pos = [], 0
    for i, doc in enumerate(source.texts(split)):
        pos += sep if i else 0
        starts.append(pos)
        pos += len(tokenizer.encode(doc))
    if pos != n_tokens or len(starts) != len(names):  # e.g. BPE pieces of a very long document
        return None, None
    return names, np.asarray(starts, dtype=np.int64)
