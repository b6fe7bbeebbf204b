"""Finding the table: Hugging Face directories (offset rows), bare safetensors files, runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from posemb.analysis import analyze_table, load_table

transformers = pytest.importorskip("transformers")

SMALL = {
    "vocab_size": 50,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 32,
}


def save_hf(model, path: Path) -> Path:
    model.save_pretrained(path, safe_serialization=True)
    assert (path / "model.safetensors").is_file() and not (path / "pytorch_model.bin").exists()
    return path


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    t = transformers
    root = tmp_path_factory.mktemp("hf")
    torch.manual_seed(0)
    return {
        "gpt2": save_hf(
            t.GPT2LMHeadModel(
                t.GPT2Config(vocab_size=50, n_positions=32, n_embd=16, n_layer=1, n_head=2)
            ),
            root / "gpt2",
        ),
        "bert": save_hf(
            t.BertModel(t.BertConfig(max_position_embeddings=32, hidden_size=16, **SMALL)),
            root / "bert",
        ),
        "roberta": save_hf(
            t.RobertaForMaskedLM(
                t.RobertaConfig(max_position_embeddings=34, hidden_size=16, pad_token_id=1, **SMALL)
            ),
            root / "roberta",
        ),
        "opt": save_hf(
            t.OPTForCausalLM(
                t.OPTConfig(
                    vocab_size=50,
                    max_position_embeddings=32,
                    hidden_size=16,
                    word_embed_proj_dim=16,
                    ffn_dim=32,
                    num_hidden_layers=1,
                    num_attention_heads=2,
                )
            ),
            root / "opt",
        ),
        "distilbert": save_hf(
            t.DistilBertModel(
                t.DistilBertConfig(
                    vocab_size=50,
                    max_position_embeddings=32,
                    dim=16,
                    n_layers=1,
                    n_heads=2,
                    hidden_dim=32,
                )
            ),
            root / "distilbert",
        ),
    }


@pytest.mark.parametrize(
    "model_type,suffix,offset",
    [
        ("gpt2", "wpe.weight", 0),
        ("bert", "embeddings.position_embeddings.weight", 0),
        ("roberta", "embeddings.position_embeddings.weight", 2),
        ("opt", "decoder.embed_positions.weight", 2),
        ("distilbert", "embeddings.position_embeddings.weight", 0),
    ],
)
def test_hf_directories(hf_dirs, model_type, suffix, offset):
    path = hf_dirs[model_type]
    loaded = load_table(path)
    stored = load_file(str(path / "model.safetensors"))[loaded.key]
    assert loaded.key.endswith(suffix) and loaded.offset == offset
    assert torch.equal(loaded.table, stored.float())
    assert loaded.initial is None and loaded.kind == f"Hugging Face {model_type}"
    s = analyze_table(loaded.table, loaded.offset).to_json()
    assert (
        s["n_rows"] == stored.shape[0] - offset
    )  # RoBERTa/OPT: the 2 reserved rows are not positions
    assert s["reserved"]["rows"] == list(range(offset))
    assert s["untrained"]["method"] == "heuristic"


def test_roberta_offset_follows_pad_token_id(tmp_path, hf_dirs):
    # RobertaEmbeddings starts positions at padding_idx + 1
    d = tmp_path / "roberta-pad0"
    d.mkdir()
    (d / "model.safetensors").write_bytes((hf_dirs["roberta"] / "model.safetensors").read_bytes())
    cfg = json.loads((hf_dirs["roberta"] / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, "pad_token_id": 0}))
    assert load_table(d).offset == 1
    assert load_table(d, offset=0).offset == 0  # --offset wins


def test_sharded_hf_directory(tmp_path, hf_dirs):
    src = load_file(str(hf_dirs["gpt2"] / "model.safetensors"))
    d = tmp_path / "sharded"
    d.mkdir()
    names = sorted(src)
    half = len(names) // 2
    shards = {
        "model-00001-of-00002.safetensors": names[:half],
        "model-00002-of-00002.safetensors": names[half:],
    }
    for file, keys in shards.items():
        save_file({k: src[k].contiguous() for k in keys}, str(d / file))
    (d / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {k: f for f, keys in shards.items() for k in keys}})
    )
    (d / "config.json").write_text((hf_dirs["gpt2"] / "config.json").read_text())
    loaded = load_table(d)
    assert loaded.key == "transformer.wpe.weight" and loaded.table.shape == (32, 16)


def test_bare_safetensors_file(tmp_path):
    table = torch.randn(20, 8)
    path = tmp_path / "w.safetensors"
    save_file(
        {"encoder.embed.weight": table, "position_table": table * 2, "bias": torch.zeros(8)},
        str(path),
    )
    assert load_table(path).key == "position_table"  # the unique 2-D tensor named *pos*
    loaded = load_table(path, key="encoder.embed.weight", offset=3)
    assert (
        torch.equal(loaded.table, table)
        and loaded.offset == 3
        and loaded.kind == "safetensors file"
    )
    with pytest.raises(ValueError, match="no tensor 'position'.*Did you mean 'position_table'"):
        load_table(path, key="position")
    with pytest.raises(ValueError, match="shape \\(8,\\)"):
        load_table(path, key="bias")
    with pytest.raises(ValueError, match="--offset 19 leaves fewer than 2"):
        load_table(path, offset=19)


def test_run_table_and_exact_initial_table(causal_run):
    rng_before = torch.get_rng_state()
    loaded = load_table(causal_run)
    assert torch.equal(
        torch.get_rng_state(), rng_before
    )  # recreating the init leaves the caller's RNG alone
    stored = load_file(str(causal_run / "model.safetensors"))["pos.weight"]
    assert loaded.key == "pos.weight" and torch.equal(loaded.table, stored)
    assert loaded.initial is not None and loaded.initial.shape == stored.shape
    assert (
        "exact" in loaded.init_note
        and loaded.context["seq_len"] == 24
        and loaded.context["step"] == 5
    )
    assert not torch.equal(
        loaded.initial[:23], stored[:23]
    )  # sanity: training moved the early rows


def test_families_of_the_extend_table(tmp_path):
    """analyze reads the same family table as extend: XLM-R's reserved rows, BART's two."""
    t = transformers
    torch.manual_seed(0)
    small = dict(d_model=16, encoder_layers=1, decoder_layers=1, encoder_ffn_dim=32)
    bart = save_hf(
        t.BartModel(
            t.BartConfig(
                vocab_size=50,
                max_position_embeddings=32,
                encoder_attention_heads=2,
                decoder_attention_heads=2,
                decoder_ffn_dim=32,
                **small,
            )
        ),
        tmp_path / "bart",
    )
    with pytest.raises(ValueError, match="2 candidate position tables: encoder.*decoder"):
        load_table(bart)
    loaded = load_table(bart, key="decoder.embed_positions.weight")
    assert loaded.offset == 2 and loaded.table.shape == (34, 16)
    xlmr = save_hf(
        t.XLMRobertaModel(
            t.XLMRobertaConfig(max_position_embeddings=34, hidden_size=16, pad_token_id=1, **SMALL)
        ),
        tmp_path / "xlmr",
    )
    assert load_table(xlmr).offset == 2
