"""A run that never reached its first checkpoint never blocks its folder
(docs/DESIGN.md, "Reliability rules").

- ``--resume`` of a folder a kill left before the first checkpoint (config.json and the
  tokenizer, perhaps metrics lines, a stale lock, half-written ``.next`` files) trains it
  from step 0 with its saved settings and ends exactly where an uninterrupted run does;
- ``--out`` may reuse such a folder (it holds nothing worth keeping), but never one that
  holds a checkpoint, weights, or files that are not a run's;
- a new run that fails before its first checkpoint (a full disk) removes what it wrote.
"""

from __future__ import annotations

import errno
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kit import assert_same_tensors, fast_config, one_thread, read_metrics, run_tensors
from posemb.runs import checkpoint as ckpt
from posemb.runs.lock import LOCK_FILE
from posemb.train import train

STEPS = 4


def config():
    return fast_config(train__max_steps=STEPS, train__checkpoint_every=STEPS, model__dropout=0.1)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("folder") / "ref"
    with pytest.MonkeyPatch.context() as mp, one_thread():  # the tests' arithmetic
        mp.setenv("POSEMB_CACHE", str(run.parent / "cache"))
        train(config(), run)
    return run


def killed_before_first_checkpoint(reference: Path, run: Path) -> Path:
    """What ``kill -9`` at step 2 of 4 (first checkpoint at 4) leaves behind."""
    run.mkdir()
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(reference / name, run / name)
    lines = (reference / "metrics.jsonl").read_text().splitlines()[:2]
    (run / "metrics.jsonl").write_text("\n".join(lines) + '\n{"step": 3, "train_lo')  # torn
    (run / LOCK_FILE).write_text('{"pid": 999999, "host": "gone"}')  # its holder is dead
    (run / "model.safetensors.next").write_bytes(b"half a checkpoint")
    (run / ".metrics.jsonl.k2j3x9.tmp").write_text('{"step": 1')  # an atomic write cut short
    return run


def test_resume_without_a_checkpoint_trains_from_step_0(reference, tmp_path, capsys):
    run = killed_before_first_checkpoint(reference, tmp_path / "run")
    result = train(None, run, resume=True)
    assert result.step == STEPS
    assert "has no checkpoint yet: training it from step 0" in capsys.readouterr().err
    for name in ("model.safetensors", "optimizer.safetensors"):
        assert_same_tensors(run_tensors(run, name), run_tensors(reference, name))
    got, want = read_metrics(run), read_metrics(reference)
    assert [m["step"] for m in got] == list(range(1, STEPS + 1))
    assert [m["train_loss"] for m in got] == [m["train_loss"] for m in want]
    assert not list(run.glob("*.next")) and not (run / LOCK_FILE).exists()


def test_resume_without_a_tokenizer_rebuilds_it(reference, tmp_path):
    run = killed_before_first_checkpoint(reference, tmp_path / "run")
    (run / "tokenizer.json").unlink()
    train(None, run, resume=True)
    assert (run / "tokenizer.json").read_bytes() == (reference / "tokenizer.json").read_bytes()
    assert_same_tensors(run_tensors(run), run_tensors(reference))


def test_out_reuses_a_run_that_never_checkpointed(reference, tmp_path, capsys):
    run = killed_before_first_checkpoint(reference, tmp_path / "run")
    train(config(), run)
    assert "stopped before its first checkpoint" in capsys.readouterr().err
    assert_same_tensors(run_tensors(run), run_tensors(reference))
    assert [m["step"] for m in read_metrics(run)] == list(range(1, STEPS + 1))
    assert not list(run.glob(".*.tmp")) and not list(run.glob("*.next"))


@pytest.mark.parametrize(
    "leave, needle",
    [
        ("trainer_state.json", "already holds a run; continue it with --resume"),
        ("checkpoint.commit", "already holds a run; continue it with --resume"),
        ("model.safetensors", "holds weights"),
        ("notes.txt", "is not empty and is not a posemb run \\(it holds 'notes.txt'\\)"),
    ],
)
def test_out_never_reuses_a_folder_with_something_to_keep(tmp_path, leave, needle):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / leave).write_text("keep me")
    before = sorted(p.name for p in run.iterdir())
    with pytest.raises(ValueError, match=needle):
        train(config(), run)
    assert sorted(p.name for p in run.iterdir()) == before
    assert (run / leave).read_text() == "keep me"


def full_disk(monkeypatch):
    def write_weights(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(ckpt, "write_weights", write_weights)


def test_a_new_run_that_fails_before_its_first_checkpoint_removes_what_it_wrote(
    reference, tmp_path, monkeypatch
):
    run = tmp_path / "deep" / "run"
    full_disk(monkeypatch)
    with pytest.raises(OSError, match="No space left"):
        train(config(), run)
    assert not run.exists()  # created by the failed run: removed
    monkeypatch.undo()
    train(config(), run)  # the same --out works
    assert_same_tensors(run_tensors(run), run_tensors(reference))


def test_a_failed_start_in_an_existing_empty_folder_keeps_the_folder(tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    full_disk(monkeypatch)
    with pytest.raises(OSError):
        train(config(), run)
    assert run.is_dir() and list(run.iterdir()) == []


def test_a_failed_resume_keeps_the_run(reference, tmp_path, monkeypatch):
    run = killed_before_first_checkpoint(reference, tmp_path / "run")
    full_disk(monkeypatch)
    with pytest.raises(OSError):
        train(None, run, resume=True)
    assert (run / "config.json").exists() and (run / "tokenizer.json").exists()


WRITE_PAST_A_SIZE_LIMIT = """
import resource, signal, sys, torch
from posemb.runs.weights import write_weights
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, resource.RLIM_INFINITY))
try:
    write_weights(sys.argv[1], {"w": torch.zeros(1 << 16)})
except OSError as e:
    print(e.errno, e.filename)
"""


def test_a_failed_weights_write_is_an_oserror_naming_the_file(tmp_path):
    """A real I/O error inside safetensors' writer (a file-size limit: EFBIG) comes out as
    an OSError with the errno and the path, which the CLI turns into one line, exit 2."""
    path = tmp_path / "model.safetensors.next"
    proc = subprocess.run(
        [sys.executable, "-c", WRITE_PAST_A_SIZE_LIMIT, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.stdout.split() == [str(errno.EFBIG), str(path)], proc.stderr
