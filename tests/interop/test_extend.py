"""posemb extend: every method on tiny random GPT-2 and RoBERTa directories (offset 0 and
2), the limits repeated in tokenizer, sentence-transformers and generation files, old
buffers, shards, posemb runs and the refusals. Every family of the table:
test_families.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import posemb
from posemb.cli.main import main
from posemb.runs import load_model

transformers = pytest.importorskip("transformers")

OLD, NEW = 64, 128
KEEPING = ("random", "tile", "repeat-last", "extrapolate")  # keep every trained row
RESAMPLING = ("interpolate", "cubic")  # move every position: outputs change
# model_type -> (table key in the saved model, config limit field, reserved rows, stored limit)
TABLES = {
    "gpt2": ("transformer.wpe.weight", "n_positions", 0, OLD),
    "roberta": (
        "roberta.embeddings.position_embeddings.weight",
        "max_position_embeddings",
        2,
        OLD + 2,
    ),
    "bert": ("bert.embeddings.position_embeddings.weight", "max_position_embeddings", 0, OLD),
    "opt": ("model.decoder.embed_positions.weight", "max_position_embeddings", 2, OLD),
    "distilbert": (
        "distilbert.embeddings.position_embeddings.weight",
        "max_position_embeddings",
        0,
        OLD,
    ),
}


@pytest.fixture
def hf_dir(tmp_path, build_hf):
    def build(name: str, **save):
        src = tmp_path / name
        build_hf(name, src, OLD, **save)
        (src / "tokenizer_config.json").write_text(
            json.dumps({"model_max_length": OLD, "do_lower_case": True})
        )
        (src / "README.md").write_text("a model card\n")
        return (src, *TABLES[name])

    return build


def hidden(directory: Path, ids: torch.Tensor) -> torch.Tensor:
    model = transformers.AutoModel.from_pretrained(directory).eval()
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state


def token_ids(n: int) -> torch.Tensor:  # ids >= 3: no padding token, so positions are 0..n-1
    return torch.randint(3, 99, (2, n), generator=torch.Generator().manual_seed(n))


# every method on GPT-2 (offset 0) and RoBERTa (offset 2); a resampling one on the others
CASES = [(f, m) for f in ("gpt2", "roberta") for m in KEEPING + RESAMPLING] + [
    (f, "cubic") for f in ("bert", "opt", "distilbert")
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
    sd["roberta.embeddings.position_ids"] = torch.arange(OLD + 2).unsqueeze(0)
    sd["roberta.embeddings.token_type_ids"] = torch.zeros(1, OLD + 2, dtype=torch.long)
    save_file(sd, src / "model.safetensors", metadata={"format": "pt"})
    assert (
        main(["extend", str(src), str(tmp_path / "out"), "--to", str(NEW), "--method", "tile"]) == 0
    )
    out = load_file(tmp_path / "out" / "model.safetensors")
    assert torch.equal(out["roberta.embeddings.position_ids"], torch.arange(NEW + 2).unsqueeze(0))
    assert torch.equal(
        out["roberta.embeddings.token_type_ids"], torch.zeros(1, NEW + 2, dtype=torch.long)
    )
    assert hidden(tmp_path / "out", token_ids(NEW)).shape == (2, NEW, 32)


def test_position_ids_buffers_keep_their_start():
    """MRA-style buffers count from the offset (2, 3, ...): the grown buffer does too."""
    from posemb.interop.hf_extend import _fix_buffers

    tensors = {"mra.embeddings.position_ids": torch.arange(2, OLD + 2).unsqueeze(0)}
    assert _fix_buffers(tensors, OLD, NEW, ())
    assert torch.equal(tensors["mra.embeddings.position_ids"], torch.arange(2, NEW + 2)[None])


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


# -- posemb runs ---------------------------------------------------------------------------------
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
    err = fails(str(src), str(tmp_path / "x"), "--to", "128", "--method", "tile")
    # the conversion keeps the task head: the class of config.json's architectures
    assert "never unpickles" in err and "BertForMaskedLM.from_pretrained('SRC')" in err

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


def _word_tokenizer(max_length: int):
    """A tokenizers file that truncates and pads to ``max_length`` (as many BERT repos ship)."""
    import tokenizers as tk

    vocab = {"[UNK]": 0, "[PAD]": 1, "a": 3, "b": 4}
    tok = tk.Tokenizer(tk.models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tk.pre_tokenizers.Whitespace()
    tok.enable_truncation(max_length)
    tok.enable_padding(length=max_length, pad_id=1, pad_token="[PAD]")
    return tok


@pytest.mark.parametrize("kept", [False, True])
def test_limits_outside_config_follow_the_table(tmp_path, hf_dir, capsys, kept):
    """tokenizer.json's truncation/padding, sentence-transformers' max_seq_length and a
    generation max_length equal to the table's size used to keep the old limit."""
    src, *_ = hf_dir("bert")
    seq = 32 if kept else OLD  # a sentence-transformers model may encode fewer on purpose
    _word_tokenizer(OLD).save(str(src / "tokenizer.json"))
    (src / "tokenizer_config.json").write_text(  # transformers 4 reads no tokenizer.json without it
        json.dumps({"model_max_length": OLD, "tokenizer_class": "PreTrainedTokenizerFast"})
    )
    (src / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": seq, "do_lower_case": False})
    )
    (src / "generation_config.json").write_text(json.dumps({"max_length": OLD, "num_beams": 2}))
    capsys.readouterr()
    dst = tmp_path / "out"
    assert main(["extend", str(src), str(dst), "--to", str(NEW), "--method", "tile"]) == 0
    tok = json.loads((dst / "tokenizer.json").read_text())
    assert tok["truncation"]["max_length"] == NEW and tok["padding"]["strategy"] == {"Fixed": NEW}
    sbert = json.loads((dst / "sentence_bert_config.json").read_text())
    assert sbert == {"max_seq_length": seq if kept else NEW, "do_lower_case": False}
    assert json.loads((dst / "generation_config.json").read_text()) == {
        "max_length": NEW,
        "num_beams": 2,
    }
    assert ("kept sentence_bert_config.json max_seq_length=32" in capsys.readouterr().err) == kept
    import tokenizers

    # the tokenizers file itself (text-embeddings-inference, sentence-transformers) and
    # transformers' truncation (model_max_length) both stop at the new 128, not at 64
    raw = tokenizers.Tokenizer.from_file(str(dst / "tokenizer.json"))
    assert len(raw.encode("a b " * 100).ids) == NEW
    fast = transformers.AutoTokenizer.from_pretrained(dst)
    assert len(fast("a b " * 100, truncation=True)["input_ids"]) == NEW


