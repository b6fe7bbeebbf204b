"""Fixtures every test shares; the helpers live in kit.py (``from kit import ...``).

- Every test gets its own token cache (``POSEMB_CACHE``, inherited by subprocesses), so no
  test writes to the user's ``~/.cache/posemb``.
- Every test runs torch on one intra-op thread: the same arithmetic as the subprocesses
  (for exact-resume comparisons), and no thread spinning against other processes on a
  small, busy machine.
- ``corpus``: a ~250 kB text file (standard-library sources), learnable and present on
  every machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # `from kit import ...` in the test modules

from kit import one_thread, write_corpus  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A token cache per test (inherited by subprocesses through the environment)."""
    cache = tmp_path / "posemb-cache"
    monkeypatch.setenv("POSEMB_CACHE", str(cache))
    return cache


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus") / "corpus.txt")
