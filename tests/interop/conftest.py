"""Shared helpers: tiny posemb runs and tiny random Hugging Face models, written to tmp_path.

Nothing is fetched: every Hugging Face model is built from a config with random weights,
which are then perturbed (biases and LayerNorm gains too) so a swapped or untransposed
tensor changes the outputs.
"""

from __future__ import annotations

import hashlib
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
