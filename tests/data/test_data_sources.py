"""Text sources: stdlib, file, directory, glob, errors, and the character split."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from posemb.data.errors import DataError
from posemb.data.sources import (
    FileSource,
    FilesSource,
    TextSource,
    is_synthetic,
    open_source,
    split_chars,
)
from posemb.data.synthetic import SyntheticTask


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Create ``files`` (relative path -> text) under ``root``; return ``root``."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_stdlib_finds_library_code_without_tests_or_site_packages():
    src = open_source("stdlib")
    assert isinstance(src, FilesSource) and src.name == "stdlib"
    assert "os.py" in src.relpaths and "json/decoder.py" in src.relpaths
    assert len(src.files) > 200
    size_mb = sum(f.stat().st_size for f in src.files) / 1e6
    assert 2 < size_mb < 30
    for rel in src.relpaths:
        parts = rel.split("/")
        assert rel.endswith(".py")
        assert not {"test", "tests", "site-packages", "idlelib", "lib2to3"} & set(parts), rel
    assert src.relpaths == sorted(src.relpaths)


def test_stdlib_split_is_deterministic_disjoint_and_about_val_fraction():
    a, b = open_source("stdlib"), open_source("stdlib")
    val_a = [r for r, v in zip(a.relpaths, a._is_val) if v]
    val_b = [r for r, v in zip(b.relpaths, b._is_val) if v]
    assert val_a == val_b
    assert not a.by_chars
    assert 0.03 < len(val_a) / len(a.relpaths) < 0.2
    train_rel = [r for r, v in zip(a.relpaths, a._is_val) if not v]
    assert set(train_rel).isdisjoint(val_a)
    assert sorted(train_rel + val_a) == a.relpaths
    val_docs = list(a.val_texts())
    root = Path(a.root)
    assert val_docs == [(root / r).read_text(encoding="utf-8", errors="replace") for r in val_a]
    assert sum(1 for _ in a.train_texts()) == len(train_rel)
    # a larger val_fraction moves more files to val, keeping the old ones
    c = open_source("stdlib", val_fraction=0.3)
    val_c = {r for r, v in zip(c.relpaths, c._is_val) if v}
    assert set(val_a) < val_c


def test_stdlib_fingerprint_is_stable_and_keyed_on_split():
    assert open_source("stdlib").fingerprint() == open_source("stdlib").fingerprint()
    assert (
        open_source("stdlib").fingerprint() != open_source("stdlib", val_fraction=0.2).fingerprint()
    )


def test_file_source_splits_characters_90_10(tmp_path: Path):
    text = "".join(chr(ord("a") + i % 26) for i in range(1003)) + "é🙂"
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    src = open_source(str(path))
    assert isinstance(src, FileSource) and src.name == "corpus.txt"
    cut = int(len(text) * 0.9)  # 904 of 1005 characters
    assert list(src.train_texts()) == [text[:cut]]
    assert list(src.val_texts()) == [text[cut:]]


def test_file_source_matches_nanogpt_shakespeare_split(shakespeare: Path):
    src = open_source(str(shakespeare))
    # nanoGPT data/shakespeare_char/prepare.py: "train has 1,003,854 tokens, val has 111,540"
    assert sum(map(len, src.train_texts())) == 1_003_854
    assert sum(map(len, src.val_texts())) == 111_540


def test_file_fingerprint_changes_with_content(tmp_path: Path):
    path = tmp_path / "a.txt"
    path.write_text("one", encoding="utf-8")
    before = open_source(str(path)).fingerprint()
    assert open_source(str(path)).fingerprint() == before
    path.write_text("one two", encoding="utf-8")
    assert open_source(str(path)).fingerprint() != before


def test_directory_source_reads_text_files_recursively_split_by_path(tmp_path: Path):
    files = {f"part{i // 10}/doc{i:02d}.txt": f"document {i}\n" for i in range(60)}
    files["notes/readme.md"] = "# notes\n"
    root = write_tree(tmp_path / "corpus", files)
    (root / "blob.bin").write_bytes(b"\x00\x01")
    write_tree(root, {".git/config.txt": "hidden", "__pycache__/x.py": "cached"})
    src = open_source(str(root))
    assert isinstance(src, FilesSource) and src.name == "corpus"
    assert sorted(src.relpaths) == sorted(files)
    assert not src.by_chars
    train, val = list(src.train_texts()), list(src.val_texts())
    assert val and train
    assert sorted(train + val) == sorted(files.values())
    assert set(train).isdisjoint(val)


def test_directory_with_too_few_files_falls_back_to_character_split(tmp_path: Path):
    text = "x" * 50 + "y" * 50
    root = write_tree(tmp_path / "one", {"only.txt": text[:70], "z.md": text[70:]})
    src = open_source(str(root))
    assert src.by_chars
    assert "".join(src.train_texts()) == text[:90]
    assert "".join(src.val_texts()) == text[90:]


def test_glob_source_matches_only_the_pattern(tmp_path: Path):
    root = write_tree(tmp_path, {"a/x.md": "x", "a/b/y.md": "y", "a/z.txt": "z"})
    src = open_source(str(root / "a" / "**" / "*.md"))
    assert isinstance(src, FilesSource)
    assert sorted(src.relpaths) == ["b/y.md", "x.md"]
    assert sorted("".join(src.train_texts()) + "".join(src.val_texts())) == ["x", "y"]


@pytest.mark.parametrize("spec", ["no/such/file.txt", "missing-dir/"])
def test_missing_path_names_the_path_and_what_is_accepted(spec: str):
    with pytest.raises(DataError) as info:
        open_source(spec)
    msg = str(info.value)
    assert spec in msg
    for accepted in ("stdlib", "file", "directory", "glob", "synthetic:copy|reverse", "hf:NAME"):
        assert accepted in msg
    assert isinstance(info.value, ValueError)


def test_glob_without_matches_and_empty_directory_are_errors(tmp_path: Path):
    with pytest.raises(DataError, match=r"matches no files"):
        open_source(str(tmp_path / "*.nothing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"holds no text files"):
        open_source(str(tmp_path / "empty"))


def test_synthetic_specs_open_as_tasks():
    assert is_synthetic("synthetic:copy") and not is_synthetic("stdlib")
    task = open_source("synthetic:sort")
    assert isinstance(task, SyntheticTask) and not isinstance(task, TextSource)
    with pytest.raises(ValueError, match=r"Did you mean 'reverse'"):
        open_source("synthetic:revers")


def test_bad_split_and_val_fraction(tmp_path: Path):
    path = tmp_path / "a.txt"
    path.write_text("abc", encoding="utf-8")
    with pytest.raises(DataError, match=r"unknown split 'test'"):
        list(open_source(str(path)).texts("test"))
    with pytest.raises(DataError, match=r"val_fraction"):
        open_source(str(path), val_fraction=1.0)


def test_split_chars_partitions_the_concatenation():
    docs = ["abc", "", "defgh", "ij", "klmnopqrst"]
    whole = "".join(docs)
    for frac in (0.0, 0.1, 0.25, 0.5, 0.9):
        train = "".join(split_chars(lambda: iter(docs), "train", frac))
        val = "".join(split_chars(lambda: iter(docs), "val", frac))
        assert train + val == whole
        assert len(train) == int(len(whole) * (1 - frac))


def test_home_relative_paths_expand(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "t.txt").write_text("hello", encoding="utf-8")
    assert open_source("~" + os.sep + "t.txt").name == "t.txt"


def test_binary_and_non_utf8_files_are_refused_naming_the_file(tmp_path: Path):
    # read with errors="replace", a binary or latin-1 file trained silently on U+FFFD garbage
    binary = tmp_path / "weights.txt"
    binary.write_bytes(b"text\x00\x01\x02" * 50)
    with pytest.raises(DataError, match=r"weights\.txt.*binary file"):
        list(open_source(str(binary)).train_texts())
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café naïve\n".encode("latin-1") * 50)
    with pytest.raises(DataError, match=r"latin1\.txt.*not UTF-8 text.*iconv"):
        list(open_source(str(latin1)).train_texts())
    root = write_tree(
        tmp_path / "corpus", {f"doc{i:02d}.txt": f"document {i}\n" for i in range(30)}
    )
    (root / "doc07.txt").write_bytes(b"\xff\xfe broken")
    with pytest.raises(DataError, match=r"doc07\.txt.*not UTF-8"):
        src = open_source(str(root))
        list(src.train_texts()) + list(src.val_texts())


def test_file_text_keeps_universal_newlines(tmp_path: Path):
    path = tmp_path / "crlf.txt"
    path.write_bytes(b"one\r\ntwo\rthree\n" * 10)
    src = open_source(str(path), val_fraction=0.0)
    assert "".join(src.train_texts()) == "one\ntwo\nthree\n" * 10
