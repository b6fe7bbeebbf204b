"""Batching: window shapes, rank shards, exact RNG resume, evaluation windows, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from posemb.data.batching import (
    count_windows,
    iter_windows,
    rng_from_json,
    rng_state_to_json,
    sample_batch,
    shard,
)
from posemb.data.errors import DataError

TOKENS = np.arange(1000, dtype=np.uint16)


def test_windows_are_contiguous_slices_of_the_corpus():
    x = sample_batch(TOKENS, 8, 16, np.random.default_rng(0))
    assert x.shape == (8, 16) and x.dtype == torch.int64
    assert (x[:, 1:] - x[:, :-1] == 1).all()  # consecutive tokens of the arange corpus
    assert int(x.min()) >= 0 and int(x.max()) < 1000


def test_memmapped_tokens_work(tmp_path: Path):
    path = tmp_path / "t.bin"
    TOKENS.tofile(path)
    mm = np.memmap(path, dtype=np.uint16, mode="r")
    a = sample_batch(mm, 4, 32, np.random.default_rng(3))
    b = sample_batch(TOKENS, 4, 32, np.random.default_rng(3))
    assert torch.equal(a, b)


def test_each_rank_reads_only_its_own_shard():
    seen = []
    for rank in range(4):
        rng = np.random.default_rng(rank)
        values = set()
        for _ in range(50):
            values |= set(
                sample_batch(TOKENS, 8, 10, rng, rank=rank, world_size=4).flatten().tolist()
            )
        assert min(values) >= rank * 250 and max(values) < (rank + 1) * 250
        seen.append(values)
    for i in range(4):
        for j in range(i + 1, 4):
            assert seen[i].isdisjoint(seen[j])
    assert [len(shard(TOKENS, r, 3)) for r in range(3)] == [333, 333, 334]
    with pytest.raises(ValueError, match=r"rank=4, world_size=4"):
        shard(TOKENS, 4, 4)


def test_rng_state_json_round_trip_reproduces_the_next_batch():
    rng = np.random.default_rng(1234)
    sample_batch(TOKENS, 4, 8, rng)  # advance a little
    saved = json.dumps(rng_state_to_json(rng))
    expected = sample_batch(TOKENS, 4, 8, rng)
    resumed = rng_from_json(json.loads(saved))
    assert torch.equal(sample_batch(TOKENS, 4, 8, resumed), expected)
    assert torch.equal(sample_batch(TOKENS, 4, 8, rng_from_json(saved)), expected)
    with pytest.raises(ValueError, match=r"bit generator"):
        rng_from_json({"bit_generator": "NotAGenerator", "state": {}})
    with pytest.raises(ValueError, match=r"MT19937 generator is not JSON"):
        rng_state_to_json(np.random.Generator(np.random.MT19937(0)))


def test_short_corpus_names_its_length_and_the_fix():
    with pytest.raises(
        DataError, match=r"16 tokens, fewer than one window of 17: lower train.seq_len"
    ):
        sample_batch(TOKENS[:16], 2, 17, np.random.default_rng(0))
    assert sample_batch(TOKENS[:17], 2, 17, np.random.default_rng(0)).shape == (2, 17)
    with pytest.raises(ValueError, match=r"flat 1-D"):
        sample_batch(TOKENS.reshape(10, 100), 2, 16, np.random.default_rng(0))
    with pytest.raises(DataError, match=r"each of 8 ranks gets a shard of about 125"):
        sample_batch(TOKENS, 2, 200, np.random.default_rng(0), rank=1, world_size=8)


def test_iter_windows_nonoverlapping_and_sliding():
    tokens = np.arange(10, dtype=np.uint16)
    windows = [w.tolist() for w in iter_windows(tokens, 4)]
    assert windows == [[0, 1, 2, 3], [4, 5, 6, 7]]
    sliding = [w[0].item() for w in iter_windows(tokens, 4, stride=2)]
    assert sliding == [0, 2, 4, 6]
    assert count_windows(10, 4) == 2 and count_windows(10, 4, 2) == 4 and count_windows(3, 4) == 0
    assert all(w.dtype == torch.int64 for w in iter_windows(tokens, 4))
    with pytest.raises(DataError, match=r"10 tokens, fewer than one window of seq_len=11"):
        next(iter_windows(tokens, 11))
    with pytest.raises(ValueError, match=r"stride"):
        next(iter_windows(tokens, 4, stride=5))
