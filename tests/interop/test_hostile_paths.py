"""Paths read from files are hostile (docs/DESIGN.md, "The run folder"): shard names in an
index and links in a model folder must stay inside that folder, or extend, import-hf,
export-hf and analyze refuse with one line (exit 2) before anything is read or written
outside it.

Decision tested here: a link that stays inside the folder is followed (its content is
read, and ``extend`` copies it into DST as a plain file).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

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
