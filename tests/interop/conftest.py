"""Shared helpers: tiny posemb runs and tiny random Hugging Face models, written to tmp_path.

Nothing is fetched: every Hugging Face model is built from a config with random weights,
which are then perturbed (biases and LayerNorm gains too) so a swapped or untransposed
tensor changes the outputs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from kit import TINY_GPT2
from posemb import ModelConfig, Transformer
from posemb.data import build_tokenizer
from posemb.runs.config import RunConfig
from posemb.runs.load import write_config
from posemb.runs.weights import save_model


def _perturb(module: torch.nn.Module, seed: int = 0, scale: float = 0.05) -> None:
    """Add noise to every parameter: zero biases and unit gains would hide mapping bugs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)


def _make_run(run_dir: Path, tokenizer: str = "byte", seed: int = 0, **overrides) -> Transformer:
    """A posemb run directory without training: config.json, model.safetensors, tokenizer.json."""
    torch.manual_seed(seed)
    cfg = ModelConfig.preset("gpt2", **{**TINY_GPT2, **overrides})
    model = Transformer(cfg)
    _perturb(model, seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_config(run_dir, RunConfig(model=cfg))
    save_model(model, run_dir / "model.safetensors")
    texts = ["def main():\n    return 42\n", "hello world, hello posemb"] * 20
    build_tokenizer(tokenizer, texts, vocab_size=300).save(run_dir)
    return model.eval()


def _tree_hash(directory: Path) -> dict[str, str]:
    """sha256 of every file under ``directory`` (to prove a source was not modified)."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


# Helpers as fixtures (tests are imported with --import-mode=importlib, so no conftest imports).
@pytest.fixture
def perturb():
    return _perturb


@pytest.fixture
def make_run():
    return _make_run


@pytest.fixture
def tree_hash():
    return _tree_hash


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    _make_run(tmp_path / "run")
    return tmp_path / "run"


def _make_gpt2_dir(directory: Path, shards: int = 1, seed: int = 0) -> Path:
    """A Hugging Face GPT-2 directory (config.json + safetensors, no tokenizer), written
    without transformers: ``hf_config`` and ``to_hf`` of a tiny perturbed posemb model.
    ``shards=2`` splits the weights into two files with a ``model.safetensors.index.json``."""
    from safetensors.torch import save_file

    from posemb.interop import hf_config, to_hf
    from posemb.runs.weights import state_dict_for_save

    torch.manual_seed(seed)
    cfg = ModelConfig.preset("gpt2", **TINY_GPT2)
    model = Transformer(cfg)
    _perturb(model, seed)
    tensors = to_hf(state_dict_for_save(model), cfg)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(hf_config(cfg)), encoding="utf-8")
    if shards == 1:
        save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
        return directory
    names = sorted(tensors)
    weight_map = {}
    for i in range(shards):
        file = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = names[i::shards]
        save_file({k: tensors[k] for k in part}, str(directory / file), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, file))
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index), encoding="utf-8")
    return directory


@pytest.fixture
def make_gpt2_dir():
    return _make_gpt2_dir


# -- tiny random Hugging Face models, one per family of posemb.interop.families.FAMILIES ----------
_TEXT = dict(
    vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
)
_SEQ2SEQ = dict(
    vocab_size=99,
    d_model=32,
    encoder_layers=1,
    decoder_layers=1,
    encoder_attention_heads=2,
    decoder_attention_heads=2,
    encoder_ffn_dim=64,
    decoder_ffn_dim=64,
)
_GPT = dict(n_layer=2, n_embd=32, n_head=2, vocab_size=99)


def _bert(cls: str, **extra):
    return cls, lambda n: {**_TEXT, **extra, "max_position_embeddings": n}, "text"


def _roberta(cls: str):  # RoBERTa's config counts its 2 reserved rows
    return cls, lambda n: {**_TEXT, "max_position_embeddings": n + 2, "pad_token_id": 1}, "text"


def _bart(cls: str):
    return cls, lambda n: {**_SEQ2SEQ, "max_position_embeddings": n}, "seq2seq"


# model_type -> (class, config kwargs for a table of n positions, inputs)
HF_TINY = {
    "gpt2": ("GPT2LMHeadModel", lambda n: {**_GPT, "n_positions": n}, "text"),
    "gpt_neo": (
        "GPTNeoForCausalLM",
        lambda n: dict(
            vocab_size=99,
            hidden_size=32,
            num_layers=2,
            num_heads=2,
            intermediate_size=64,
            attention_types=[[["global", "local"], 1]],
            window_size=16,
            max_position_embeddings=n,
        ),
        "text",
    ),
    "gpt_bigcode": ("GPTBigCodeForCausalLM", lambda n: {**_GPT, "n_positions": n}, "text"),
    "imagegpt": ("ImageGPTForCausalImageModeling", lambda n: {**_GPT, "n_positions": n}, "text"),
    "opt": (
        "OPTForCausalLM",
        lambda n: dict(
            vocab_size=99,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            ffn_dim=64,
            word_embed_proj_dim=32,
            max_position_embeddings=n,
        ),
        "text",
    ),
    "biogpt": _bert("BioGptForCausalLM"),
    "bert": _bert("BertForMaskedLM"),
    "distilbert": (
        "DistilBertForMaskedLM",
        lambda n: dict(
            vocab_size=99, dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=n
        ),
        "text",
    ),
    "electra": _bert("ElectraForMaskedLM", embedding_size=16),
    "albert": _bert("AlbertForMaskedLM", embedding_size=16),
    "ernie": _bert("ErnieForMaskedLM"),
    "megatron-bert": _bert("MegatronBertForMaskedLM"),
    # block-sparse attention from 37 tokens on (5 + 2 * 2 blocks of 4), full attention below
    "big_bird": _bert(
        "BigBirdForMaskedLM", attention_type="block_sparse", block_size=4, num_random_blocks=2
    ),
    "layoutlm": _bert("LayoutLMForMaskedLM"),
    "splinter": _bert("SplinterModel"),
    "mobilebert": _bert("MobileBertForMaskedLM", embedding_size=16, intra_bottleneck_size=16),
    "convbert": _bert("ConvBertForMaskedLM", embedding_size=32),
    "rembert": _bert("RemBertForMaskedLM", input_embedding_size=16, output_embedding_size=16),
    "roberta": _roberta("RobertaForMaskedLM"),
    "xlm-roberta": _roberta("XLMRobertaForMaskedLM"),
    "camembert": _roberta("CamembertForMaskedLM"),
    "xlm-roberta-xl": _roberta("XLMRobertaXLForMaskedLM"),
    "data2vec-text": _roberta("Data2VecTextForMaskedLM"),
    "roberta-prelayernorm": _roberta("RobertaPreLayerNormForMaskedLM"),
    "bart": _bart("BartForConditionalGeneration"),
    "mbart": _bart("MBartForConditionalGeneration"),
    "plbart": _bart("PLBartForConditionalGeneration"),
    "mvp": _bart("MvpForConditionalGeneration"),
    "blenderbot": _bart("BlenderbotForConditionalGeneration"),
    "blenderbot-small": _bart("BlenderbotSmallForConditionalGeneration"),
    "whisper": (
        "WhisperForConditionalGeneration",
        lambda n: {
            **{k: v for k, v in _SEQ2SEQ.items()},
            "max_source_positions": 16,
            "max_target_positions": n,
            "num_mel_bins": 8,
            "pad_token_id": 0,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "decoder_start_token_id": 1,
            "begin_suppress_tokens": None,
        },
        "whisper",
    ),
}


def _build_hf(model_type: str, directory: Path, n: int, seed: int = 0, **save) -> torch.nn.Module:
    """A tiny random (perturbed) model of ``model_type`` whose table serves ``n`` positions,
    saved to ``directory``; returned in eval mode."""
    import transformers

    cls, config, _ = HF_TINY[model_type]
    torch.manual_seed(seed)
    cfg = transformers.AutoConfig.for_model(model_type, **config(n))
    model = getattr(transformers, cls)(cfg)
    _perturb(model, seed)
    model.save_pretrained(directory, **save)
    return model.eval()


def _hf_inputs(model_type: str, n: int, batch: int = 2) -> dict[str, torch.Tensor]:
    """Inputs of ``n`` tokens (ids >= 3: never a padding id, so positions are 0 .. n-1)."""
    ids = torch.randint(3, 99, (batch, n), generator=torch.Generator().manual_seed(n))
    kind = HF_TINY[model_type][2]
    if kind == "whisper":  # 2 frames per encoder position; the decoder reads the n tokens
        features = torch.randn(batch, 8, 32, generator=torch.Generator().manual_seed(1))
        return {"input_features": features, "decoder_input_ids": ids}
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if kind == "seq2seq":
        inputs["decoder_input_ids"] = ids
    return inputs


def _hf_output(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        out = model(**inputs)
    return out.logits if getattr(out, "logits", None) is not None else out.last_hidden_state


@pytest.fixture
def build_hf():
    return _build_hf


@pytest.fixture
def hf_inputs():
    return _hf_inputs


@pytest.fixture
def hf_output():
    return _hf_output


@pytest.fixture
def hf_tiny():
    return HF_TINY
