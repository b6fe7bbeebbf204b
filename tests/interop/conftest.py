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

from posemb import ModelConfig, Transformer
from posemb.data import build_tokenizer
from posemb.train.checkpoint import save_model, write_config
from posemb.train.config import RunConfig

TINY_GPT2 = dict(n_layer=2, n_head=2, d_model=32, max_positions=64, vocab_size=256)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Never write to the user's ~/.cache/posemb from a test."""
    monkeypatch.setenv("POSEMB_CACHE", str(tmp_path_factory.mktemp("posemb-cache")))


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
    from posemb.train.checkpoint import state_dict_for_save

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
