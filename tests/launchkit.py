"""Launching ``python -m posemb train`` as one process or under torchrun, for the DDP and
FSDP tests: every rank but 0 is forbidden to write inside the run folder (RANK_GUARD), and
every rank records a digest of its parameters after each optimiser step.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from kit import FAST_SETS, read_step, subprocess_env

STEPS = 60
SETS = [
    *FAST_SETS,
    "train.batch_size=8",
    f"train.max_steps={STEPS}",
    "train.eval_every=20",
    "train.checkpoint_every=20",
    "train.eval_batches=8",
]
# Loaded into every process through PYTHONPATH (as sitecustomize). On a rank other than 0 it
# makes any write inside the run directory (open for writing, rename, remove, mkdir) raise,
# so that rank fails loudly: a write there is a bug (rank 0 alone writes).
RANK_GUARD = textwrap.dedent("""
    import os, sys
    _run = os.environ.get("POSEMB_TEST_GUARD_DIR")
    if _run and os.environ.get("RANK", "0") != "0":
        _run = os.path.abspath(_run)
        _write = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

        def _inside(path):
            if isinstance(path, int) or path is None:
                return False
            p = os.path.abspath(os.fsdecode(path))
            return p == _run or p.startswith(_run + os.sep)

        def _hook(event, args):
            if event == "open":
                path, mode, flags = args
                writing = (mode and any(c in mode for c in "wax+")) or (flags or 0) & _write
                if writing and _inside(path):
                    raise PermissionError(f"rank {os.environ['RANK']} wrote {path}")
            elif event in ("os.rename", "os.remove", "os.mkdir", "os.rmdir", "os.truncate"):
                if any(_inside(a) for a in args[:2] if isinstance(a, (str, bytes, os.PathLike))):
                    raise PermissionError(f"rank {os.environ['RANK']}: {event} {args[:2]}")

        sys.addaudithook(_hook)

    # every rank records a digest of its parameters after each optimiser step: DDP averages
    # the gradients, so the replicas must stay bit-identical
    _log = os.environ.get("POSEMB_TEST_DIGEST_DIR")
    if _log and "RANK" in os.environ:
        import atexit, hashlib, json
        import torch

        _digests = []
        _step = torch.optim.AdamW.step

        def _logged_step(self, *args, **kwargs):
            out = _step(self, *args, **kwargs)
            h = hashlib.sha256()
            for group in self.param_groups:
                for p in group["params"]:
                    p = p.to_local() if hasattr(p, "to_local") else p  # FSDP: this rank's shard
                    h.update(p.detach().cpu().numpy().tobytes())
            _digests.append(h.hexdigest())
            return out

        torch.optim.AdamW.step = _logged_step
        _out = os.path.join(_log, f"rank{os.environ['RANK']}.json")
        atexit.register(lambda: open(_out, "w").write(json.dumps(_digests)))
""")


def launch(args: list[str], out: Path, nproc: int, logs: Path, **popen) -> subprocess.Popen:
    """``python -m posemb ARGS`` (under torchrun when nproc > 1), with the rank guard loaded."""
    guard = logs / "guard"
    guard.mkdir(parents=True, exist_ok=True)
    (guard / "sitecustomize.py").write_text(RANK_GUARD, encoding="utf-8")
    path = os.pathsep.join(filter(None, [str(guard), os.environ.get("PYTHONPATH")]))
    env = subprocess_env(
        PYTHONPATH=path, POSEMB_TEST_GUARD_DIR=str(out), POSEMB_TEST_DIGEST_DIR=str(logs)
    )
    cmd = ["-m", "posemb", *map(str, args)]
    if nproc > 1:  # --standalone: a free rendezvous port, no clash with other jobs on the machine
        cmd = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *cmd]
    return subprocess.Popen(
        [sys.executable, *cmd],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        **popen,
    )


def train_args(corpus: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--preset", "tiny", "--data", corpus, "--set", *SETS, *extra, "--out", out]


def rank_digests(logs: Path) -> list[list[str]]:
    return [json.loads((logs / f"rank{r}.json").read_text()) for r in (0, 1)]


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except OSError:
        return []


def interrupt(args: list, run: Path, tmp_path: Path) -> tuple[int, str]:
    """Launch a two-process run and Ctrl-C its process group once 3 steps are logged;
    returns the step of the checkpoint it left and the launcher's output."""
    proc = launch(args, run, 2, tmp_path / "logs", start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while len(_lines(run / "metrics.jsonl")) < 3:
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "training never started"
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGINT)
        out = proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return read_step(run), out