def test_generation_length_below_the_limit_is_kept(tmp_path, hf_dir):
    src, *_ = hf_dir("gpt2")
    (src / "generation_config.json").write_text(json.dumps({"max_length": 20}))
    dst = tmp_path / "out"
    assert main(["extend", str(src), str(dst), "--to", str(NEW), "--method", "tile"]) == 0
    copied = (dst / "generation_config.json").read_bytes()
    assert copied == (src / "generation_config.json").read_bytes()


@pytest.mark.parametrize(
    ("architectures", "named"),
    [
        (["RobertaForMaskedLM"], "RobertaForMaskedLM"),
        (None, "AutoModel"),  # nothing to name: the base model is all we know
        (["x; import os"], "AutoModel"),  # a config is data: never pasted into a command
    ],
)
def test_pickle_only_folder_conversion_names_the_head_class(tmp_path, architectures, named):
    from posemb.interop.hf_files import conversion_hint, weight_files

    (tmp_path / "pytorch_model.bin").write_bytes(b"never read")
    if architectures is not None:
        (tmp_path / "config.json").write_text(json.dumps({"architectures": architectures}))
    with pytest.raises(ValueError, match="never unpickles") as info:
        weight_files(tmp_path)
    assert f"from transformers import {named}; {named}.from_pretrained('SRC')" in str(info.value)
    assert conversion_hint(tmp_path) in str(info.value)
