"""Paths read from files are hostile (docs/DESIGN.md, "The run folder"): shard names in an
index and links in a model folder must stay inside that folder, or extend, import-hf,
export-hf and analyze refuse with one line (exit 2) before anything is read or written
outside it.

Decision tested here: a link that stays inside the folder is followed (its content is
read, and ``extend`` copies it into DST as a plain file). A FIFO where a file is expected is
refused in one line before anything opens it (opening it blocked forever: issue 25).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

import posemb
from posemb.cli.main import main

COMMANDS = ("extend", "import-hf", "analyze")


def cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def one_line(code: int, err: str) -> str:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("posemb: error: "), err
    assert "Traceback" not in err
    return lines[0]


def command(name: str, src: Path, dst: Path) -> list[str]:
    if name == "extend":
        return ["extend", str(src), str(dst), "--to", "128", "--method", "tile"]
    if name == "import-hf":
        return ["import-hf", str(src), str(dst)]
    return ["analyze", str(src), "--out", str(dst)]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def outside_names(tmp_path: Path) -> dict[str, str]:
    return {"absolute": str(tmp_path / "victim.safetensors"), "dotdot": "../victim.safetensors"}


@pytest.mark.parametrize("kind", ["absolute", "dotdot"])
@pytest.mark.parametrize("name", COMMANDS)
def test_index_naming_a_shard_outside_the_folder_is_refused(
    tmp_path, capsys, make_gpt2_dir, name, kind
):
    # SRC's index sends every tensor to tmp_path/victim.safetensors, a complete GPT-2 weights
    # file outside SRC: without the check, extend overwrote it (both spellings: DST's temporary
    # folder sits beside SRC) and import-hf / analyze read it
    src = make_gpt2_dir(tmp_path / "src", shards=2)
    make_gpt2_dir(tmp_path / "whole")
    shutil.copy(tmp_path / "whole" / "model.safetensors", tmp_path / "victim.safetensors")
    before = sha(tmp_path / "victim.safetensors")
    shard_name = outside_names(tmp_path)[kind]
    index = json.loads((src / "model.safetensors.index.json").read_text())
    index["weight_map"] = dict.fromkeys(index["weight_map"], shard_name)
    (src / "model.safetensors.index.json").write_text(json.dumps(index))

    code, _, err = cli(command(name, src, tmp_path / "dst"), capsys)
    assert sha(tmp_path / "victim.safetensors") == before, "the file outside SRC was written"
    line = one_line(code, err)
    assert "model.safetensors.index.json" in line and repr(shard_name) in line
    assert not (tmp_path / "dst").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src", "victim.safetensors", "whole"]


def test_extend_refuses_a_link_leaving_src_and_copies_nothing(tmp_path, capsys, make_gpt2_dir):
    src = make_gpt2_dir(tmp_path / "src")
    (tmp_path / "secret.txt").write_text("the secret\n")
    (src / "README.md").symlink_to(Path("..") / "secret.txt")
    line = one_line(*cli(command("extend", src, tmp_path / "dst"), capsys)[::2])
    assert "README.md" in line and "outside" in line and "secret.txt" in line
    assert not (tmp_path / "dst").exists()
    leaked = [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink()]
    leaked.remove(tmp_path / "secret.txt")
    assert all(b"the secret" not in p.read_bytes() for p in leaked)


@pytest.mark.parametrize("name", COMMANDS)
def test_weights_linked_from_outside_are_refused(tmp_path, capsys, make_gpt2_dir, name):
    src = make_gpt2_dir(tmp_path / "src")
    (src / "model.safetensors").rename(tmp_path / "outside.safetensors")
    (src / "model.safetensors").symlink_to(tmp_path / "outside.safetensors")
    line = one_line(*cli(command(name, src, tmp_path / "dst"), capsys)[::2])
    assert "model.safetensors" in line and "leads through a link to" in line and "cp -L" in line
    assert not (tmp_path / "dst").exists()


def test_import_refuses_a_tokenizer_linked_from_outside(tmp_path, capsys, make_gpt2_dir):
    src = make_gpt2_dir(tmp_path / "src")
    (tmp_path / "tok.json").write_text(
        '{"format": "posemb-tokenizer", "version": 1, "kind": "byte"}'
    )
    (src / "tokenizer.json").symlink_to(tmp_path / "tok.json")
    line = one_line(*cli(command("import-hf", src, tmp_path / "dst"), capsys)[::2])
    assert "tokenizer.json" in line and "outside" in line


def test_export_refuses_a_run_whose_files_link_outside(tmp_path, capsys, run_dir):
    (run_dir / "model.safetensors").rename(tmp_path / "elsewhere.safetensors")
    (run_dir / "model.safetensors").symlink_to(tmp_path / "elsewhere.safetensors")
    line = one_line(*cli(["export-hf", str(run_dir), str(tmp_path / "hf")], capsys)[::2])
    assert "model.safetensors" in line and "outside" in line
    assert not (tmp_path / "hf").exists()


def test_links_inside_the_folder_are_followed(tmp_path, capsys, make_gpt2_dir):
    src = make_gpt2_dir(tmp_path / "src", shards=2)
    (src / "card.txt").write_text("a model card\n")
    (src / "README.md").symlink_to("card.txt")
    blobs = src / "blobs"
    blobs.mkdir()
    shard = "model-00001-of-00002.safetensors"
    (src / shard).rename(blobs / "abc123")
    (src / shard).symlink_to(Path("blobs") / "abc123")  # as a snapshot folder holds them

    code, _, err = cli(command("extend", src, tmp_path / "dst"), capsys)
    assert code == 0, err
    readme = tmp_path / "dst" / "README.md"
    assert not readme.is_symlink() and readme.read_text() == "a model card\n"
    assert load_file(str(tmp_path / "dst" / shard))  # a real file with the shard's tensors
    code, _, err = cli(command("import-hf", src, tmp_path / "run"), capsys)
    assert code == 0, err
    code, _, err = cli(command("analyze", src, tmp_path / "analysis"), capsys)
    assert code == 0, err


def test_analyze_refuses_a_shard_name_through_a_link_leaving_the_folder(tmp_path, capsys):
    # a name without '..' that still leaves the folder through a linked sub-folder
    (tmp_path / "outside").mkdir()
    import torch

    save_file({"wpe.weight": torch.randn(8, 4)}, str(tmp_path / "outside" / "w.safetensors"))
    src = tmp_path / "src"
    src.mkdir()
    (src / "sub").symlink_to(tmp_path / "outside")
    (src / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    index = {"weight_map": {"wpe.weight": "sub/w.safetensors"}}
    (src / "model.safetensors.index.json").write_text(json.dumps(index))
    line = one_line(*cli(command("analyze", src, tmp_path / "dst"), capsys)[::2])
    assert "sub/w.safetensors" in line and "outside" in line


# -- regular files only (issue 25): a FIFO where a file is expected is refused, never opened -------
@contextlib.contextmanager
def no_hang(seconds: int = 60):
    """Fail (instead of blocking the suite) when the command opens a FIFO and waits."""

    def hung(*_):
        raise TimeoutError(f"the command blocked for {seconds} s: it opened the FIFO")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize("fifo", ["model.safetensors", "config.json", "README.md"])
@pytest.mark.parametrize("name", [*COMMANDS, "eval"])
def test_a_fifo_in_a_model_folder_is_refused_before_it_is_opened(
    tmp_path, capsys, make_gpt2_dir, name, fifo
):
    src = make_gpt2_dir(tmp_path / "src")
    (src / fifo).unlink(missing_ok=True)
    os.mkfifo(src / fifo)
    args = command(name, src, tmp_path / "dst")
    if name == "eval":
        args = ["eval", str(src), "--lengths", "16", "--out", str(tmp_path / "dst")]
    with no_hang():
        code, _, err = cli(args, capsys)
    if fifo == "README.md" and name in ("analyze", "eval", "import-hf"):
        return  # a file these never read: whatever they do, they did not block on it
    line = one_line(code, err)
    assert f"{fifo}' is a FIFO (named pipe), not a regular file" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


@pytest.mark.parametrize("fifo", ["config.json", "model.safetensors", "tokenizer.json"])
@pytest.mark.parametrize("name", ["generate", "eval", "analyze", "extend", "export-hf"])
def test_a_fifo_in_a_run_is_refused_before_it_is_opened(tmp_path, capsys, run_dir, name, fifo):
    (run_dir / fifo).unlink()
    os.mkfifo(run_dir / fifo)
    dst = tmp_path / "dst"
    args = {
        "generate": ["generate", str(run_dir), "--prompt", "a", "--max-new-tokens", "2"],
        "eval": ["eval", str(run_dir), "--lengths", "16", "--tokens", "64", "--out", str(dst)],
        "analyze": ["analyze", str(run_dir), "--out", str(dst)],
        "extend": ["extend", str(run_dir), str(dst), "--to", "128", "--method", "tile"],
        "export-hf": ["export-hf", str(run_dir), str(dst)],
    }[name]
    with no_hang():
        code, _, err = cli(args, capsys)
    if fifo == "tokenizer.json" and name == "analyze":
        assert code == 0  # analyze reads the table only
        return
    line = one_line(code, err)
    assert f"{fifo}' is a FIFO (named pipe), not a regular file" in line, line
    assert not dst.exists()


# -- every reader of a run goes through the rule (issue 25) ---------------------------------------
@pytest.mark.parametrize("name", ["generate", "eval", "analyze", "export-hf", "load"])
def test_every_reader_refuses_run_weights_linked_from_outside(tmp_path, capsys, run_dir, name):
    outside = tmp_path / "elsewhere.safetensors"
    (run_dir / "model.safetensors").rename(outside)
    (run_dir / "model.safetensors").symlink_to(outside)
    dst = tmp_path / "dst"
    if name == "load":
        with pytest.raises(ValueError, match="leads through a link to .*outside"):
            posemb.load(run_dir)
        return
    args = {
        "generate": ["generate", str(run_dir), "--prompt", "a", "--max-new-tokens", "2"],
        "eval": ["eval", str(run_dir), "--lengths", "16", "--tokens", "64", "--out", str(dst)],
        "analyze": ["analyze", str(run_dir), "--out", str(dst)],
        "export-hf": ["export-hf", str(run_dir), str(dst)],
    }[name]
    line = one_line(*cli(args, capsys)[::2])
    assert "leads through a link to" in line and "outside" in line
    assert not dst.exists()


@pytest.mark.parametrize("name", ["generate", "load", "from_pretrained"])
def test_a_hugging_face_folder_where_a_run_is_expected_is_named_as_such(
    tmp_path, capsys, make_gpt2_dir, name
):
    src = make_gpt2_dir(tmp_path / "hf")
    want = "is a Hugging Face model folder, not a posemb run"
    if name == "generate":
        line = one_line(*cli(["generate", str(src), "--prompt", "a"], capsys)[::2])
        assert want in line
        return
    with pytest.raises(ValueError, match=want):
        posemb.load(src) if name == "load" else posemb.Transformer.from_pretrained(src)
