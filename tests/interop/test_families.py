"""posemb extend on a tiny random model of every family of the one table (FAMILIES): the
result loads with no missing or unexpected keys, runs at the new full length, gives the
original's outputs on short inputs, keeps the reserved rows, and agrees on its size in
config.json. The table in docs/HF.md is checked against FAMILIES."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from posemb.cli.main import main
from posemb.interop.families import FAMILIES, matches

transformers = pytest.importorskip("transformers")
OLD, NEW = 64, 128
DOCS = Path(__file__).resolve().parents[2] / "docs" / "HF.md"


def test_every_family_has_a_tiny_model(hf_tiny):
    assert set(hf_tiny) == set(FAMILIES)


@pytest.mark.parametrize("model_type", sorted(FAMILIES))
def test_extend_family(tmp_path, build_hf, hf_inputs, hf_output, model_type):
    family = FAMILIES[model_type]
    src, dst = tmp_path / "src", tmp_path / "dst"
    original = build_hf(model_type, src, OLD)
    (src / "tokenizer_config.json").write_text(json.dumps({"model_max_length": OLD}))
    assert main(["extend", str(src), str(dst), "--to", str(NEW), "--method", "tile"]) == 0

    config = json.loads((dst / "config.json").read_text())
    before, after = load_file(src / "model.safetensors"), load_file(dst / "model.safetensors")
    for table in family.tables:
        key = next(k for k in after if matches(k, table.key))
        offset = original.config.pad_token_id + 1 if table.pad_offset else table.offset
        assert config[table.limit] == NEW + (offset if table.counts_offset else 0)
        assert after[key].shape[0] == offset + NEW
        assert torch.equal(after[key][: offset + OLD], before[key])  # reserved + trained rows
        assert torch.equal(after[key][offset + OLD :], before[key][offset : offset + NEW - OLD])
    grown = {k for k in after if any(matches(k, t.key) for t in family.tables)}
    assert len(grown) == len(family.tables)
    for key in before.keys() - grown:  # every other tensor unchanged
        assert torch.equal(after[key], before[key]), key
    assert json.loads((dst / "tokenizer_config.json").read_text())["model_max_length"] == NEW

    cls = getattr(transformers, config["architectures"][0])
    extended, info = cls.from_pretrained(dst, output_loading_info=True)
    extended.eval()
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    assert not info["mismatched_keys"], info
    long = hf_output(extended, hf_inputs(model_type, NEW))  # runs at the new full length
    assert long.shape[:2] == (2, NEW) and torch.isfinite(long).all()
    short = hf_inputs(model_type, 20)
    # the source as transformers loads it (transformers 4 unties a perturbed tied bias on save)
    source = cls.from_pretrained(src).eval()
    assert torch.equal(hf_output(extended, short), hf_output(source, short))


def test_unknown_type_lists_every_family(tmp_path, capsys):
    llama = tmp_path / "llama"
    llama.mkdir()
    (llama / "config.json").write_text(json.dumps({"model_type": "llama"}))
    assert main(["extend", str(llama), str(tmp_path / "x"), "--to", "128", "--method", "tile"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "'llama'" in err
    assert all(name in err for name in FAMILIES)


def test_relative_position_embedding_type_is_refused(tmp_path, build_hf, capsys):
    """transformers 4.x BERT-likes with relative_key have distance tables sized 2N-1 too."""
    build_hf("electra", tmp_path / "src", OLD)
    config = json.loads((tmp_path / "src" / "config.json").read_text())
    config["position_embedding_type"] = "relative_key"
    (tmp_path / "src" / "config.json").write_text(json.dumps(config))
    argv = ["extend", str(tmp_path / "src"), str(tmp_path / "x"), "--to", "128", "--method", "tile"]
    assert main(argv) == 2
    assert "position_embedding_type='relative_key'" in capsys.readouterr().err


def _docs_rows() -> dict[str, list[str]]:
    """``model_type -> cells`` of the family table in docs/HF.md."""
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("<!-- families -->")[1].split("<!-- /families -->")[0]
    rows = {}
    for line in section.split("|---|")[-1].splitlines():  # the rows after the header
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        name = re.fullmatch(r"`([\w-]+)`", cells[0]) if cells and cells[0] else None
        if name:
            rows[name.group(1)] = cells[1:]
    return rows


def test_docs_family_table_matches_families():
    rows = _docs_rows()
    assert set(rows) == set(FAMILIES)
    for model_type, family in FAMILIES.items():
        tables, limits, reserved = rows[model_type]
        assert [re.sub(r"^\[[\w.]+\]", "", k) for k in re.findall(r"`([^`]+)`", tables)] == [
            t.key for t in family.tables
        ], model_type
        fields = {t.limit for t in family.tables} | {a for t in family.tables for a in t.also}
        assert set(re.findall(r"`(\w+)`", limits)) == fields, model_type
        offsets = {("pad_token_id + 1" if t.pad_offset else str(t.offset)) for t in family.tables}
        assert all(o in reserved for o in offsets), model_type
        assert ("N + 2" in limits) == any(t.counts_offset for t in family.tables), model_type
