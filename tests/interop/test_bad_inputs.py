"""Bad input to extend, import-hf, export-hf and analyze: exit 2 with one line naming the
field or the file (never exit 1, never a traceback, nothing written)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posemb.cli.main import main


def one_line(args: list[str], capsys) -> str:
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("posemb: error: "), err
    return lines[0]


def extend(src: Path, dst: Path) -> list[str]:
    return ["extend", str(src), str(dst), "--to", "128", "--method", "tile"]


def edit_json(path: Path, **changes) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


# each numeric GPT-2 field, with each kind of wrong value: null, text, negative, fraction, zero
BAD_FIELDS = [
    ("n_layer", None),
    ("n_layer", 2.0),
    ("n_head", "2"),
    ("n_embd", -32),
    ("vocab_size", 0),
    ("n_positions", None),
    ("n_positions", 64.5),
    ("n_inner", -1),
    ("n_inner", "128"),
    ("layer_norm_epsilon", None),
    ("layer_norm_epsilon", "1e-5"),
    ("resid_pdrop", 1.5),
    ("initializer_range", -0.02),
    ("n_layer", True),
]


@pytest.mark.parametrize(("field", "value"), BAD_FIELDS)
def test_import_hf_names_a_bad_number_in_config(tmp_path, capsys, make_gpt2_dir, field, value):
    src = make_gpt2_dir(tmp_path / "hf")
    edit_json(src / "config.json", **{field: value})
    line = one_line(["import-hf", str(src), str(tmp_path / "run")], capsys)
    assert str(src / "config.json") in line and f"{field}={json.dumps(value)}" in line
    assert not (tmp_path / "run").exists()


def test_import_hf_names_a_missing_field(tmp_path, capsys, make_gpt2_dir):
    src = make_gpt2_dir(tmp_path / "hf")
    config = json.loads((src / "config.json").read_text())
    del config["n_head"]
    (src / "config.json").write_text(json.dumps(config))
    line = one_line(["import-hf", str(src), str(tmp_path / "run")], capsys)
    assert "lacks the field 'n_head'" in line


@pytest.mark.parametrize("value", [None, "64", -1, 64.0])
def test_extend_names_a_bad_limit_in_config(tmp_path, capsys, make_gpt2_dir, value):
    src = make_gpt2_dir(tmp_path / "hf")
    edit_json(src / "config.json", n_positions=value)
    line = one_line(extend(src, tmp_path / "dst"), capsys)
    assert f"n_positions={json.dumps(value)}" in line and "config.json" in line


@pytest.mark.parametrize("value", [-3, 0, 1_000_000_000_000, 65])
@pytest.mark.parametrize("command", ["extend", "analyze"])
def test_analyze_refuses_the_limits_extend_refuses(tmp_path, capsys, make_gpt2_dir, command, value):
    # docs/HF.md: analyze reads a folder's config as extend does; a limit that does not
    # describe the 64-row table is refused naming the field (not "--to 128 is smaller than
    # the current 1000000000000 positions")
    src = make_gpt2_dir(tmp_path / "hf")
    edit_json(src / "config.json", n_positions=value)
    dst = tmp_path / "dst"
    args = extend(src, dst) if command == "extend" else ["analyze", str(src), "--out", str(dst)]
    line = one_line(args, capsys)
    assert f"n_positions={value}" in line and "config.json" in line, line
    if value > 0:
        assert "does not match the position table" in line and "64 rows" in line
    assert not dst.exists()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        (
            {"model_type": "roberta", "max_position_embeddings": 66, "pad_token_id": "1"},
            "pad_token_id",
        ),
        (
            {"model_type": "roberta", "max_position_embeddings": 2, "pad_token_id": 1},
            "max_position_embeddings",
        ),
        ({"initializer_range": None}, "initializer_range"),
        ({"model_type": ["gpt2"]}, "model_type"),
    ],
)
def test_extend_names_other_bad_config_values(tmp_path, capsys, make_gpt2_dir, changes, field):
    src = make_gpt2_dir(tmp_path / "hf")
    edit_json(src / "config.json", **changes)
    line = one_line(extend(src, tmp_path / "dst"), capsys)
    assert field in line or repr(changes["model_type"]) in line


@pytest.mark.parametrize("where", ["hf", "run"])
def test_extend_of_a_truncated_weights_file_names_it(
    tmp_path, capsys, make_gpt2_dir, make_run, where
):
    src = make_gpt2_dir(tmp_path / "src") if where == "hf" else tmp_path / "src"
    if where == "run":
        make_run(src)
    weights = src / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    line = one_line(extend(src, tmp_path / "dst"), capsys)
    assert str(weights) in line and "damaged or truncated" in line
    weights.write_bytes(b"\x08\x00")  # shorter than a header
    assert str(weights) in one_line(extend(src, tmp_path / "dst"), capsys)
    assert not (tmp_path / "dst").exists()


@pytest.mark.parametrize("command", ["extend", "export-hf", "analyze"])
def test_a_run_whose_weights_changed_since_written_is_refused(tmp_path, capsys, make_run, command):
    """A flipped bit in a run's model.safetensors (its header still readable) no longer
    matches the sha256 recorded in the file when it was written: exit 2, naming the file."""
    run, dst = tmp_path / "run", tmp_path / "dst"
    make_run(run)
    weights = run / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01  # the last byte of the last tensor's data
    weights.write_bytes(bytes(data))
    args = {
        "extend": extend(run, dst),
        "export-hf": ["export-hf", str(run), str(dst)],
        "analyze": ["analyze", str(run), "--out", str(dst)],
    }[command]
    line = one_line(args, capsys)
    assert str(weights) in line and "sha256" in line
    assert not dst.exists()


def test_import_hf_of_a_truncated_shard_names_it(tmp_path, capsys, make_gpt2_dir):
    src = make_gpt2_dir(tmp_path / "src", shards=2)
    shard = src / "model-00002-of-00002.safetensors"
    shard.write_bytes(shard.read_bytes()[:50])
    assert str(shard) in one_line(["import-hf", str(src), str(tmp_path / "run")], capsys)


@pytest.mark.parametrize("command", ["extend", "import-hf", "analyze"])
def test_weights_that_are_a_folder_are_called_a_folder(tmp_path, capsys, make_gpt2_dir, command):
    src = make_gpt2_dir(tmp_path / "src")
    (src / "model.safetensors").unlink()
    (src / "model.safetensors").mkdir()
    args = {
        "extend": extend(src, tmp_path / "dst"),
        "import-hf": ["import-hf", str(src), str(tmp_path / "dst")],
        "analyze": ["analyze", str(src), "--out", str(tmp_path / "dst")],
    }[command]
    line = one_line(args, capsys)
    assert "model.safetensors is a directory" in line and "missing" not in line


@pytest.mark.parametrize(
    "content",
    [
        b"\xff\xfe{",
        b'{"model": 3}',
        b'{"format": "posemb-tokenizer", "kind": "char", "vocab": "ab"}',
    ],
)
def test_a_bad_tokenizer_file_names_itself(tmp_path, capsys, make_gpt2_dir, make_run, content):
    pytest.importorskip("tokenizers")
    src = make_gpt2_dir(tmp_path / "hf")
    (src / "tokenizer.json").write_bytes(content)
    line = one_line(["import-hf", str(src), str(tmp_path / "a")], capsys)
    assert str(src / "tokenizer.json") in line
    run = tmp_path / "run"
    make_run(run)
    (run / "tokenizer.json").write_bytes(content)
    assert str(run / "tokenizer.json") in one_line(extend(run, tmp_path / "b"), capsys)


def test_bad_vocab_and_merges_name_the_files(tmp_path, capsys, make_gpt2_dir):
    pytest.importorskip("tokenizers")
    src = make_gpt2_dir(tmp_path / "hf")
    (src / "vocab.json").write_text("[1, 2]")
    (src / "merges.txt").write_text("#version: 0.2\na b\n")
    line = one_line(["import-hf", str(src), str(tmp_path / "a")], capsys)
    assert "vocab.json" in line and "merges.txt" in line


@pytest.mark.parametrize("command", ["export-hf", "extend"])
def test_a_destination_under_a_file_is_one_clear_line(tmp_path, capsys, run_dir, command):
    (tmp_path / "afile").write_text("not a folder")
    dst = tmp_path / "afile" / "sub"
    args = ["export-hf", str(run_dir), str(dst)] if command == "export-hf" else extend(run_dir, dst)
    line = one_line(args, capsys)
    assert "is a file, not a folder" in line and str(tmp_path / "afile") in line
    assert "Errno" not in line
    assert (tmp_path / "afile").read_text() == "not a folder"
