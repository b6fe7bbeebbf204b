"""Data-parallel training on CPU: ``torchrun --nproc_per_node 2 -m posemb train`` with gloo.

Two processes with a global batch of 8 (4 per rank) against one process with the same
global batch of 8: same model init (same seed), same schedule, same validation batches.
They are not bit-identical, and should not be: each rank samples windows from its own
shard of the token stream with its own data RNG (seeded [seed, rank]), so the two runs
see different training windows. What must agree is how far training gets; see TOLERANCE.
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

import pytest
from trainkit import (
    FAST_SETS,
    assert_same_tensors,
    read_metrics,
    read_step,
    run_tensors,
    subprocess_env,
)

pytestmark = pytest.mark.slow

STEPS = 60
SETS = [
    *FAST_SETS,
    "train.batch_size=8",
    f"train.max_steps={STEPS}",
    "train.eval_every=20",
    "train.checkpoint_every=20",
    "train.eval_batches=8",
]
# Final validation loss (same 8 fixed validation batches), 1 vs 2 processes. Both runs fall
# from ~5.5 nats (ln 256) to ~3.3 in 60 steps; the different training windows move the end
# point by a few hundredths (0.035 measured). 0.15 nats is ~7% of that 2.2-nat drop: loose
# enough for data-order noise, tight enough to catch a run that trains far less (a wrong
# schedule, an update lost). Replicas that drift apart (gradients not averaged) are caught
# exactly, by the per-step parameter digests every rank records (RANK_GUARD below).
TOLERANCE = 0.15

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


def _launch(args: list[str], out: Path, nproc: int, logs: Path, **popen) -> subprocess.Popen:
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


def _train_args(corpus: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--preset", "tiny", "--data", corpus, "--set", *SETS, *extra, "--out", out]


@pytest.fixture(scope="module")
def runs(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The same training on 1 and on 2 processes, run side by side."""
    root = tmp_path_factory.mktemp("ddp")
    one, two = root / "one", root / "two"
    procs = [
        _launch(_train_args(corpus, one), one, 1, root / "logs1"),
        _launch(_train_args(corpus, two), two, 2, root / "logs2"),
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert procs[0].returncode == 0, outs[0]
    assert procs[1].returncode == 0, outs[1]
    return {"one": one, "two": two, "out2": outs[1], "logs2": root / "logs2"}


def _digests(logs: Path) -> list[list[str]]:
    return [json.loads((logs / f"rank{r}.json").read_text()) for r in (0, 1)]


def test_two_process_gloo_matches_one_process(runs):
    digests = _digests(runs["logs2"])
    assert len(digests[0]) == STEPS and digests[0] == digests[1]  # replicas in lockstep

    m1, m2 = read_metrics(runs["one"]), read_metrics(runs["two"])
    val1, val2 = m1[-1]["val_loss"], m2[-1]["val_loss"]
    first = m1[0]["train_loss"]
    assert first - val1 > 1.5 and first - val2 > 1.5, (first, val1, val2)  # both trained
    assert abs(val1 - val2) < TOLERANCE, f"val loss 1 process {val1:.4f}, 2 processes {val2:.4f}"
    assert abs(m1[0]["train_loss"] - m2[0]["train_loss"]) < 0.2  # same init, different windows
    assert [m["lr"] for m in m1] == [m["lr"] for m in m2]  # same schedule


def test_only_rank_0_writes(runs):
    one, two, out = runs["one"], runs["two"], runs["out2"]
    assert "wrote" not in out  # the rank guard never fired
    # one metrics line per step, the same files as a 1-process run, one summary line
    assert [m["step"] for m in read_metrics(two)] == list(range(1, STEPS + 1))
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    assert out.count("trained ") == 1, out
    state = json.loads((two / "trainer_state.json").read_text())
    assert state["step"] == STEPS and state["world_size"] == 2
    assert len(state["data_rng"]) == 2 and state["data_rng"][0] != state["data_rng"][1]


def test_ctrl_c_under_torchrun_saves_and_resume_matches(runs, corpus, tmp_path):
    """Ctrl-C in a terminal signals the whole process group: torchrun and every rank.
    Every rank must finish its step and join the save; the resumed run ends bit-identical
    to the uninterrupted 2-process run (gloo's 2-way average is deterministic)."""
    run = tmp_path / "run"
    # evaluating every step only slows the steps down (a wider window to interrupt in);
    # evaluation draws from its own generator, so the weights are those of `runs["two"]`
    step, out = _interrupt(_train_args(corpus, run, "train.eval_every=1"), run, tmp_path)
    assert 0 < step < STEPS, f"no checkpoint from the interrupt (step {step}):\n{out}"
    assert out.count(f"posemb: interrupted at step {step};") == 1, out  # saved there, said once
    assert f"--resume {run}" in out and "Connection closed" not in out

    proc = _launch(["train", "--resume", run], run, 2, tmp_path / "logs")
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out
    assert_same_tensors(run_tensors(run), run_tensors(runs["two"]))
    assert [m["step"] for m in read_metrics(run)] == list(range(1, STEPS + 1))


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except OSError:
        return []


def _interrupt(args: list, run: Path, tmp_path: Path) -> tuple[int, str]:
    """Launch a two-process run and Ctrl-C its process group once 3 steps are logged;
    returns the step of the checkpoint it left and the launcher's output."""
    proc = _launch(args, run, 2, tmp_path / "logs", start_new_session=True)
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
