"""Helpers for the tests: tiny settings, a small corpus, subprocess runs, a tiny sweep budget.

Subprocesses run ``python -m posemb`` with one intra-op thread, and in-process training uses
one too (``one_thread``): the same arithmetic in every run, for exact-resume comparisons,
and no thread spinning against other processes on a small, busy machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file

if TYPE_CHECKING:
    import pytest

# The tiny training settings every test starts from (``group.key`` settings on the ``tiny``
# preset): a 1-layer, 32-wide model with 2 heads and a 64-row table, trained on 32-token
# windows, 4 a batch, without a progress bar; a step takes milliseconds on CPU. A test adds
# what it needs next to the use (``{**TINY, "train.max_steps": 3}``): the steps, the data,
# the evaluation cadence. Changing a value here changes every training test.
TINY: dict[str, Any] = {
    "model.n_layer": 1,
    "model.d_model": 32,
    "model.n_head": 2,
    "model.max_positions": 64,
    "train.seq_len": 32,
    "train.batch_size": 4,
    "train.progress": False,
    "train.eval_batches": 2,
}
# TINY for the resume, lock and multi-process tests (and ``fast_config``): a short warm-up,
# a metrics line every step, an evaluation every 10 steps.
FAST: dict[str, Any] = {
    **TINY,
    "train.warmup_steps": 5,
    "train.log_every": 1,
    "train.eval_every": 10,
    # eager: no test depends on this machine's compiled kernels (those marked `compiled` do)
    "train.compile": False,
}
# The interop tests' tiny GPT-2: ``ModelConfig.preset("gpt2", **TINY_GPT2)``.
TINY_GPT2 = dict(n_layer=2, n_head=2, d_model=32, max_positions=64, vocab_size=256)
# Standard-library modules whose source makes a ~250 kB English-and-Python corpus.
CORPUS_MODULES = ("argparse.py", "textwrap.py", "difflib.py", "dataclasses.py")


def as_sets(settings: dict[str, Any]) -> list[str]:
    """``group.key`` settings as ``--set`` arguments (``{"train.progress": False}`` ->
    ``["train.progress=false"]``)."""
    return [f"{key}={json.dumps(value)}" for key, value in settings.items()]


FAST_SETS = as_sets(FAST)


def fast_settings(**overrides: Any) -> dict[str, Any]:
    """FAST as a ``build_config`` dict, plus ``overrides`` given as ``train__lr=...``."""
    flat = dict(FAST)
    flat.update({k.replace("__", "."): v for k, v in overrides.items()})
    return flat


def fast_config(**overrides: Any):
    """A tiny RunConfig (the ``tiny`` preset shrunk by FAST) with ``group__key`` overrides."""
    from posemb.runs import build_config

    return build_config("tiny", fast_settings(**overrides))


def tiny_quick_budget(
    mp: pytest.MonkeyPatch, *, train_len: int, tokens: int, settings: dict[str, Any]
) -> None:
    """Make ``posemb sweep``'s "quick" budget (the demo's too) tiny until ``mp`` is undone:
    the ``tiny`` preset with TINY and ``settings``, trained at ``train_len``, ``tokens``
    scored per length. The sweep sets each model's lengths, data, seed and progress bar
    itself (``sweep.variant_config``), so those of TINY do not reach it."""
    from posemb.experiments import sweep

    budget = {"preset": "tiny", "train_len": train_len, "tokens": tokens}
    mp.setitem(sweep.BUDGETS, "quick", {**budget, "settings": {**TINY, **settings}})


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1", **extra)
    return env


def posemb_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "posemb", *map(str, args)]


def run_posemb(
    *args: str, timeout: float = 300, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """``python -m posemb ARGS`` to completion, output captured as text."""
    return subprocess.run(
        posemb_cmd(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or subprocess_env(),
        cwd=cwd,
    )


def assert_clean_error(proc: subprocess.CompletedProcess, code: int = 2) -> str:
    """Exit ``code``, exactly one line on stderr, no traceback; returns that line."""
    err = proc.stderr.strip()
    assert proc.returncode == code, f"exit {proc.returncode}, stderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(err.splitlines()) == 1, f"expected one stderr line, got:\n{proc.stderr}"
    return err


def read_metrics(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line]


def read_step(run: Path) -> int:
    """The step of the committed checkpoint (0 while there is none or it is being replaced)."""
    try:
        return int(json.loads((run / "trainer_state.json").read_text())["step"])
    except (OSError, ValueError, KeyError):
        return 0


def checkpoint_bytes(run: Path) -> dict[str, bytes]:
    names = ("model.safetensors", "optimizer.safetensors", "trainer_state.json")
    return {n: (run / n).read_bytes() for n in names}


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ: {different}"


def run_tensors(run: Path, name: str = "model.safetensors") -> dict[str, torch.Tensor]:
    return load_file(str(run / name))


def write_corpus(path: Path) -> Path:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    text = "\n\n".join((stdlib / m).read_text(encoding="utf-8") for m in CORPUS_MODULES)
    path.write_text(text, encoding="utf-8")
    return path


@contextlib.contextmanager
def one_thread():
    """One intra-op thread (the same arithmetic as the subprocesses), restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
