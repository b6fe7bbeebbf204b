"""Shared fixtures for the data tests: an isolated token cache and small corpora."""

from __future__ import annotations

from pathlib import Path

import pytest

SHAKESPEARE = Path(__file__).resolve().parents[3] / "shared" / "data" / "tinyshakespeare.txt"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Never write to the user's ~/.cache/posemb from a test."""
    monkeypatch.setenv("POSEMB_CACHE", str(tmp_path_factory.mktemp("posemb-cache")))


@pytest.fixture
def shakespeare() -> Path:
    """nanoGPT's tinyshakespeare.txt (1,115,394 bytes), when the shared data folder exists."""
    if not SHAKESPEARE.is_file():
        pytest.skip(f"{SHAKESPEARE} not present")
    return SHAKESPEARE
