"""What the trainer feeds the model: token windows or synthetic problems, plus position ids.

Every position of a training sequence has a target, so every row of a table that the
sequence reaches trains. A causal LM of length ``t`` reads windows of ``t + 1`` tokens
(nanoGPT's ``x = w[:-1], y = w[1:]``): the inputs are the first ``t``, each position's
target is the token after it, the table's last row (``t = max_positions``) included. A
synthetic problem for a causal model is drawn ``t + 1`` tokens long the same way. An
encoder reads ``t`` tokens and predicts the corrupted ones in place (any position can be
one). Targets are aligned with the positions (``Transformer(..., targets=...)``).

One numpy Generator drives the training stream (windows and position recipes), so its
JSON state in ``trainer_state.json`` is the exact data position for ``--resume``.
Validation batches come from a separate, fixed-seed generator: evaluating never moves the
training stream.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data import (
    DataError,
    SyntheticTask,
    Tokenizer,
    build_tokenizer,
    cached_tokens,
    load_tokenizer,
    open_source,
    sample_batch,
)
from ..runs.config import RunConfig


@dataclass
class Batch:
    input_ids: torch.Tensor  # [b, t]
    targets: torch.Tensor  # [b, t]: each position's own target, -100 where no loss is taken
    positions: torch.Tensor | None  # [b, t], or None for 0 .. t-1


class TrainData:
    """Training and validation batches for one run (one rank's share of them)."""

    def __init__(
        self, cfg: RunConfig, tokenizer: Tokenizer, *, rank: int = 0, world_size: int = 1
    ) -> None:
        self.cfg, self.tokenizer = cfg, tokenizer
        self.rank, self.world_size = rank, world_size
        source = open_source(cfg.data.source, val_fraction=cfg.data.val_fraction)
        self.task: SyntheticTask | None = source if isinstance(source, SyntheticTask) else None
        if self.task is None:
            cache_dir = cfg.data.cache_dir or None
            self.train_tokens = cached_tokens(source, "train", tokenizer, cache_dir)
            self.val_tokens = cached_tokens(source, "val", tokenizer, cache_dir)
            _check_split_lengths(source.name, self.train_tokens, self.val_tokens, cfg)

    @property
    def is_synthetic(self) -> bool:
        return self.task is not None

    def batch(
        self, n: int, rng: np.random.Generator, split: str = "train", seq_len: int | None = None
    ) -> Batch:
        """``n`` sequences of ``seq_len`` positions (default train.seq_len), each with its
        targets (module doc), and the run's position recipe."""
        t = seq_len or self.cfg.train.seq_len
        causal = self.cfg.model.causal
        drawn = t + 1 if causal else t  # a causal LM's last position predicts token t
        if self.task is not None:
            x, y = self.task.sample(n, drawn, rng, causal=causal)
            x, y = torch.from_numpy(x), torch.from_numpy(y)  # [b, drawn]; y aligned with x
            if causal:  # position i predicts the token at i + 1
                x, y = x[:, :-1].contiguous(), y[:, 1:].contiguous()  # [b, t], [b, t]
        else:
            tokens = self.train_tokens if split == "train" else self.val_tokens
            world = self.world_size if split == "train" else 1
            rank = self.rank if split == "train" else 0
            w = sample_batch(tokens, n, drawn, rng, rank=rank, world_size=world)  # [b, drawn]
            if causal:  # contiguous copies: the compiled model sees one layout (strides)
                x, y = w[:, :-1].contiguous(), w[:, 1:].contiguous()  # [b, t], [b, t]
            elif self.cfg.hf is not None:  # a Hugging Face encoder: BERT's own recipe
                x, y = mask_tokens(w, self.cfg.model.vocab_size, self.cfg.hf.mask_token_id, rng)
            else:  # an encoder copying its input learns nothing
                x, y = corrupt_tokens(w, self.cfg.model.vocab_size, rng)
        tc = self.cfg.train
        positions = (
            assign_positions(
                tc.positions, n, t, self.cfg.model.max_positions, rng, stretch=tc.stretch
            )
            if split == "train"
            else None
        )
        return Batch(x, y, positions)


MASK_RATE = 0.15


def corrupt_tokens(
    x: torch.Tensor, vocab_size: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """The training objective of a bidirectional encoder (``model.causal=false``).

    15% of the tokens of each sequence (at least one) are replaced by random ids, as in
    BERT's masked-LM recipe without a dedicated mask token (byte and char vocabularies have
    none); the loss is taken on those tokens only, predicting the original ids.

    Returns:
        ``(inputs [b, t], labels [b, t])``, labels ``-100`` where nothing was replaced.
    """
    b, t = x.shape
    chosen = rng.random((b, t)) < MASK_RATE
    chosen[np.arange(b), rng.integers(0, t, size=b)] = True  # every row has a target
    chosen_t = torch.from_numpy(chosen)
    noise = torch.from_numpy(rng.integers(0, vocab_size, size=(b, t)).astype(np.int64))
    labels = torch.where(chosen_t, x, torch.full_like(x, -100))
    return torch.where(chosen_t, noise, x), labels


def mask_tokens(
    x: torch.Tensor, vocab_size: int, mask_id: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masked-LM recipe (Devlin et al. 2019), for a Hugging Face encoder with a mask
    token: 15% of each sequence's tokens (at least one) are targets; of those, 80% read the
    mask token, 10% a random id and 10% themselves. The loss is taken on the targets only.

    Returns:
        ``(inputs [b, t], targets [b, t])``, targets ``-100`` where nothing was chosen.
    """
    b, t = x.shape
    chosen = rng.random((b, t)) < MASK_RATE
    chosen[np.arange(b), rng.integers(0, t, size=b)] = True  # every row has a target
    how = rng.random((b, t))  # [b, t]: < 0.8 mask, < 0.9 random, else kept
    noise = rng.integers(0, vocab_size, size=(b, t)).astype(np.int64)
    inputs = np.where(chosen & (how < 0.8), mask_id, x.numpy())
    inputs = np.where(chosen & (how >= 0.8) & (how < 0.9), noise, inputs)
    targets = torch.where(torch.from_numpy(chosen), x, torch.full_like(x, -100))
    return torch.from_numpy(inputs.astype(np.int64)), targets


def _check_split_lengths(name: str, train: np.ndarray, val: np.ndarray, cfg: RunConfig) -> None:
    """Each split must hold one window; say which split is short (not "the corpus")."""
    need, vf = cfg.train.seq_len + 1, cfg.data.val_fraction
    if len(train) < need:
        raise DataError(
            f"the training split of --data {name!r} has {len(train)} tokens, fewer than "
            f"train.seq_len + 1 = {need}: lower train.seq_len or use more text"
        )
    if len(val) < need:
        fix = (
            "data.val_fraction=0 leaves no validation text: set it above 0 (e.g. 0.1)"
            if vf == 0
            else f"lower train.seq_len, raise data.val_fraction (now {vf}) or use more text"
        )
        raise DataError(
            f"the validation split of --data {name!r} has {len(val)} tokens, fewer than "
            f"train.seq_len + 1 = {need}: {fix}"
        )


def assign_positions(
    recipe: str,
    b: int,
    t: int,
    max_positions: int,
    rng: np.random.Generator,
    *,
    stretch: float = 8.0,
) -> torch.Tensor | None:
    """Position ids for one training batch: ``[b, t]`` int64 (float32 for ``stretch``), or
    None for ``start``.

    - ``start``: None (the model uses 0 .. t-1).
    - ``random``: per sequence, t sorted distinct positions drawn from [0, max_positions)
      (Ruoss et al. 2023, "Randomized Positional Encodings Boost Length Generalization of
      Transformers"): rows past t are trained, so the model has seen every row it will
      meet at evaluation lengths up to max_positions.
    - ``offset``: k .. k+t-1 with k uniform in [0, max_positions - t] per sequence.
    - ``stretch``: fractional positions ``o + s*i`` (the learned table mixes neighbouring
      rows): each sequence is read as if it were ``u`` times longer and squeezed into the
      table, ``s = (t-1)/(u*t-1)`` with ``u`` log-uniform in ``[1, stretch]``, at a uniform
      offset ``o`` that keeps it inside ``[0, max_positions - 1]``. A table extended to
      ``N = u*t`` positions with ``interpolate`` reads the trained table at exactly the
      spacing ``(t-1)/(N-1)`` from offset 0, so evaluation up to ``stretch`` times the
      training length is in distribution (cf. CAPE, Likhomanenko et al. 2021: global shift
      and scaling of positions; randomised positions, Ruoss et al. 2023).

    Every recipe draws from ``rng`` only: its state in a checkpoint resumes the stream
    exactly.
    """
    if recipe == "start":
        return None
    if t > max_positions:
        raise ValueError(
            f"train.positions={recipe!r} draws positions below "
            f"model.max_positions={max_positions}, "
            f"which cannot hold train.seq_len={t}; raise model.max_positions"
        )
    if recipe == "stretch":
        return _stretched(b, t, max_positions, rng, stretch)
    if recipe == "random":
        pos = np.stack(
            [np.sort(rng.choice(max_positions, size=t, replace=False)) for _ in range(b)]
        )
    else:
        start = rng.integers(0, max_positions - t + 1, size=(b, 1))
        pos = start + np.arange(t)[None, :]
    return torch.from_numpy(pos.astype(np.int64))


def _stretched(
    b: int, t: int, max_positions: int, rng: np.random.Generator, stretch: float
) -> torch.Tensor:
    """``[b, t]`` float32 positions of the ``stretch`` recipe (see :func:`assign_positions`)."""
    u = np.exp(rng.uniform(0.0, np.log(stretch), size=(b, 1)))  # [b, 1]: 1 .. stretch
    spacing = (t - 1) / (u * t - 1) if t > 1 else np.ones_like(u)  # [b, 1]: 1 at u = 1
    room = (max_positions - 1) - spacing * (t - 1)  # [b, 1] >= 0: t <= max_positions
    start = rng.uniform(0.0, 1.0, size=(b, 1)) * room  # [b, 1]
    pos = start + spacing * np.arange(t)[None, :]  # [b, t]
    # rounding must never step past the last row (position max_positions - 1 is exact)
    return torch.from_numpy(np.minimum(pos, max_positions - 1).astype(np.float32))


def make_tokenizer(cfg: RunConfig, run_dir: Path | None = None, resume: bool = False) -> Tokenizer:
    """The run's tokenizer: loaded when resuming, else built (BPE trained on the train split).

    A ``char`` vocabulary is the character set of both splits (as nanoGPT's): a character
    that only the validation text holds would otherwise make the run fail at its first
    evaluation. Only the set of characters is taken, never counts or order.
    """
    if resume and run_dir is not None:
        return load_tokenizer(run_dir)
    kind = cfg.data.tokenizer
    if kind in ("byte",):
        return build_tokenizer("byte")
    source = open_source(cfg.data.source, val_fraction=cfg.data.val_fraction)
    if isinstance(source, SyntheticTask):
        raise ValueError(f"synthetic tasks are byte-level: set data.tokenizer=byte (got {kind!r})")
    texts = source.train_texts()
    if kind == "char":
        texts = itertools.chain(texts, source.val_texts())
    return build_tokenizer(kind, texts, vocab_size=cfg.data.vocab_size)
