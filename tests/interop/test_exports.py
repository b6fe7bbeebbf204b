"""export-hf for every scheme with an exact Hugging Face counterpart, held to the GPT-2
standard: logits within 1e-5 of posemb's, greedy generate equal, AutoModelForCausalLM and
AutoTokenizer load it, import back exact. Refusals name the field; foreign GPT-NeoX and
MPT directories import with their logits; an imported model keeps its token ids, special
tokens, generation_config.json and dtype through export."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import posemb
from posemb.cli.main import main
from posemb.runs import load_model

transformers = pytest.importorskip("transformers")
TOL = dict(atol=1e-5, rtol=1e-5)
ALIBI = dict(position="alibi", bias=False, activation="gelu")
EOS = 268  # <|endoftext|>, added after the 268 ids of the test's BPE

# (expected architecture, run overrides): every exportable scheme and the options that
# change the layout (bias=false, interleaved RoPE, untied, non-power-of-2 heads)
EXPORTS = {
    "learned": ("GPT2LMHeadModel", {}),
    "learned-nobias": ("GPT2LMHeadModel", dict(bias=False, tie_embeddings=False)),
    "sinusoidal": ("GPT2LMHeadModel", dict(position="sinusoidal")),
    "rope": ("GPTNeoXForCausalLM", dict(position="rope")),
    "rope-options": (
        "GPTNeoXForCausalLM",
        dict(
            position="rope",
            position_options={"interleaved": True, "base": 500.0, "scale": 2.0},
            bias=False,
            activation="relu",
            d_ff=48,
        ),
    ),
    "nope": ("GPTNeoXForCausalLM", dict(position="nope", tie_embeddings=False)),
    "alibi": ("MptForCausalLM", ALIBI),
    "alibi-6-heads": ("MptForCausalLM", dict(**ALIBI, n_head=6, d_model=48, tie_embeddings=False)),
}


def ids(n: int = 24, batch: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 256, (batch, n), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", sorted(EXPORTS))
def test_export_matches_posemb_and_imports_back_exactly(tmp_path, make_run, name):
    architecture, overrides = EXPORTS[name]
    model = make_run(tmp_path / "run", **overrides)
    assert main(["export-hf", str(tmp_path / "run"), str(tmp_path / "hf")]) == 0
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["architectures"] == [architecture]
    hf, info = transformers.AutoModelForCausalLM.from_pretrained(
        tmp_path / "hf", output_loading_info=True
    )
    hf.eval()
    assert type(hf).__name__ == architecture
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    x = ids()
    with torch.no_grad():
        torch.testing.assert_close(hf(x).logits, model(x).logits, **TOL)
    prompt = x[:2, :8]
    ours = model.generate(prompt, 20, temperature=0)
    theirs = hf.generate(
        prompt, attention_mask=torch.ones_like(prompt), do_sample=False, max_new_tokens=20
    )
    assert torch.equal(ours, theirs)
    text = "def main():\n    return 42"
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert tok(text, add_special_tokens=False)["input_ids"] == posemb.load(tmp_path / "run")[
        1
    ].encode(text)

    assert main(["import-hf", str(tmp_path / "hf"), str(tmp_path / "back")]) == 0
    back, cfg = load_model(tmp_path / "back")
    assert cfg.model == model.config  # the recorded settings come back
    a, b = model.state_dict(), back.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize(
    ("overrides", "fields"),
    [
        (dict(position="t5"), ["model.position='t5'", "no Hugging Face causal LM"]),
        (dict(position="shaw"), ["model.position='shaw'"]),
        (dict(position="alibi"), ["as MPT", "model.bias=true", "model.activation='gelu_tanh'"]),
        (dict(**ALIBI, d_ff=48), ["model.d_ff=48"]),
        (dict(position="rope", norm="rmsnorm"), ["as GPT-NeoX", "model.norm='rmsnorm'"]),
        (dict(position="rope", causal=False), ["model.causal=false"]),
        (dict(position="rope", position_options={"scale": 0.5}), ["scale=0.5"]),
        (dict(position="sinusoidal", norm="rmsnorm"), ["as GPT-2", "model.norm='rmsnorm'"]),
    ],
)
def test_no_exact_counterpart_exits_2_naming_the_field(
    tmp_path, make_run, capsys, overrides, fields
):
    make_run(tmp_path / "run", **overrides)
    assert main(["export-hf", str(tmp_path / "run"), str(tmp_path / "hf")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    for field in fields:
        assert field in err
    assert not (tmp_path / "hf").exists()


def test_settings_changed_elsewhere_import_from_the_fields(tmp_path, make_run, capsys):
    """A bias=false run exports biases of zeros; once trained elsewhere they are not zero
    and the recorded bias=false no longer holds: the import keeps the biases."""
    make_run(tmp_path / "run", bias=False)
    main(["export-hf", str(tmp_path / "run"), str(tmp_path / "hf")])
    weights = tmp_path / "hf" / "model.safetensors"
    sd = load_file(weights)
    sd["transformer.h.0.attn.c_attn.bias"] += 0.5
    save_file(sd, weights, metadata={"format": "pt"})
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    capsys.readouterr()
    assert main(["import-hf", str(tmp_path / "hf"), str(tmp_path / "back")]) == 0
    assert "no longer describe" in capsys.readouterr().err
    model, cfg = load_model(tmp_path / "back")
    assert cfg.model.bias
    with torch.no_grad():
        torch.testing.assert_close(model(ids()).logits, hf(ids()).logits, **TOL)


# -- directories made by transformers ------------------------------------------------------------
def _save(tmp_path, perturb, model):
    torch.manual_seed(0)
    perturb(model)
    model.save_pretrained(tmp_path / "hf")
    return model.eval()


@pytest.mark.parametrize(
    "config",
    [
        dict(rotary_pct=1.0, hidden_act="gelu"),
        dict(rotary_pct=0.0, hidden_act="gelu_new", rotary_emb_base=500, tie_word_embeddings=True),
        dict(rotary_pct=1.0, rope_scaling={"type": "linear", "factor": 2.0}),
    ],
)
def test_gpt_neox_from_transformers_imports_with_its_logits(tmp_path, perturb, config):
    t = transformers
    cfg = t.GPTNeoXConfig(
        vocab_size=256,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        use_parallel_residual=False,
        **config,
    )
    hf = _save(tmp_path, perturb, t.GPTNeoXForCausalLM(cfg))
    assert main(["import-hf", str(tmp_path / "hf"), str(tmp_path / "run")]) == 0
    model, run_cfg = load_model(tmp_path / "run")
    assert run_cfg.model.position == ("rope" if config["rotary_pct"] else "nope")
    x = ids()
    with torch.no_grad():
        torch.testing.assert_close(model(x).logits, hf(x).logits, **TOL)


def test_mpt_from_transformers_imports_with_its_logits(tmp_path, perturb):
    t = transformers
    cfg = t.MptConfig(vocab_size=256, d_model=48, n_heads=6, n_layers=2, max_seq_len=64)
    hf = _save(tmp_path, perturb, t.MptForCausalLM(cfg))
    assert main(["import-hf", str(tmp_path / "hf"), str(tmp_path / "run")]) == 0
    model, run_cfg = load_model(tmp_path / "run")
    assert run_cfg.model.position == "alibi" and not run_cfg.model.bias
    x = ids()
    with torch.no_grad():
        torch.testing.assert_close(model(x).logits, hf(x).logits, **TOL)


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (dict(use_parallel_residual=True), "use_parallel_residual=true"),
        (dict(use_parallel_residual=False, rotary_pct=0.25), "rotary_pct=0.25"),
        (dict(use_parallel_residual=False, hidden_act="quick_gelu"), "quick_gelu"),
    ],
)
def test_gpt_neox_variants_posemb_cannot_compute_are_refused(tmp_path, capsys, config, field):
    cfg = transformers.GPTNeoXConfig(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        **config,
    )
    transformers.GPTNeoXForCausalLM(cfg).save_pretrained(tmp_path / "hf")
    capsys.readouterr()
    assert main(["import-hf", str(tmp_path / "hf"), str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and field in err
    assert not (tmp_path / "run").exists()


def test_import_then_export_keeps_ids_tokens_generation_config_and_dtype(tmp_path, hf_gpt2_fp16):
    hf_dir = hf_gpt2_fp16(tmp_path / "hf")
    assert main(["import-hf", str(hf_dir), str(tmp_path / "run")]) == 0
    assert main(["export-hf", str(tmp_path / "run"), str(tmp_path / "out")]) == 0
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert (config["bos_token_id"], config["eos_token_id"]) == (EOS, EOS)
    assert config["torch_dtype"] == "float16"
    before, after = (
        load_file(hf_dir / "model.safetensors"),
        load_file(tmp_path / "out" / "model.safetensors"),
    )
    assert before.keys() == after.keys()
    for key in before:  # float16 -> a float32 run -> float16 is exact
        assert after[key].dtype == torch.float16 and torch.equal(after[key], before[key]), key
    generation = json.loads((tmp_path / "out" / "generation_config.json").read_text())
    assert generation == json.loads((hf_dir / "generation_config.json").read_text())
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "out")
    assert tok.eos_token == "<|endoftext|>" and tok.eos_token_id == EOS
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert hf.generation_config.eos_token_id == EOS  # (dtype: transformers 4 loads float32)
    # a run extended from the imported one keeps them too
    argv = [
        "extend",
        str(tmp_path / "run"),
        str(tmp_path / "long"),
        "--to",
        "128",
        "--method",
        "tile",
    ]
    assert main(argv) == 0
    assert main(["export-hf", str(tmp_path / "long"), str(tmp_path / "out2")]) == 0
    config = json.loads((tmp_path / "out2" / "config.json").read_text())
    assert config["eos_token_id"] == EOS and config["torch_dtype"] == "float16"


@pytest.fixture
def hf_gpt2_fp16(perturb):
    def build(directory):
        """A float16 GPT-2 with an <|endoftext|> token as bos/eos, as GPT-2 itself ships."""
        t = transformers
        tok = posemb.data.build_tokenizer("bpe", ["the cat sat on the mat. " * 40], vocab_size=270)
        raw = tok.hf
        raw.add_special_tokens(["<|endoftext|>"])
        assert raw.token_to_id("<|endoftext|>") == EOS
        cfg = t.GPT2Config(
            n_layer=2,
            n_embd=32,
            n_head=2,
            n_positions=64,
            vocab_size=280,
            bos_token_id=EOS,
            eos_token_id=EOS,
        )
        torch.manual_seed(0)
        model = t.GPT2LMHeadModel(cfg)
        perturb(model)
        model.half().save_pretrained(directory)
        raw.save(str(directory / "tokenizer.json"))
        (directory / "tokenizer_config.json").write_text(
            json.dumps(
                {
                    "tokenizer_class": "GPT2Tokenizer",
                    "eos_token": "<|endoftext|>",
                    "bos_token": "<|endoftext|>",
                    "model_max_length": 64,
                }
            )
        )
        (directory / "generation_config.json").write_text(
            json.dumps({"bos_token_id": EOS, "eos_token_id": EOS, "max_new_tokens": 7})
        )
        return directory

    return build


def test_docs_export_table_matches_the_architectures():
    from pathlib import Path

    from posemb.interop.architectures import ARCHITECTURES, NO_COUNTERPART

    docs = Path(__file__).resolve().parents[2] / "docs" / "HF.md"
    section = docs.read_text(encoding="utf-8").split("<!-- exports -->")[1]
    rows = {}
    for line in section.split("<!-- /exports -->")[0].split("|---|")[-1].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) > 1:
            rows[cells[0].strip("`")] = cells[1]
    assert set(rows) == set(posemb.SCHEMES)
    for arch in ARCHITECTURES.values():
        for scheme in arch.schemes:
            assert f"`{arch.name}`" in rows[scheme], scheme
    for scheme in NO_COUNTERPART:
        assert rows[scheme] == "none"


def test_text_generation_pipeline_runs_on_an_export(tmp_path, make_run):
    """What lm-evaluation-harness's hf model and pipelines load: AutoModelForCausalLM and
    AutoTokenizer from the folder."""
    make_run(tmp_path / "run", position="rope")
    main(["export-hf", str(tmp_path / "run"), str(tmp_path / "hf")])
    generate = transformers.pipeline("text-generation", model=str(tmp_path / "hf"))
    out = generate("def main", max_new_tokens=5, do_sample=False)[0]["generated_text"]
    assert out.startswith("def main") and len(out) > len("def main")
