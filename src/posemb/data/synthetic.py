"""Algorithmic tasks generated on the fly, scored by exact match.

Every example is a string of printable ASCII, so the byte tokenizer (id = byte value) reads
it directly and ``generate`` shows readable text. A sequence is a prompt, then the answer;
only the answer tokens carry labels, everything else is ``-100``:

    copy     "qbxfe|qbxfe"        the prompt again
    reverse  "qbxfe|efxbq"        the prompt backwards
    sort     "qbxfe|beftq"        the prompt's letters in ascending order
    recall   "a3x7k1?x7"          key-value pairs, ``?``, a query key, then its value (1 token)

Sizes follow ``seq_len`` so that a longer evaluation length is a longer problem:
copy/reverse/sort use ``n = (seq_len - 1) // 2`` letters (``2n + 1`` tokens), recall uses
``p = min(52, (seq_len - 3) // 2)`` pairs with distinct keys from ``a-zA-Z`` and digit
values (``2p + 3`` tokens). Whatever is left over is padded on the **left** with ``.``
(label ``-100``), so every sequence has exactly ``seq_len`` tokens.

Labels are aligned with ``input_ids`` (``labels[i] == input_ids[i]`` on answer positions):
the model shifts them internally, as Hugging Face causal LMs do, so the logits at position
``i - 1`` predict the token at ``i``. :func:`exact_match_from_logits` does that shift.

Shapes: ``b`` batch, ``t`` sequence length, ``V`` vocabulary size.
"""

from __future__ import annotations

import string

import numpy as np
import torch

from ..positional.checks import unknown

TASKS: tuple[str, ...] = ("copy", "reverse", "sort", "recall")
IGNORE_INDEX = -100
PAD = ord(".")  # left padding; never a symbol of any task
SEP = ord("|")  # between prompt and answer (copy, reverse, sort)
QUERY = ord("?")  # between the pairs and the query key (recall)

_LETTERS = np.frombuffer(string.ascii_lowercase.encode(), dtype=np.uint8).astype(np.int64)
_KEYS = np.frombuffer(string.ascii_letters.encode(), dtype=np.uint8).astype(np.int64)
_DIGITS = np.frombuffer(string.digits.encode(), dtype=np.uint8).astype(np.int64)
_MIN_SEQ_LEN = {"copy": 3, "reverse": 3, "sort": 3, "recall": 5}


