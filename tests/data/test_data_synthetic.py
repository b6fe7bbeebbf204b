"""Synthetic tasks: the format, the labels, and exact match with the causal shift."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from posemb.data.synthetic import (
    IGNORE_INDEX,
    TASKS,
    SyntheticTask,
    exact_match,
    exact_match_from_logits,
    swap_marked,
)


def _split(task: SyntheticTask, ids: np.ndarray, labels: np.ndarray) -> tuple[str, str, str]:
    """(padding, prompt text, answer text) of one row; the answer is where labels are set."""
    text = task.decode(ids)
    answer_mask = labels != IGNORE_INDEX
    first = int(np.argmax(answer_mask))
    assert answer_mask[first:].all(), "answer tokens must be one block at the end"
    assert (labels[answer_mask] == ids[answer_mask]).all()
    body = text.lstrip(".")
    return text[: len(text) - len(body)], text[len(text) - len(body) : first], text[first:]


@pytest.mark.parametrize("task_name", ["copy", "reverse", "sort"])
@pytest.mark.parametrize("seq_len", [3, 10, 33])
def test_sequence_tasks_answer_is_the_transformed_prompt(task_name: str, seq_len: int):
    task = SyntheticTask(task_name)
    x, y = task.sample(8, seq_len, np.random.default_rng(seq_len))
    assert x.shape == y.shape == (8, seq_len) and x.dtype == y.dtype == np.int64
    n = (seq_len - 1) // 2
    for ids, labels in zip(x, y):
        pad, prompt, answer = _split(task, ids, labels)
        assert pad == "." * (seq_len - 2 * n - 1)
        assert prompt.endswith("|") and len(prompt) == n + 1
        prompt = prompt[:-1]
        assert prompt.isalpha() and prompt.islower()
        expected = {"copy": prompt, "reverse": prompt[::-1], "sort": "".join(sorted(prompt))}
        assert answer == expected[task_name] == task.answer(prompt)


@pytest.mark.parametrize("seq_len", [5, 12, 200])
def test_recall_answer_is_the_value_of_the_query_key(seq_len: int):
    task = SyntheticTask("recall")
    x, y = task.sample(16, seq_len, np.random.default_rng(1))
    p = min(52, (seq_len - 3) // 2)
    for ids, labels in zip(x, y):
        pad, prompt, answer = _split(task, ids, labels)
        assert len(pad) == seq_len - (2 * p + 3) and len(answer) == 1
        pairs, query = prompt.split("?")
        keys, values = pairs[0::2], pairs[1::2]
        assert len(keys) == p and len(set(keys)) == p and keys.isalpha() and values.isdigit()
        assert query in keys
        assert answer == values[keys.index(query)] == task.answer(prompt)


@pytest.mark.parametrize(
    ("task_name", "expected"),
    [
        ("copy", ["wqnhi|wqnhi", "bbaev|bbaev"]),
        ("reverse", ["wqnhi|ihnqw", "bbaev|veabb"]),
        ("sort", ["wqnhi|hinqw", "bbaev|abbev"]),
        ("recall", ["l9d2u4n5?u4", "O6h4b1k9?O6"]),
        ("order", ["wCnhibbaL?C", "vqSnpYsqo?S"]),
    ],
)
def test_examples_are_readable_and_pinned_to_the_seed(task_name: str, expected: list[str]):
    """Pinned to numpy's PCG64 stream for seed 0: a change here changes every dataset."""
    task = SyntheticTask(task_name)
    x, _ = task.sample(2, 11, np.random.default_rng(0))
    assert [task.decode(row) for row in x] == expected
    x2, _ = task.sample(2, 11, np.random.default_rng(0))
    np.testing.assert_array_equal(x, x2)


def test_exact_match_on_hand_made_logits_applies_the_causal_shift():
    # two sequences "ab|ab" (answer at positions 3, 4); the vocabulary is bytes
    ids = torch.tensor([list(b"ab|ab"), list(b"cd|cd")])
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[:, 3:] = ids[:, 3:]
    logits = torch.zeros(2, 5, 256)
    # logits at position i predict token i + 1: position 2 ('|') must say 'a' / 'c'
    for row in range(2):
        for i in range(4):
            logits[row, i, ids[row, i + 1]] = 1.0
    assert exact_match_from_logits(logits, labels) == 1.0
    logits[1, 3, ord("d")] = 0.0
    logits[1, 3, ord("x")] = 1.0  # second row: last answer token wrong
    assert exact_match_from_logits(logits, labels) == 0.5
    assert exact_match_from_logits(logits.numpy(), labels.numpy()) == 0.5
    # unshifted predictions (argmax of position i read as token i) score 0
    unshifted = torch.zeros(2, 5, 256).scatter_(2, ids.unsqueeze(-1), 1.0)
    assert exact_match_from_logits(unshifted, labels) == 0.0
    assert exact_match(unshifted.argmax(-1), labels) == 1.0  # already aligned: all right


