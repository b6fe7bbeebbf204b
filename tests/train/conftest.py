"""Fixtures for the training tests; the helpers live in trainkit.py (importable from here)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # `import trainkit` from the test modules

from trainkit import one_thread, write_corpus  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A token cache per test (inherited by subprocesses through the environment)."""
    cache = tmp_path / "posemb-cache"
    monkeypatch.setenv("POSEMB_CACHE", str(cache))
    return cache


@pytest.fixture(autouse=True)
def _one_thread():
    """In-process training on one intra-op thread: on a small, busy machine two threads
    spin against other processes and run several times slower."""
    with one_thread():
        yield


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ~250 kB text file (standard-library sources): learnable, present on every machine."""
    return write_corpus(tmp_path_factory.mktemp("corpus") / "corpus.txt")
