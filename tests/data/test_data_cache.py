"""Token cache: tokenise once, memory-map after, atomic files, keys that follow the content."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from posemb.data.cache import _pieces, cached_tokens, default_cache_dir, token_dtype
from posemb.data.errors import DataError
from posemb.data.sources import open_source
from posemb.data.tokenizers import ByteTokenizer, CharTokenizer

DOCS = ["first document", "second — with ünïcode 🙂", "third\nand last"]


class CountingTokenizer:
    """A byte tokenizer that counts ``encode`` calls (and can fake a large vocabulary)."""

    kind = "byte"

    def __init__(self, vocab_size: int = 256, fail_on: str | None = None) -> None:
        self.inner = ByteTokenizer()
        self.vocab_size = vocab_size
        self.calls = 0
        self.fail_on = fail_on

    def encode(self, text: str) -> list[int]:
        self.calls += 1
        if self.fail_on is not None and self.fail_on in text:
            raise RuntimeError("simulated crash while tokenising")
        return self.inner.encode(text)

    def decode(self, ids):
        return self.inner.decode(ids)

    def save(self, directory):
        return self.inner.save(directory)

    def fingerprint(self) -> str:
        return f"counting-{self.vocab_size}"


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in (folder / "tokens").iterdir())


def test_second_call_reads_the_cache_without_tokenising(tmp_path: Path):
    tok = CountingTokenizer()
    first = cached_tokens(DOCS, "train", tok, tmp_path)
    assert tok.calls == len(DOCS) + 1  # each document, plus the separator once
    second = cached_tokens(DOCS, "train", tok, tmp_path)
    assert tok.calls == len(DOCS) + 1
    assert isinstance(second, np.memmap) and second.dtype == np.uint16
    np.testing.assert_array_equal(first, second)
    expected = ByteTokenizer().encode("\n\n".join(DOCS))
    assert second.tolist() == expected
    assert not second.flags.writeable


def test_files_and_sidecar(tmp_path: Path):
    cached_tokens(DOCS, "val", CountingTokenizer(), tmp_path)
    names = _files(tmp_path)
    assert len(names) == 2 and names[0].endswith(".bin") and names[1].endswith(".json")
    assert names[0].startswith("texts-val-")
    assert not [n for n in names if n.startswith(".") or n.endswith(".tmp")]  # no temp files
    meta = json.loads((tmp_path / "tokens" / names[1]).read_text())
    length = len("\n\n".join(DOCS).encode())
    assert meta["dtype"] == "uint16" and meta["length"] == length and meta["split"] == "val"
    assert meta["tokenizer_fingerprint"] == "counting-256" and meta["source_fingerprint"]
    assert (tmp_path / "tokens" / names[0]).stat().st_size == 2 * length


def test_large_vocabulary_uses_uint32(tmp_path: Path):
    assert token_dtype(65535) == np.uint16 and token_dtype(65536) == np.uint32
    out = cached_tokens(DOCS, "train", CountingTokenizer(vocab_size=70_000), tmp_path)
    assert out.dtype == np.uint32
    assert out.tolist() == ByteTokenizer().encode("\n\n".join(DOCS))


def test_a_crash_mid_write_leaves_nothing_behind(tmp_path: Path):
    with pytest.raises(RuntimeError, match="simulated crash"):
        cached_tokens(DOCS, "train", CountingTokenizer(fail_on="third"), tmp_path)
    assert _files(tmp_path) == []
    tok = CountingTokenizer()
    assert len(cached_tokens(DOCS, "train", tok, tmp_path)) > 0 and tok.calls > 0


def test_key_follows_source_split_and_tokenizer(tmp_path: Path):
    path = tmp_path / "corpus.txt"
    path.write_text("abcdefghij" * 10, encoding="utf-8")
    src = open_source(str(path))
    tok = CountingTokenizer()
    train = cached_tokens(src, "train", tok, tmp_path / "c")
    assert bytes(train.tolist()).decode() == ("abcdefghij" * 10)[:90]
    val = cached_tokens(src, "val", tok, tmp_path / "c")
    assert bytes(val.tolist()).decode() == "abcdefghij"
    char = CharTokenizer.train(["abcdefghij"])
    as_chars = cached_tokens(src, "train", char, tmp_path / "c")
    assert char.decode(as_chars.tolist()) == ("abcdefghij" * 10)[:90]
    assert len(_files(tmp_path / "c")) == 6
    calls = tok.calls
    path.write_text("0123456789" * 10, encoding="utf-8")  # new content, new size
    changed = cached_tokens(open_source(str(path)), "train", tok, tmp_path / "c")
    assert tok.calls > calls
    assert bytes(changed.tolist()).decode() == ("0123456789" * 10)[:90]


def test_a_torn_cache_entry_is_rebuilt(tmp_path: Path):
    tok = CountingTokenizer()
    cached_tokens(DOCS, "train", tok, tmp_path)
    bin_path = next((tmp_path / "tokens").glob("*.bin"))
    bin_path.write_bytes(bin_path.read_bytes()[:-2])  # length no longer matches the sidecar
    calls = tok.calls
    again = cached_tokens(DOCS, "train", tok, tmp_path)
    assert tok.calls > calls
    assert again.tolist() == ByteTokenizer().encode("\n\n".join(DOCS))


def test_default_dir_empty_split_and_one_shot_iterables(tmp_path: Path):
    assert default_cache_dir() == Path(__import__("os").environ["POSEMB_CACHE"])
    empty = cached_tokens([], "val", ByteTokenizer())
    assert empty.shape == (0,) and empty.dtype == np.uint16
    with pytest.raises(DataError, match=r"one-shot iterable"):
        cached_tokens(iter(DOCS), "train", ByteTokenizer(), tmp_path)
    out = cached_tokens(iter(DOCS), "train", ByteTokenizer(), tmp_path, fingerprint="docs-v1")
    assert len(out) == len("\n\n".join(DOCS).encode())
    with pytest.raises(DataError, match=r"generates its batches"):
        cached_tokens(open_source("synthetic:copy"), "train", ByteTokenizer(), tmp_path)
    with pytest.raises(DataError, match=r"unknown split"):
        cached_tokens(DOCS, "dev", ByteTokenizer(), tmp_path)


def test_long_documents_are_encoded_in_pieces_cut_after_newlines():
    doc = "".join(f"line {i}\n" for i in range(300)) + "x" * 250
    pieces = list(_pieces(doc, size=100))
    assert "".join(pieces) == doc
    assert all(len(p) <= 100 for p in pieces)
    assert all(p.endswith("\n") for p in pieces[:-4])  # the newline-free tail is cut anywhere
