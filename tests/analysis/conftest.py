"""Shared fixtures for the analysis tests: tiny trained runs (trained once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

# Train length T = 24 on a table of 64 rows: rows past T never get a gradient.
TINY = {
    "model.max_positions": 64,
    "model.n_layer": 1,
    "model.d_model": 32,
    "model.n_head": 2,
    "train.seq_len": 24,
    "train.max_steps": 5,
    "train.batch_size": 4,
    "train.progress": False,
    "train.eval_batches": 1,
    "data.source": "synthetic:copy",
}


def train_tiny(tmp: Path, name: str, **overrides) -> Path:
    from posemb.runs import build_config
    from posemb.train import train

    settings = {**TINY, "data.cache_dir": str(tmp / "cache"), **overrides}
    run_dir = tmp / name
    train(build_config("tiny", settings), run_dir)
    return run_dir


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Never write to the user's ~/.cache/posemb from a test."""
    monkeypatch.setenv("POSEMB_CACHE", str(tmp_path_factory.mktemp("posemb-cache")))


@pytest.fixture(scope="session")
def causal_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A causal LM with a learned table of 64 rows, trained 5 steps at T = 24."""
    return train_tiny(tmp_path_factory.mktemp("runs"), "causal")


@pytest.fixture(scope="session")
def encoder_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same, as a bidirectional encoder."""
    return train_tiny(tmp_path_factory.mktemp("runs"), "encoder", **{"model.causal": False})


@pytest.fixture(scope="session")
def rope_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run without a position table (RoPE), trained one step."""
    return train_tiny(
        tmp_path_factory.mktemp("runs"), "rope", **{"model.position": "rope", "train.max_steps": 1}
    )
