"""posemb extend on tiny random GPT-2, BERT, RoBERTa, OPT and DistilBERT directories and on
posemb runs: loads with AutoModel, runs at N tokens, keeps trained and reserved rows,
agrees everywhere on the new size, and never touches the source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import posemb
from posemb.cli.main import main
from posemb.train.checkpoint import load_model

transformers = pytest.importorskip("transformers")

OLD, NEW = 64, 128
KEEPING = ("random", "tile", "repeat-last", "extrapolate")  # keep every trained row
RESAMPLING = ("interpolate", "cubic")  # move every position: outputs change


def family_model(name: str):
    """(model with random weights, table key, config limit field, offset, limit stored in config)."""
    t = transformers
    small = dict(
        vocab_size=256,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )
    if name == "gpt2":
        cfg = t.GPT2Config(
            n_layer=2,
            n_embd=32,
            n_head=2,
            n_positions=OLD,
            vocab_size=256,
            bos_token_id=0,
            eos_token_id=0,
        )
        return t.GPT2LMHeadModel(cfg), "transformer.wpe.weight", "n_positions", 0, OLD
    if name == "bert":
        return (
            t.BertForMaskedLM(t.BertConfig(**small, max_position_embeddings=OLD)),
            "bert.embeddings.position_embeddings.weight",
            "max_position_embeddings",
            0,
            OLD,
        )
    if name == "roberta":
        cfg = t.RobertaConfig(**small, max_position_embeddings=OLD + 2, pad_token_id=1)
        return (
            t.RobertaModel(cfg),
            "embeddings.position_embeddings.weight",
            "max_position_embeddings",
            2,
            OLD + 2,
        )
    if name == "opt":
        cfg = t.OPTConfig(
            vocab_size=256,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            ffn_dim=64,
            max_position_embeddings=OLD,
            word_embed_proj_dim=32,
        )
        return (
            t.OPTForCausalLM(cfg),
            "model.decoder.embed_positions.weight",
            "max_position_embeddings",
            2,
            OLD,
        )
    cfg = t.DistilBertConfig(
        vocab_size=256, dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=OLD
    )
    return (
        t.DistilBertModel(cfg),
        "embeddings.position_embeddings.weight",
        "max_position_embeddings",
        0,
        OLD,
    )


FAMILIES = ("gpt2", "bert", "roberta", "opt", "distilbert")


@pytest.fixture
def hf_dir(tmp_path, perturb):
    def build(name: str, **save):
        torch.manual_seed(0)
        model, key, field, offset, stored = family_model(name)
        perturb(model)
        src = tmp_path / name
        model.save_pretrained(src, **save)
        (src / "tokenizer_config.json").write_text(
            json.dumps({"model_max_length": OLD, "do_lower_case": True})
        )
        (src / "README.md").write_text("a model card\n")
        return src, key, field, offset, stored

    return build


def hidden(directory: Path, ids: torch.Tensor) -> torch.Tensor:
    model = transformers.AutoModel.from_pretrained(directory).eval()
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state


def token_ids(n: int) -> torch.Tensor:  # ids >= 3: no padding token, so positions are 0..n-1
    return torch.randint(3, 256, (2, n), generator=torch.Generator().manual_seed(n))


# every method on GPT-2 (offset 0) and RoBERTa (offset 2); two on the others (time budget)
CASES = [(f, m) for f in ("gpt2", "roberta") for m in KEEPING + RESAMPLING] + [
    (f, m) for f in ("bert", "opt", "distilbert") for m in ("tile", "cubic")
]


@pytest.mark.parametrize(("family", "method"), CASES)
def test_extend_hf_family(tmp_path, hf_dir, tree_hash, family, method):
    src, key, field, offset, stored = hf_dir(family)
    before = tree_hash(src)
    dst = tmp_path / "out"
    assert main(["extend", str(src), str(dst), "--to", str(NEW), "--method", method]) == 0
    assert tree_hash(src) == before  # never modify SRC

    config = json.loads((dst / "config.json").read_text())
    assert config[field] == stored - OLD + NEW  # RoBERTa counts its 2 reserved rows, OPT doesn't
    assert json.loads((dst / "tokenizer_config.json").read_text()) == {
        "model_max_length": NEW,
        "do_lower_case": True,
    }
    assert (dst / "README.md").read_text() == "a model card\n"
    old_table, new_table = (
        load_file(src / "model.safetensors")[key],
        load_file(dst / "model.safetensors")[key],
    )
    assert new_table.shape == (offset + NEW, 32)
    assert torch.equal(new_table[:offset], old_table[:offset])  # reserved rows, exactly
    if method in KEEPING:
        assert torch.equal(new_table[: offset + OLD], old_table)

    long = hidden(dst, token_ids(NEW))  # runs at N tokens
    assert long.shape == (2, NEW, 32) and torch.isfinite(long).all()
    short = token_ids(20)
    same = torch.equal(hidden(dst, short), hidden(src, short))
    assert same == (method in KEEPING)


def test_old_checkpoint_buffers_are_resized(tmp_path, hf_dir):
    """Older BERT/RoBERTa checkpoints store position_ids (and token_type_ids) buffers."""
    src, *_ = hf_dir("roberta")
    sd = load_file(src / "model.safetensors")
    sd["embeddings.position_ids"] = torch.arange(OLD + 2).unsqueeze(0)
    sd["embeddings.token_type_ids"] = torch.zeros(1, OLD + 2, dtype=torch.long)
    save_file(sd, src / "model.safetensors", metadata={"format": "pt"})
    assert (
        main(["extend", str(src), str(tmp_path / "out"), "--to", str(NEW), "--method", "tile"]) == 0
    )
    out = load_file(tmp_path / "out" / "model.safetensors")
    assert torch.equal(out["embeddings.position_ids"], torch.arange(NEW + 2).unsqueeze(0))
    assert torch.equal(out["embeddings.token_type_ids"], torch.zeros(1, NEW + 2, dtype=torch.long))
    assert hidden(tmp_path / "out", token_ids(NEW)).shape == (2, NEW, 32)


def test_sharded_gpt2_and_stale_mask_buffers(tmp_path, hf_dir):
    src, key, *_ = hf_dir("gpt2", max_shard_size="40KB")
    index = json.loads((src / "model.safetensors.index.json").read_text())
    shard = index["weight_map"][key]
    sd = load_file(src / shard)
    sd["transformer.h.0.attn.bias"] = torch.ones(
        1, 1, OLD, OLD, dtype=torch.bool
    )  # as old checkpoints had
    save_file(sd, src / shard, metadata={"format": "pt"})
    index["weight_map"]["transformer.h.0.attn.bias"] = shard
    (src / "model.safetensors.index.json").write_text(json.dumps(index))
    dst = tmp_path / "out"
    assert main(["extend", str(src), str(dst), "--to", str(NEW), "--method", "repeat-last"]) == 0
    new_index = json.loads((dst / "model.safetensors.index.json").read_text())
    assert "transformer.h.0.attn.bias" not in new_index["weight_map"]
    sizes = sum(
        t.numel() * t.element_size()
        for f in set(new_index["weight_map"].values())
        for t in load_file(dst / f).values()
    )
    assert new_index["metadata"]["total_size"] == sizes
    assert load_file(dst / shard)[key].shape == (NEW, 32)
    short = token_ids(20)
    assert torch.equal(hidden(dst, short), hidden(src, short))
    assert hidden(dst, token_ids(NEW)).shape == (2, NEW, 32)


# -- posemb runs ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("offset", [0, 2])
def test_extend_posemb_run(tmp_path, make_run, tree_hash, offset):
    original = make_run(tmp_path / "run", position_options={"offset": offset})
    before = tree_hash(tmp_path / "run")
    assert (
        main(
            [
                "extend",
                str(tmp_path / "run"),
                str(tmp_path / "out"),
                "--to",
                str(NEW),
                "--method",
                "tile",
            ]
        )
        == 0
    )
    assert tree_hash(tmp_path / "run") == before
    model, cfg = load_model(tmp_path / "out")
    assert cfg.model.max_positions == NEW and model.pos.weight.shape == (offset + NEW, 32)
    assert torch.equal(model.pos.weight[: offset + OLD], original.pos.weight)
    x = token_ids(20)
    with torch.no_grad():
        assert torch.equal(model(x).logits, original(x).logits)
        assert model(token_ids(NEW)).logits.shape == (2, NEW, 256)
    assert (tmp_path / "out" / "trainer_state.json").exists()  # train --resume can fine-tune it
    assert posemb.load(tmp_path / "out")[1].kind == "byte"


def test_shrink_needs_flag(tmp_path, run_dir, hf_dir, capsys):
    assert (
        main(["extend", str(run_dir), str(tmp_path / "a"), "--to", "32", "--method", "tile"]) == 2
    )
    assert "--allow-shrink" in capsys.readouterr().err and not (tmp_path / "a").exists()
    assert (
        main(
            [
                "extend",
                str(run_dir),
                str(tmp_path / "a"),
                "--to",
                "32",
                "--method",
                "tile",
                "--allow-shrink",
            ]
        )
        == 0
    )
    _, cfg = load_model(tmp_path / "a")
    assert cfg.model.max_positions == 32 and cfg.train.seq_len == 32
    src, key, *_ = hf_dir("roberta")
    assert (
        main(
            [
                "extend",
                str(src),
                str(tmp_path / "b"),
                "--to",
                "32",
                "--method",
                "cubic",
                "--allow-shrink",
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "b" / "config.json").read_text())["max_position_embeddings"] == 34
    assert torch.equal(
        load_file(tmp_path / "b" / "model.safetensors")[key],
        load_file(src / "model.safetensors")[key][:34],
    )


def test_errors(tmp_path, run_dir, hf_dir, capsys):
    def fails(*argv: str) -> str:
        capsys.readouterr()
        assert main(["extend", *argv]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1, err
        return err

    llama = tmp_path / "llama"
    llama.mkdir()
    (llama / "config.json").write_text(
        json.dumps({"model_type": "llama", "max_position_embeddings": 64})
    )
    err = fails(str(llama), str(tmp_path / "x"), "--to", "128", "--method", "tile")
    assert "'llama'" in err and "gpt2, bert, roberta, opt, distilbert" in err
    assert "does not exist" in fails(
        str(tmp_path / "missing"), str(tmp_path / "x"), "--to", "128", "--method", "tile"
    )
    assert "invalid choice" in fails(
        str(run_dir), str(tmp_path / "x"), "--to", "128", "--method", "linear"
    )
    assert "overlaps SRC" in fails(
        str(run_dir), str(run_dir / "sub"), "--to", "128", "--method", "tile"
    )

    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "f").write_text("x")
    assert "--force" in fails(
        str(run_dir), str(tmp_path / "taken"), "--to", "128", "--method", "tile"
    )
    assert (
        main(
            [
                "extend",
                str(run_dir),
                str(tmp_path / "taken"),
                "--to",
                "128",
                "--method",
                "tile",
                "--force",
            ]
        )
        == 0
    )
    assert not (tmp_path / "taken" / "f").exists()

    src, *_ = hf_dir("bert")
    (src / "model.safetensors").rename(src / "pytorch_model.bin")
    assert "never unpickles" in fails(
        str(src), str(tmp_path / "x"), "--to", "128", "--method", "tile"
    )

    src, *_ = hf_dir("distilbert")
    config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**config, "sinusoidal_pos_embds": True}))
    assert "sinusoidal" in fails(str(src), str(tmp_path / "x"), "--to", "128", "--method", "tile")

    assert not (tmp_path / "x").exists()


def test_non_learned_run_is_refused(tmp_path, make_run, capsys):
    make_run(tmp_path / "rope", position="rope")
    assert (
        main(
            [
                "extend",
                str(tmp_path / "rope"),
                str(tmp_path / "x"),
                "--to",
                "128",
                "--method",
                "tile",
            ]
        )
        == 2
    )
    assert "model.position='rope'" in capsys.readouterr().err
