"""One writer per run folder (docs/DESIGN.md, "The run folder"): an OS file lock, held while
a process writes a run.

- a second writer (``train --out R`` or ``train --resume R``) exits 2 naming the holder:
  pid, host, start time and command;
- ``kill -9`` of the holder releases the lock (the OS does): the next writer proceeds,
  though the stale lock file is still there;
- readers (``posemb.load``, generate) never take the lock and work while a writer holds it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import posemb
from kit import (
    FAST_SETS,
    assert_clean_error,
    posemb_cmd,
    read_metrics,
    run_posemb,
    subprocess_env,
)
from posemb.cli.main import main
from posemb.runs.lock import LOCK_FILE, RunLock, RunLockedError
from posemb.train import train

HOLD = (
    "import sys, time\n"
    "from posemb.runs.lock import RunLock\n"
    "RunLock(sys.argv[1]).acquire()\n"
    "print('locked', flush=True)\n"
    "time.sleep(600)\n"
)


@pytest.fixture
def finished(pristine: Path) -> Path:
    """A finished 2-step run (tests/runs/conftest.py: synthetic data, trained once here)."""
    return pristine


@pytest.fixture
def holder(finished: Path):
    """Another process holding the run's lock, as a training process would."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(finished)],
        stdout=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )
    assert proc.stdout.readline().strip() == "locked"
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_a_second_lock_in_process_names_the_holder(tmp_path):
    with RunLock(tmp_path):
        assert (tmp_path / LOCK_FILE).exists()
        with pytest.raises(RunLockedError) as e:
            RunLock(tmp_path).acquire()
    message = str(e.value)
    assert f"pid {os.getpid()} on {socket.gethostname()} since" in message
    assert "command:" in message
    assert not (tmp_path / LOCK_FILE).exists()  # released and removed
    with RunLock(tmp_path):  # and free again
        pass


def test_lock_file_content_names_the_holder(tmp_path):
    with RunLock(tmp_path):
        text = (tmp_path / LOCK_FILE).read_text()
    assert f'"pid": {os.getpid()}' in text and "started" in text and "command" in text


@pytest.mark.parametrize("how", ["resume", "out"])
def test_a_second_writer_exits_2_naming_the_holder(holder, finished, capsys, how):
    before = sorted(p.name for p in finished.iterdir())
    metrics = read_metrics(finished)
    if how == "resume":
        argv = ["train", "--resume", str(finished), "--set", "train.max_steps=4"]
    else:
        argv = ["train", "--preset", "tiny", "--set", *FAST_SETS, "--out", str(finished)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"is being written by pid {holder.pid} on {socket.gethostname()}" in err
    assert "command:" in err and "wait for it to finish" in err
    # the refused writer touched nothing
    assert sorted(p.name for p in finished.iterdir()) == before
    assert read_metrics(finished) == metrics


def test_readers_never_take_the_lock(holder, finished, capsys):
    model, tokenizer = posemb.load(finished)  # while another process holds the lock
    assert main(["generate", str(finished), "--prompt", "ab", "--max-new-tokens", "3"]) == 0
    assert capsys.readouterr().out.strip()


def snapshot(run: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.rglob("*") if p.is_file()}


def test_readers_never_write_into_the_run(holder, finished, tmp_path, capsys):
    """generate, eval, probe-order, extend and export-hf read a run (while it is being
    written: the lock is held) and leave every file of it as it was."""
    before = snapshot(finished)
    for argv in (
        ["generate", finished, "--prompt", "ab", "--max-new-tokens", "3"],
        ["eval", finished, "--lengths", "16", "--out", tmp_path / "eval"],
        ["probe-order", finished, "ab cd", "cd ab"],
        ["extend", finished, tmp_path / "ext", "--to", "128", "--method", "tile"],
        ["export-hf", finished, tmp_path / "hf"],
    ):
        assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    assert snapshot(finished) == before


def test_kill_9_releases_the_lock(holder, finished):
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (finished / LOCK_FILE).exists()  # stale content stays; the OS lock is gone
    result = train(None, finished, resume=True, overrides={"train.max_steps": 3})
    assert result.step == 3
    assert not (finished / LOCK_FILE).exists()


@pytest.mark.slow
def test_two_real_trainings_on_one_out(tmp_path):
    """The issue's case: a second ``posemb train --out R`` while R trains."""
    run = tmp_path / "run"
    args = ["train", "--preset", "tiny", "--data", "synthetic:copy", "--set", *FAST_SETS]
    log = open(tmp_path / "first.log", "w")
    first = subprocess.Popen(
        posemb_cmd(*args, "train.max_steps=100000", "--out", run),
        stdout=log,
        stderr=subprocess.STDOUT,
        env=subprocess_env(),
    )
    try:
        deadline = time.monotonic() + 120
        while not (run / "metrics.jsonl").exists():  # it holds the lock and trains
            assert first.poll() is None, (tmp_path / "first.log").read_text()
            assert time.monotonic() < deadline, "the first training never started"
            time.sleep(0.05)
        second = run_posemb(*args, "train.max_steps=5", "--out", run)
        line = assert_clean_error(second)
        assert f"pid {first.pid}" in line
        resumed = run_posemb("train", "--resume", run)
        assert f"pid {first.pid}" in assert_clean_error(resumed)
        assert first.poll() is None  # the first one never noticed
    finally:
        first.kill()
        first.wait()
