"""Shared fixtures for the analysis tests: tiny trained runs (trained once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kit import TINY

# Train length T = 24 on a table of 64 rows (TINY's): rows past T never get a gradient.
SETTINGS = {
    **TINY,
    "train.seq_len": 24,
    "train.max_steps": 5,
    "train.eval_batches": 1,
    "data.source": "synthetic:copy",
}


def train_tiny(tmp: Path, name: str, **overrides) -> Path:
    from posemb.runs import build_config
    from posemb.train import train

    settings = {**SETTINGS, "data.cache_dir": str(tmp / "cache"), **overrides}
    run_dir = tmp / name
    train(build_config("tiny", settings), run_dir)
    return run_dir


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
