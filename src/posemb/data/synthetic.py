"""Algorithmic tasks generated on the fly, scored by exact match.

Every example is a string of printable ASCII, so the byte tokenizer (id = byte value) reads
it directly and ``generate`` shows readable text. A sequence is a prompt, then the answer;
only the answer tokens carry labels, everything else is ``-100``:

    copy     "qbxfe|qbxfe"        the prompt again
    reverse  "qbxfe|efxbq"        the prompt backwards
    sort     "qbxfe|beftq"        the prompt's letters in ascending order
    recall   "a3x7k1?x7"          key-value pairs, ``?``, a query key, then its value (1 token)
    order    "kqXbfzYme?X"        which of two capital letters comes first (1 token)

``order`` is the word-order task ("the cat chased the dog" vs "the dog chased the cat"):
the two capitals are the same tokens in either order, so a model that cannot tell positions
apart (a bidirectional encoder without positions) answers both orders alike and gets at most
half of them right; :func:`swap_marked` builds the other order of each example.

Sizes follow ``seq_len`` so that a longer evaluation length is a longer problem:
copy/reverse/sort use ``n = (seq_len - 1) // 2`` letters (``2n + 1`` tokens), recall uses
``p = min(52, (seq_len - 3) // 2)`` pairs with distinct keys from ``a-zA-Z`` and digit
values (``2p + 3`` tokens), order uses ``seq_len - 2`` letters (lowercase, but for two
distinct capitals at random places), then ``?`` and the answer. Whatever is left over is
padded on the **left** with ``.`` (label ``-100``), so every sequence has exactly
``seq_len`` tokens.

Labels are aligned with ``input_ids`` (``labels[i] == input_ids[i]`` on answer positions):
a causal model shifts them internally, as Hugging Face causal LMs do, so the logits at
position ``i - 1`` predict the token at ``i``. A bidirectional encoder would read the answer
in its input: ``sample(..., causal=False)`` hides every answer token behind ``_`` (the
labels keep it), and the encoder predicts it at its own position.
:func:`exact_match_from_logits` aligns predictions with labels for either kind.

Shapes: ``b`` batch, ``t`` sequence length, ``V`` vocabulary size.
"""

from __future__ import annotations

import string

import numpy as np
import torch

from ..positional.checks import unknown

TASKS: tuple[str, ...] = ("copy", "reverse", "sort", "recall", "order")
IGNORE_INDEX = -100
PAD = ord(".")  # left padding; never a symbol of any task
SEP = ord("|")  # between prompt and answer (copy, reverse, sort)
QUERY = ord("?")  # between the pairs and the query key (recall); before the answer (order)
HIDDEN = ord("_")  # an answer token as a bidirectional encoder sees it (causal=False)

_LETTERS = np.frombuffer(string.ascii_lowercase.encode(), dtype=np.uint8).astype(np.int64)
_KEYS = np.frombuffer(string.ascii_letters.encode(), dtype=np.uint8).astype(np.int64)
_CAPITALS = np.frombuffer(string.ascii_uppercase.encode(), dtype=np.uint8).astype(np.int64)
_DIGITS = np.frombuffer(string.digits.encode(), dtype=np.uint8).astype(np.int64)
_MIN_SEQ_LEN = {"copy": 3, "reverse": 3, "sort": 3, "recall": 5, "order": 4}


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
        self, batch_size: int, seq_len: int, rng: np.random.Generator, causal: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``batch_size`` independent examples of exactly ``seq_len`` tokens.

        Args:
            batch_size: number of sequences ``b``.
            seq_len: tokens per sequence ``t`` (at least 3; 4 for order, 5 for recall).
            rng: the generator to draw from; the same state gives the same batch.
            causal: False for a bidirectional encoder: answer tokens are hidden behind
                ``_`` in ``input_ids`` (the same draws otherwise).

        Returns:
            ``(input_ids, labels)``, both int64 ``[b, t]``. ``labels`` is ``-100`` except on
            answer positions, where it holds the answer (equal to ``input_ids`` when causal).
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
        elif self.name == "order":
            body, answer_len = _order(batch_size, seq_len, rng)
        else:
            body, answer_len = _sequence_task(self.name, batch_size, seq_len, rng)
        # body: [b, L] with L <= seq_len; left-pad to seq_len
        pad = seq_len - body.shape[1]
        input_ids = np.full((batch_size, seq_len), PAD, dtype=np.int64)
        input_ids[:, pad:] = body
        labels = np.full((batch_size, seq_len), IGNORE_INDEX, dtype=np.int64)
        labels[:, seq_len - answer_len :] = input_ids[:, seq_len - answer_len :]
        if not causal:
            input_ids[:, seq_len - answer_len :] = HIDDEN
        return input_ids, labels

    def answer(self, prompt: str) -> str:
        """The correct answer for a prompt written in this task's format (without padding).

        ``"qbx"`` → ``"xbq"`` for reverse; ``"a3x7k1?x"`` → ``"7"`` for recall;
        ``"kqXbfzYme?"`` → ``"X"`` for order.
        """
        prompt = prompt.lstrip(chr(PAD)).rstrip(chr(SEP))
        if self.name == "order":
            return next(c for c in prompt if c.isupper())
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


