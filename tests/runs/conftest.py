"""A finished two-step run, trained once per module, and a fresh copy of it per test to
damage (tests/runs/test_integrity.py, test_damaged_state.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kit import fast_config
from posemb.train import train


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("pristine") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POSEMB_CACHE", str(run.parent / "cache"))
        train(fast_config(train__max_steps=2, data__source="synthetic:copy"), run)
    return run


@pytest.fixture
def run(pristine: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(pristine, copy)
    return copy
