"""hf: sources, offline through the ``text`` builder on local files."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from posemb.data.cache import cached_tokens
from posemb.data.errors import DataError
from posemb.data.sources import open_source
from posemb.data.tokenizers import ByteTokenizer

LINES = [f"line {i}: {'word ' * (i % 5)}".rstrip() for i in range(100)]


@pytest.fixture
def datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    ds = pytest.importorskip("datasets")
    monkeypatch.setattr(ds.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ds.disable_progress_bars()
    return ds


def test_hf_text_builder_reads_a_local_file_offline(datasets, tmp_path: Path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    src = open_source(f"hf:text:{path}")
    assert src.name == f"hf:text:{path}"
    train, val = list(src.train_texts()), list(src.val_texts())
    assert train == LINES[:90] and val == LINES[90:]  # no validation split: last 10% of rows
    assert src.fingerprint() == open_source(f"hf:text:{path}").fingerprint()
    # rows of the text builder are lines: the token stream reads like the file
    tokens = cached_tokens(src, "val", ByteTokenizer())
    assert bytes(tokens.tolist()).decode() == "\n".join(LINES[90:])


def test_hf_text_builder_accepts_a_glob(datasets, tmp_path: Path):
    for name, lines in (("a.txt", LINES[:50]), ("b.txt", LINES[50:])):
        (tmp_path / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    src = open_source(f"hf:text:{tmp_path / '*.txt'}")
    assert sorted(list(src.train_texts()) + list(src.val_texts())) == sorted(LINES)


def test_hf_unloadable_dataset_is_a_data_error(datasets, tmp_path: Path):
    with pytest.raises(DataError, match=r"could not load 'hf:text:"):
        open_source(f"hf:text:{tmp_path / 'missing.txt'}")


def test_hf_without_datasets_says_how_to_install(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(DataError) as info:
        open_source("hf:wikitext:wikitext-2-raw-v1")
    assert str(info.value) == (
        "hf:wikitext:wikitext-2-raw-v1 needs the optional 'datasets' package: "
        "pip install 'posemb[data]'"
    )


@pytest.mark.parametrize("spec", ["hf:text", "hf:text:", "hf:json"])
def test_file_builder_without_files_names_the_fix(datasets, spec):
    # load_dataset("text") with no data_files failed deep inside datasets, with no hint
    with pytest.raises(DataError, match=r"names no files: use hf:\w+:PATH_OR_GLOB"):
        open_source(spec)
