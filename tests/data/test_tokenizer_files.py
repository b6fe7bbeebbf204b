"""Loading tokenizer files: a bad file names itself; a tokenizer.json linked from outside its
folder is refused (docs/DESIGN.md, "The run folder")."""

from __future__ import annotations

from pathlib import Path

import pytest

from posemb.data import UnsafePathError, build_tokenizer, load_tokenizer


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"\xff\xfe{}", "not UTF-8"),
        (b"{nope", "not valid JSON"),
        (b'{"format": "posemb-tokenizer", "kind": "char"}', "'vocab' list"),
        (b'{"format": "posemb-tokenizer", "kind": "char", "vocab": ["a", "a"]}', "distinct"),
        (b'{"format": "posemb-tokenizer", "kind": "word"}', "unknown tokenizer kind"),
    ],
)
def test_a_bad_file_names_itself(tmp_path: Path, content: bytes, says: str):
    (tmp_path / "tokenizer.json").write_bytes(content)
    with pytest.raises(ValueError, match=says) as info:
        load_tokenizer(tmp_path)
    assert str(tmp_path / "tokenizer.json") in str(info.value)


def test_a_malformed_hugging_face_file_names_itself(tmp_path: Path):
    pytest.importorskip("tokenizers")
    (tmp_path / "tokenizer.json").write_text('{"model": {"type": "BPE", "vocab": 3}}')
    for load in (load_tokenizer, lambda p: build_tokenizer(f"bpe:{p}")):
        with pytest.raises(ValueError, match="not a Hugging Face tokenizer file") as info:
            load(tmp_path)
        assert str(tmp_path / "tokenizer.json") in str(info.value)


def test_a_folder_named_tokenizer_json_is_called_a_folder(tmp_path: Path):
    (tmp_path / "tokenizer.json").mkdir()
    with pytest.raises(IsADirectoryError, match="is a directory"):
        load_tokenizer(tmp_path)


def test_a_tokenizer_linked_from_outside_the_run_is_refused(tmp_path: Path):
    build_tokenizer("byte").save(tmp_path / "elsewhere")
    run = tmp_path / "run"
    run.mkdir()
    (run / "tokenizer.json").symlink_to(tmp_path / "elsewhere" / "tokenizer.json")
    with pytest.raises(UnsafePathError, match="outside"):
        load_tokenizer(run)
    # the file itself, given by the user, is read wherever it lies
    assert load_tokenizer(run / "tokenizer.json").kind == "byte"
    # a link inside the folder is followed
    (run / "tokenizer.json").unlink()
    build_tokenizer("byte").save(run / "sub")
    (run / "tokenizer.json").symlink_to(Path("sub") / "tokenizer.json")
    assert load_tokenizer(run).kind == "byte"
