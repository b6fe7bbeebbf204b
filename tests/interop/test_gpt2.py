"""export-hf / import-hf against the real transformers GPT-2: logits, greedy generation,
the key map and its round trip, and the refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import posemb
from kit import TINY_GPT2
from posemb import ModelConfig
from posemb.cli.main import main
from posemb.interop import from_hf, key_map, to_hf
from posemb.runs import load_model
from posemb.runs.weights import state_dict_for_save

transformers = pytest.importorskip("transformers")
TOL = dict(atol=1e-5, rtol=1e-5)


@pytest.fixture
def hf_gpt2(perturb):
    def build(directory: Path, seed: int = 0, **config) -> torch.nn.Module:
        """A random GPT2LMHeadModel saved to ``directory`` (perturbed so every tensor matters)."""
        torch.manual_seed(seed)
        defaults = dict(
            n_layer=2,
            n_embd=32,
            n_head=2,
            n_positions=64,
            vocab_size=256,
            bos_token_id=0,
            eos_token_id=0,
        )
        cfg = transformers.GPT2Config(**{**defaults, **config})
        model = transformers.GPT2LMHeadModel(cfg)
        perturb(model, seed)
        model.save_pretrained(directory)
        return model.eval()

    return build


def ids(n: int = 24, batch: int = 3, vocab: int = 256, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, vocab, (batch, n), generator=torch.Generator().manual_seed(seed))


# -- the key map ---------------------------------------------------------------------------------
@pytest.mark.parametrize("tied", [True, False])
def test_key_map_covers_every_weight_once(tied):
    cfg = ModelConfig.preset("gpt2", **TINY_GPT2, tie_embeddings=tied)
    sd = state_dict_for_save(posemb.Transformer(cfg))
    pairs = key_map(cfg)
    assert sorted(p.posemb for p in pairs) == sorted(sd)
    assert len({p.hf for p in pairs}) == len(pairs)
    for p in pairs:
        assert tuple(sd[p.posemb].shape) == p.shape


def test_shape_mismatch_names_the_tensor():
    cfg = ModelConfig.preset("gpt2", **TINY_GPT2)
    hf = to_hf(state_dict_for_save(posemb.Transformer(cfg)), cfg)
    hf["transformer.h.1.mlp.c_fc.weight"] = hf[
        "transformer.h.1.mlp.c_fc.weight"
    ].T.contiguous()  # Linear layout
    with pytest.raises(
        ValueError, match=r"transformer\.h\.1\.mlp\.c_fc\.weight has shape \(128, 32\).*\(32, 128\)"
    ):
        from_hf(hf, cfg)
    del hf["transformer.ln_f.bias"]
    with pytest.raises(ValueError, match="missing.*ln_f.bias"):
        from_hf(hf, cfg)


def test_round_trip_weights_are_equal(tmp_path, make_run):
    original = make_run(tmp_path / "run")
    assert main(["export-hf", str(tmp_path / "run"), str(tmp_path / "hf")]) == 0
    assert main(["import-hf", str(tmp_path / "hf"), str(tmp_path / "back")]) == 0
    back, cfg = load_model(tmp_path / "back")
    assert cfg.model == original.config
    a, b = original.state_dict(), back.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    tok = posemb.load(tmp_path / "back")[1]
    assert tok.kind == "byte"  # restored from posemb_tokenizer.json


# -- export ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"tie_embeddings": False},
        {"activation": "gelu", "d_ff": 48},
        {"activation": "relu", "norm_eps": 1e-6},
    ],
)
def test_exported_logits_equal_posemb(tmp_path, overrides, make_run):
    model = make_run(tmp_path / "run", **overrides)
    assert main(["export-hf", str(tmp_path / "run"), str(tmp_path / "hf")]) == 0
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "hf").eval()
    x = ids()
    with torch.no_grad():
        torch.testing.assert_close(hf(x).logits, model(x).logits, **TOL)
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert (
        config["n_positions"] == 64 and config["tie_word_embeddings"] == model.config.tie_embeddings
    )
    if not overrides:
        assert config["activation_function"] == "gelu_new" and config["layer_norm_epsilon"] == 1e-5


def test_greedy_generation_matches(tmp_path, make_run):
    model = make_run(tmp_path / "run")
    main(["export-hf", str(tmp_path / "run"), str(tmp_path / "hf")])
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "hf").eval()
    x = ids(n=8, batch=2)
    ours = model.generate(x, 20, temperature=0)
    theirs = hf.generate(
        x, attention_mask=torch.ones_like(x), do_sample=False, max_new_tokens=20, pad_token_id=0
    )
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("kind", ["byte", "bpe"])
def test_exported_tokenizer_encodes_like_posemb(tmp_path, kind, make_run):
    make_run(tmp_path / "run", tokenizer=kind, vocab_size=300)
    main(["export-hf", str(tmp_path / "run"), str(tmp_path / "hf")])
    ours = posemb.load(tmp_path / "run")[1]
    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert theirs.model_max_length == 64
    for text in ["def main():\n    return 42", " hello  world", "héllo 🙂 ünïcode\t\n"]:
        assert theirs(text, add_special_tokens=False)["input_ids"] == ours.encode(text)
        assert theirs.decode(ours.encode(text)) == text


def test_char_tokenizer_is_not_exported_and_says_so(tmp_path, capsys, make_run):
    make_run(tmp_path / "run", tokenizer="char")
    assert main(["export-hf", str(tmp_path / "run"), str(tmp_path / "hf")]) == 0
    assert "no transformers equivalent" in capsys.readouterr().err
    assert not (tmp_path / "hf" / "tokenizer.json").exists()
    assert (tmp_path / "hf" / "posemb_tokenizer.json").exists()


def test_incompatible_config_exits_2_naming_each_field(tmp_path, capsys, make_run):
    make_run(
        tmp_path / "run",
        norm="rmsnorm",
        bias=False,
        causal=False,
        position_options={"overflow": "clamp"},
    )
    assert main(["export-hf", str(tmp_path / "run"), str(tmp_path / "hf")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    for field in ("model.norm='rmsnorm'", "model.causal=false", "overflow='clamp'"):
        assert field in err
    assert not (tmp_path / "hf").exists()


def test_existing_destination_needs_force(tmp_path, run_dir, capsys, tree_hash):
    dst = tmp_path / "hf"
    dst.mkdir()
    (dst / "keep.txt").write_text("x")
    assert main(["export-hf", str(run_dir), str(dst)]) == 2
    assert "--force" in capsys.readouterr().err and (dst / "keep.txt").exists()
    before = tree_hash(run_dir)
    assert main(["export-hf", str(run_dir), str(dst), "--force"]) == 0
    assert not (dst / "keep.txt").exists() and (dst / "model.safetensors").exists()
    assert tree_hash(run_dir) == before


# -- import ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("base_model", [False, True])
def test_imported_logits_equal_hf(tmp_path, base_model, hf_gpt2):
    hf = hf_gpt2(tmp_path / "hf")
    if base_model:  # GPT2Model names (no "transformer." prefix) plus stale mask buffers
        sd = load_file(tmp_path / "hf" / "model.safetensors")
        sd = {k.removeprefix("transformer."): v for k, v in sd.items()}
        sd["h.0.attn.bias"] = torch.ones(1, 1, 64, 64)
        save_file(sd, tmp_path / "hf" / "model.safetensors", metadata={"format": "pt"})
    assert main(["import-hf", str(tmp_path / "hf"), str(tmp_path / "run")]) == 0
    model, _ = posemb.load(tmp_path / "run")
    x = ids()
    with torch.no_grad():
        torch.testing.assert_close(model(x).logits, hf(x).logits, **TOL)


def test_imported_run_generates_and_fine_tunes(tmp_path, capsys, hf_gpt2):
    hf_gpt2(tmp_path / "hf", vocab_size=280)
    tok = posemb.data.build_tokenizer("bpe", ["the cat sat on the mat. " * 40], vocab_size=270)
    (tmp_path / "hf" / "tokenizer.json").write_text(tok.hf.to_str())
    assert main(["import-hf", str(tmp_path / "hf"), str(tmp_path / "run")]) == 0
    assert posemb.load(tmp_path / "run")[1].kind == "bpe"
    capsys.readouterr()
    assert (
        main(
            [
                "generate",
                str(tmp_path / "run"),
                "--prompt",
                "the cat",
                "--max-new-tokens",
                "5",
                "--temperature",
                "0",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.startswith("the cat")
    data = tmp_path / "data.txt"
    data.write_text("the cat sat on the mat.\n" * 200)
    assert (
        main(
            [
                "train",
                "--resume",
                str(tmp_path / "run"),
                "--data",
                str(data),
                "--set",
                "train.max_steps=2",
                "train.batch_size=2",
                "train.seq_len=16",
                "train.eval_every=2",
                "train.eval_batches=1",
                "train.warmup_steps=0",
                "train.progress=false",
                "train.device=cpu",
                "train.compile=false",
            ]
        )
        == 0
    )
    state = json.loads((tmp_path / "run" / "trainer_state.json").read_text())
    assert state["step"] == 2


def test_import_tokenizer_fallbacks(tmp_path, capsys, hf_gpt2):
    hf_gpt2(tmp_path / "hf")
    assert main(["import-hf", str(tmp_path / "hf"), str(tmp_path / "a")]) == 0
    assert "no tokenizer" in capsys.readouterr().err
    assert posemb.load(tmp_path / "a")[1].kind == "byte"
    # GPT-2's older layout: vocab.json + merges.txt
    vocab = {c: i for i, c in enumerate(posemb.interop.tokenizers.byte_symbols())}
    vocab["Ġt"] = 256
    (tmp_path / "hf" / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "hf" / "merges.txt").write_text("#version: 0.2\nĠ t\n")
    assert main(["import-hf", str(tmp_path / "hf"), str(tmp_path / "b")]) == 0
    tok = posemb.load(tmp_path / "b")[1]
    assert tok.encode("a t") == [ord("a"), 256]


def test_import_refusals(tmp_path, capsys, hf_gpt2):
    hf_gpt2(tmp_path / "hf", scale_attn_by_inverse_layer_idx=True, activation_function="quick_gelu")
    assert main(["import-hf", str(tmp_path / "hf"), str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "scale_attn_by_inverse_layer_idx=true" in err and "quick_gelu" in err
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    (tmp_path / "hf" / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
    assert main(["import-hf", str(tmp_path / "hf"), str(tmp_path / "run")]) == 2
    assert "'bert'" in capsys.readouterr().err
    assert main(["import-hf", str(tmp_path / "missing"), str(tmp_path / "run")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_import_refuses_pickled_weights(tmp_path, capsys, hf_gpt2):
    hf_gpt2(tmp_path / "hf")
    (tmp_path / "hf" / "model.safetensors").rename(tmp_path / "hf" / "pytorch_model.bin")
    assert main(["import-hf", str(tmp_path / "hf"), str(tmp_path / "run")]) == 2
    assert "never unpickles" in capsys.readouterr().err


def test_import_of_a_posemb_run_says_what_it_is(tmp_path, capsys, run_dir):
    # a config.json without model_type read "is a None model"
    assert main(["import-hf", str(run_dir), str(tmp_path / "imported")]) == 2
    err = capsys.readouterr().err
    assert "has no model_type" in err and "posemb run" in err and "None" not in err


def test_written_directories_get_a_normal_folder_mode(tmp_path, run_dir):
    # the output was built in a mkdtemp folder and kept its 0700 mode: unreadable to the group
    import os
    import stat

    mask = os.umask(0o022)
    try:
        assert main(["export-hf", str(run_dir), str(tmp_path / "hf")]) == 0
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "hf").stat().st_mode) == 0o755
