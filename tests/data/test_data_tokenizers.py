"""Tokenizers: exact round-trips, saved files, loading, and error messages."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from posemb.data.tokenizers import (
    TOKENIZER_FILE,
    BPETokenizer,
    ByteTokenizer,
    CharTokenizer,
    Tokenizer,
    build_tokenizer,
    load_tokenizer,
)

UNICODE = "naïve café — 東京 🙂🚀 \t\n\x00 zero-width\u200bjoin 👩\u200d💻"
TRAIN_TEXT = (
    "def add(a, b):\n    return a + b\n\n" * 20
    + "The quick brown fox jumps over the lazy dog.\n" * 20
)


def test_byte_ids_are_utf8_bytes_and_round_trip_any_string():
    tok = build_tokenizer("byte")
    assert tok.vocab_size == 256 and tok.kind == "byte"
    assert tok.encode("é🙂") == [0xC3, 0xA9, 0xF0, 0x9F, 0x99, 0x82]
    for text in (UNICODE, "", TRAIN_TEXT):
        assert tok.decode(tok.encode(text)) == text


def test_byte_decode_replaces_invalid_utf8_and_rejects_out_of_range_ids():
    tok = ByteTokenizer()
    assert tok.decode([0x61, 0xFF, 0x62]) == "a\ufffdb"
    with pytest.raises(ValueError, match=r"token id 256 .*vocab_size 256"):
        tok.decode([1, 256])


def test_char_vocab_is_sorted_characters_plus_newline_and_round_trips():
    tok = build_tokenizer("char", ["hello world", "🙂!"])
    assert tok.vocab == sorted(set("hello world🙂!\n"))
    assert tok.vocab_size == len(tok.vocab)
    text = "world, hello!\n🙂".replace(",", "")
    assert tok.decode(tok.encode(text)) == text
    assert tok.encode("eh") == [tok.vocab.index("e"), tok.vocab.index("h")]


def test_char_unknown_character_is_a_clear_error():
    tok = CharTokenizer.train(["abc"])
    with pytest.raises(ValueError, match=r"'z' \(U\+007A\) at offset 2 .*not in"):
        tok.encode("abz")
    with pytest.raises(ValueError, match=r"token id 9 is outside"):
        tok.decode([9])


def test_char_on_shakespeare_has_nanogpt_vocab(shakespeare: Path):
    tok = build_tokenizer("char", [shakespeare.read_text(encoding="utf-8")])
    assert tok.vocab_size == 65  # nanoGPT shakespeare_char: "vocab size: 65"
    assert tok.decode(tok.encode("First Citizen:\n")) == "First Citizen:\n"


def test_bpe_trains_merges_and_round_trips_unseen_text():
    pytest.importorskip("tokenizers")
    tok = build_tokenizer("bpe", [TRAIN_TEXT], vocab_size=300)
    assert isinstance(tok, BPETokenizer)
    assert 256 < tok.vocab_size <= 300
    ids = tok.encode(TRAIN_TEXT)
    assert len(ids) < len(TRAIN_TEXT.encode()) / 2  # merges learned from the repetition
    for text in (TRAIN_TEXT, UNICODE, "  leading and trailing  ", ""):
        assert tok.decode(tok.encode(text)) == text


@pytest.mark.parametrize("kind", ["byte", "char", "bpe"])
def test_save_then_load_gives_the_same_tokenizer(kind: str, tmp_path: Path):
    if kind == "bpe":
        pytest.importorskip("tokenizers")
    tok = build_tokenizer(kind, [TRAIN_TEXT + UNICODE], vocab_size=300)
    path = tok.save(tmp_path / "run")
    assert path == tmp_path / "run" / TOKENIZER_FILE
    data = json.loads(path.read_text(encoding="utf-8"))
    assert (data.get("format") == "posemb-tokenizer") == (kind != "bpe")
    loaded = load_tokenizer(tmp_path / "run")
    assert isinstance(loaded, Tokenizer)
    assert type(loaded) is type(tok) and loaded.kind == kind
    assert loaded.vocab_size == tok.vocab_size
    assert loaded.fingerprint() == tok.fingerprint()
    assert loaded.encode(TRAIN_TEXT + UNICODE) == tok.encode(TRAIN_TEXT + UNICODE)
    assert load_tokenizer(path).fingerprint() == tok.fingerprint()  # the file itself works too
    assert [p.name for p in (tmp_path / "run").iterdir()] == [TOKENIZER_FILE]  # no temp left


def test_bpe_path_loads_a_hugging_face_tokenizer_json(tmp_path: Path):
    tk = pytest.importorskip("tokenizers")
    tok = build_tokenizer("bpe", [TRAIN_TEXT], vocab_size=280)
    tok.save(tmp_path)
    hf = tk.Tokenizer.from_file(str(tmp_path / TOKENIZER_FILE))  # a real HF file
    assert hf.encode("return a + b").ids == tok.encode("return a + b")
    again = build_tokenizer(f"bpe:{tmp_path}")
    assert again.encode(TRAIN_TEXT) == tok.encode(TRAIN_TEXT)
    with pytest.raises(ValueError, match=r"no tokenizer file"):
        build_tokenizer(f"bpe:{tmp_path / 'missing.json'}")


def test_fingerprints_differ_between_tokenizers():
    a = build_tokenizer("char", ["abc"])
    b = build_tokenizer("char", ["abd"])
    assert a.fingerprint() != b.fingerprint() != ByteTokenizer().fingerprint()


def test_unknown_kind_names_the_closest():
    with pytest.raises(ValueError, match=r"unknown tokenizer kind 'bytes'. Did you mean 'byte'"):
        build_tokenizer("bytes")
    with pytest.raises(ValueError, match=r"'chr'.*'char'"):
        build_tokenizer("chr", ["x"])


def test_trained_kinds_need_texts():
    with pytest.raises(ValueError, match=r"trained on text"):
        build_tokenizer("char", None)


def test_load_errors(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=r"no tokenizer.json"):
        load_tokenizer(tmp_path)
    (tmp_path / TOKENIZER_FILE).write_text('{"hello": 1}', encoding="utf-8")
    with pytest.raises(ValueError, match=r"neither a posemb tokenizer"):
        load_tokenizer(tmp_path)
    (tmp_path / TOKENIZER_FILE).write_text("not json", encoding="utf-8")
    with pytest.raises(ValueError, match=r"not valid JSON"):
        load_tokenizer(tmp_path)


def test_bpe_without_tokenizers_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    with pytest.raises(ImportError, match=r"pip install 'posemb\[hf\]'"):
        build_tokenizer("bpe", ["text"])