def _order(batch_size: int, seq_len: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """``seq_len - 2`` lowercase letters, two of them replaced by distinct capitals, ``?``,
    then the capital that comes first: one answer token."""
    n = seq_len - 2
    body = _LETTERS[rng.integers(0, len(_LETTERS), size=(batch_size, n))]  # [b, n]
    names = _CAPITALS[np.argsort(rng.random((batch_size, len(_CAPITALS))), axis=1)[:, :2]]
    where = np.argsort(rng.random((batch_size, n)), axis=1)[:, :2]  # [b, 2] distinct places
    rows = np.arange(batch_size)
    body[rows, where[:, 0]] = names[:, 0]
    body[rows, where[:, 1]] = names[:, 1]
    first = np.where(where[:, 0] < where[:, 1], names[:, 0], names[:, 1])  # [b]
    tail = np.stack([np.full(batch_size, QUERY, dtype=np.int64), first], axis=1)  # [b, 2]
    return np.concatenate([body, tail], axis=1), 1  # [b, seq_len]


def swap_marked(
    input_ids: np.ndarray, labels: np.ndarray, causal: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """The other order of each ``order`` example: its two capitals trade places, so the
    answer is the other capital. The tokens are the same multiset as before.

    Args:
        input_ids: ``[b, t]`` from ``SyntheticTask("order").sample`` (either kind).
        labels: ``[b, t]`` their labels.
        causal: how ``input_ids`` were drawn (a causal model's input shows the answer).

    Returns:
        ``(input_ids, labels)`` of the swapped examples, new arrays ``[b, t]``.
    """
    x, y = np.array(input_ids), np.array(labels)
    prompt = x[:, :-1]  # [b, t - 1]: the answer (last token) is not a capital to swap
    capitals = (prompt >= ord("A")) & (prompt <= ord("Z"))  # [b, t - 1]
    if not (capitals.sum(axis=1) == 2).all():
        raise ValueError("swap_marked takes examples of synthetic:order (two capitals each)")
    where = np.nonzero(capitals)[1].reshape(-1, 2)  # [b, 2]
    rows = np.arange(len(x))
    a, b = x[rows, where[:, 0]], x[rows, where[:, 1]]
    x[rows, where[:, 0]], x[rows, where[:, 1]] = b, a
    y[:, -1] = b  # the capital now in front
    if causal:
        x[:, -1] = b
    return x, y


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


def predictions(logits: np.ndarray | torch.Tensor, causal: bool = True) -> np.ndarray:
    """A model's guesses aligned with unshifted labels: ``[b, t, V]`` logits to ``[b, t]`` ids.

    Causal: the logits at position ``i - 1`` predict token ``i``, so the guess for label
    ``i`` is ``argmax(logits[:, i - 1])``; position 0 has no guess (``-1``, never right).
    Encoder (``causal=False``): the logits at ``i`` predict label ``i``.
    """
    if isinstance(logits, torch.Tensor):
        guess = logits.argmax(dim=-1)  # [b, t], on the logits' device
    else:
        guess = np.asarray(logits).argmax(axis=-1)
    guess = _to_numpy(guess).astype(np.int64)
    if not causal:
        return guess
    pred = np.full_like(guess, -1)  # [b, t]
    pred[:, 1:] = guess[:, :-1]
    return pred


def exact_match_from_logits(
    logits: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, causal: bool = True
) -> float:
    """Exact match from a model's logits ``[b, t, V]`` and unshifted labels ``[b, t]``, with
    the alignment of :func:`predictions` (a causal model's logits predict the next token)."""
    return exact_match(predictions(logits, causal), labels)


def _to_numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)