def test_exact_match_ignores_unlabelled_positions_and_rows():
    labels = np.array([[-100, 5, 6], [-100, -100, -100], [-100, 7, -100]])
    pred = np.array([[0, 5, 6], [9, 9, 9], [0, 8, 0]])
    assert exact_match(pred, labels) == 0.5  # the unlabelled row is not counted
    with pytest.raises(ValueError, match=r"no answer tokens"):
        exact_match(pred, np.full((3, 3), -100))
    with pytest.raises(ValueError, match=r"\[b, t\]"):
        exact_match(pred[:, :2], labels)


def test_unknown_task_and_too_short_sequences():
    with pytest.raises(
        ValueError, match=r"'sotr'.*Did you mean 'sort'.*copy, reverse, sort, recall, order"
    ):
        SyntheticTask("sotr")
    with pytest.raises(ValueError, match=r"seq_len >= 5"):
        SyntheticTask("recall").sample(1, 4, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"seq_len >= 4"):
        SyntheticTask("order").sample(1, 3, np.random.default_rng(0))
    assert TASKS == ("copy", "reverse", "sort", "recall", "order")


@pytest.mark.parametrize("seq_len", [4, 9, 64])
def test_order_answer_is_the_capital_that_comes_first(seq_len: int):
    task = SyntheticTask("order")
    x, y = task.sample(64, seq_len, np.random.default_rng(seq_len))
    for ids, labels in zip(x, y):
        pad, prompt, answer = _split(task, ids, labels)
        assert pad == "" and prompt.endswith("?") and len(answer) == 1
        letters = prompt[:-1]
        capitals = [c for c in letters if c.isupper()]
        assert len(letters) == seq_len - 2 and len(capitals) == 2 and len(set(capitals)) == 2
        assert all(c.islower() for c in letters if not c.isupper())
        assert answer == capitals[0] == task.answer(prompt)
    # both orders occur: the answer is not always the smaller letter, nor always the left one
    firsts = [task.decode(row[:-2]) for row in x]
    smaller = [min(c for c in f if c.isupper()) for f in firsts]
    assert 0 < sum(a == s for a, s in zip(task.decode(x[:, -1]), smaller)) < 64


@pytest.mark.parametrize("task_name", TASKS)
def test_an_encoder_sees_the_answers_hidden(task_name: str):
    """causal=False: the same draws, every answer token replaced by ``_``; labels keep it."""
    task = SyntheticTask(task_name)
    x, y = task.sample(8, 12, np.random.default_rng(3))
    xe, ye = task.sample(8, 12, np.random.default_rng(3), causal=False)
    np.testing.assert_array_equal(ye, y)
    answer = y != IGNORE_INDEX
    assert (xe[answer] == ord("_")).all() and (xe[~answer] == x[~answer]).all()


@pytest.mark.parametrize("causal", [True, False])
def test_swap_marked_gives_the_other_order_of_the_same_tokens(causal: bool):
    task = SyntheticTask("order")
    x, y = task.sample(32, 16, np.random.default_rng(1), causal=causal)
    x2, y2 = swap_marked(x, y, causal=causal)
    for a, b, ya, yb in zip(x, x2, y, y2):
        prompt_a, prompt_b = task.decode(a[:-1]), task.decode(b[:-1])
        assert sorted(prompt_a) == sorted(prompt_b) and prompt_a != prompt_b
        assert chr(yb[-1]) == task.answer(prompt_b) != chr(ya[-1])
        assert (b[-1] == yb[-1]) if causal else (b[-1] == ord("_"))
    assert (swap_marked(x2, y2, causal=causal)[0] == x).all(), "swapping twice: the original"
    with pytest.raises(ValueError, match="synthetic:order"):
        swap_marked(*SyntheticTask("copy").sample(2, 9, np.random.default_rng(0)))


def test_exact_match_of_an_encoder_reads_each_position_in_place():
    labels = torch.tensor([[IGNORE_INDEX] * 3 + list(b"ab")])
    in_place = torch.zeros(1, 5, 256)
    in_place[0, 3, ord("a")] = in_place[0, 4, ord("b")] = 1.0  # logits at i guess label i
    assert exact_match_from_logits(in_place, labels, causal=False) == 1.0
    assert exact_match_from_logits(in_place, labels, causal=True) == 0.0
    assert exact_match_from_logits(in_place.numpy(), labels.numpy(), causal=False) == 1.0
