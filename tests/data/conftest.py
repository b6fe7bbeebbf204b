"""Shared fixtures for the data tests: small corpora. (Each test's own token cache comes
from tests/conftest.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

SHAKESPEARE = Path(__file__).resolve().parents[3] / "shared" / "data" / "tinyshakespeare.txt"


@pytest.fixture
def shakespeare() -> Path:
    """nanoGPT's tinyshakespeare.txt (1,115,394 bytes), when the shared data folder exists."""
    if not SHAKESPEARE.is_file():
        pytest.skip(f"{SHAKESPEARE} not present")
    return SHAKESPEARE
