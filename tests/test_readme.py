"""The README's quick start runs as written, and shows the out-of-range message the library
raises."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import posemb

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_quick_start_runs(tmp_path):
    blocks = python_blocks()
    assert blocks, "the README has a Python quick start"
    script = tmp_path / "quick_start.py"
    script.write_text("\n".join(blocks))
    # the Python API examples write runs/, models/ and hf/: in a folder of the test's own
    env = {**os.environ, "POSEMB_CACHE": str(tmp_path / "cache")}
    out = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert "position 599 is past the end of the learned table (512 positions: 0–511)" in out.stdout
    assert out.stdout.rstrip().endswith("512")  # the API examples' last line: the extended run


def test_readme_error_text_is_the_library_text():
    with pytest.raises(posemb.PositionOutOfRangeError) as info:
        posemb.LearnedAbsolutePositionalEmbedding(512, 4)(torch.tensor([599]))
    shown = " ".join(README.read_text(encoding="utf-8").split())
    assert " ".join(str(info.value).split()) in shown


def test_readme_names_the_two_commands():
    text = README.read_text(encoding="utf-8")
    assert "make demo" in text and "make test" in text