class SyntheticTask:
    """One algorithmic task; sample batches of it from a numpy Generator.

    Args:
        name: one of :data:`TASKS`.

    Raises:
        ValueError: unknown task name (the message names the closest task).

    Example:
        >>> task = SyntheticTask("reverse")
        >>> x, y = task.sample(2, 9, np.random.default_rng(0))
        >>> task.decode(x[0])  # e.g. 'kqcx|xcqk'
    """

    vocab_size = 256  # byte ids: read with the byte tokenizer

    def __init__(self, name: str) -> None:
        if name not in TASKS:
            raise unknown("synthetic task", name, TASKS)
        self.name = name
        self.min_seq_len = _MIN_SEQ_LEN[name]

    def __repr__(self) -> str:
        return f"SyntheticTask({self.name!r})"

    def fingerprint(self) -> str:
        """A stable identifier of the task's format (tasks are generated, never cached)."""
        return f"synthetic:{self.name}:v1"

    def sample(
        self, batch_size: int, seq_len: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``batch_size`` independent examples of exactly ``seq_len`` tokens.

        Args:
            batch_size: number of sequences ``b``.
            seq_len: tokens per sequence ``t`` (at least 3; 5 for recall).
            rng: the generator to draw from; the same state gives the same batch.

        Returns:
            ``(input_ids, labels)``, both int64 ``[b, t]``. ``labels`` is ``-100`` except on
            answer positions, where it equals ``input_ids``.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if seq_len < self.min_seq_len:
            raise ValueError(
                f"synthetic:{self.name} needs seq_len >= {self.min_seq_len} to hold one "
                f"problem, got {seq_len}; raise train.seq_len"
            )
        if self.name == "recall":
            body, answer_len = _recall(batch_size, seq_len, rng)
        else:
            body, answer_len = _sequence_task(self.name, batch_size, seq_len, rng)
        # body: [b, L] with L <= seq_len; left-pad to seq_len
        pad = seq_len - body.shape[1]
        input_ids = np.full((batch_size, seq_len), PAD, dtype=np.int64)
        input_ids[:, pad:] = body
        labels = np.full((batch_size, seq_len), IGNORE_INDEX, dtype=np.int64)
        labels[:, seq_len - answer_len :] = input_ids[:, seq_len - answer_len :]
        return input_ids, labels

    def answer(self, prompt: str) -> str:
        """The correct answer for a prompt written in this task's format (without padding).

        ``"qbx"`` → ``"xbq"`` for reverse; ``"a3x7k1?x"`` → ``"7"`` for recall.
        """
        prompt = prompt.lstrip(chr(PAD)).rstrip(chr(SEP))
        if self.name == "copy":
            return prompt
        if self.name == "reverse":
            return prompt[::-1]
        if self.name == "sort":
            return "".join(sorted(prompt))
        pairs, _, key = prompt.partition(chr(QUERY))
        table = {pairs[i]: pairs[i + 1] for i in range(0, len(pairs) - 1, 2)}
        return table[key]

    @staticmethod
    def decode(ids: np.ndarray | torch.Tensor) -> str:
        """Bytes to text (``ids`` 1-D), for display."""
        return bytes(int(i) for i in _to_numpy(ids).reshape(-1)).decode("ascii", "replace")


def _sequence_task(
    name: str, batch_size: int, seq_len: int, rng: np.random.Generator
) -> tuple[np.ndarray, int]:
    """copy / reverse / sort: ``prompt | answer`` with ``n = (seq_len - 1) // 2`` letters."""
    n = (seq_len - 1) // 2
    prompt = _LETTERS[rng.integers(0, len(_LETTERS), size=(batch_size, n))]  # [b, n]
    if name == "copy":
        answer = prompt
    elif name == "reverse":
        answer = prompt[:, ::-1]
    else:
        answer = np.sort(prompt, axis=1)
    sep = np.full((batch_size, 1), SEP, dtype=np.int64)
    return np.concatenate([prompt, sep, answer], axis=1), n  # [b, 2n + 1]


def _recall(batch_size: int, seq_len: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """``k1 v1 ... kp vp ? q v``: distinct keys, digit values, one answer token."""
    p = min(len(_KEYS), (seq_len - 3) // 2)
    # distinct keys per row: the first p of a random permutation of the key alphabet
    keys = np.argsort(rng.random((batch_size, len(_KEYS))), axis=1)[:, :p]  # [b, p]
    keys = _KEYS[keys]
    values = _DIGITS[rng.integers(0, len(_DIGITS), size=(batch_size, p))]  # [b, p]
    pairs = np.stack([keys, values], axis=2).reshape(batch_size, 2 * p)  # [b, 2p]
    which = rng.integers(0, p, size=batch_size)  # [b]
    rows = np.arange(batch_size)
    tail = np.stack(
        [np.full(batch_size, QUERY, dtype=np.int64), keys[rows, which], values[rows, which]],
        axis=1,
    )  # [b, 3]
    return np.concatenate([pairs, tail], axis=1), 1  # [b, 2p + 3]


def exact_match(pred_ids: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> float:
    """Fraction of sequences whose every answer token is predicted right.

    Args:
        pred_ids: ``[b, t]`` predictions **aligned with the labels**: ``pred_ids[:, i]`` is
            the model's guess for token ``i``, i.e. the argmax of the logits at ``i - 1``.
            Use :func:`exact_match_from_logits` to get this alignment from raw logits.
        labels: ``[b, t]`` with ``-100`` where nothing is scored.

    Returns:
        The exact-match accuracy over the sequences that have at least one answer token.

    Raises:
        ValueError: shapes differ, or no sequence has an answer token.
    """
    pred, lab = _to_numpy(pred_ids), _to_numpy(labels)
    if pred.shape != lab.shape or pred.ndim != 2:
        raise ValueError(
            f"pred_ids and labels must both be [b, t]; got {pred.shape} and {lab.shape}"
        )
    scored = lab != IGNORE_INDEX  # [b, t]
    has_answer = scored.any(axis=1)  # [b]
    if not has_answer.any():
        raise ValueError("no answer tokens in labels (every label is -100)")
    row_ok = ((pred == lab) | ~scored).all(axis=1)  # [b]
    return float(row_ok[has_answer].mean())


def exact_match_from_logits(
    logits: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor
) -> float:
    """Exact match from a causal LM's logits ``[b, t, V]`` and unshifted labels ``[b, t]``.

    The logits at position ``i - 1`` predict token ``i``, so the prediction for label ``i``
    is ``argmax(logits[:, i - 1])``; a label at position 0 cannot be predicted and counts as
    wrong.
    """
    if isinstance(logits, torch.Tensor):
        guess = logits[:, :-1].argmax(dim=-1)  # [b, t - 1], on the logits' device
    else:
        guess = np.asarray(logits)[:, :-1].argmax(axis=-1)
    guess = _to_numpy(guess)
    pred = np.full(guess.shape[:1] + (guess.shape[1] + 1,), -1, dtype=np.int64)  # [b, t]
    pred[:, 1:] = guess
    return exact_match(pred, labels)


def _to_numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)
