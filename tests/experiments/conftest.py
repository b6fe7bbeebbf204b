"""Shared fixtures for the sweep and recipe tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """In place of the session's corpus: one short line, 400 times (19 kB), so that a sweep
    of tiny models trains and scores in seconds."""
    path = tmp_path_factory.mktemp("data") / "text.txt"
    path.write_text("the cat chased the dog. the dog chased the cat.\n" * 400)
    return path
