"""Crash safety and exact resume (docs/DESIGN.md, "The run folder" and "Reliability rules").

- a ``kill -9`` at a random step, then ``--resume``, ends with the same weights as a run
  that was never interrupted (CPU, same seed): torch RNG (dropout), data RNG (windows and
  random positions), optimiser moments and the step all come back;
- a crash inside a checkpoint write leaves the previous checkpoint readable (before the
  journal) or is rolled forward on resume (after it), and the run still ends where an
  uninterrupted one does;
- reading a run (``posemb.load``: generate, eval) while it checkpoints never moves or
  deletes the trainer's files;
- Ctrl-C saves and exits 130 naming ``--resume``; a NaN loss, or a NaN gradient under a
  finite loss, stops naming the step and keeps the last good checkpoint byte for byte.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import posemb
from kit import (
    FAST_SETS,
    assert_clean_error,
    assert_same_tensors,
    checkpoint_bytes,
    fast_config,
    one_thread,
    posemb_cmd,
    read_metrics,
    read_step,
    run_posemb,
    run_tensors,
    subprocess_env,
)
from posemb.runs import checkpoint as ckpt
from posemb.runs.checkpoint import complete_pending
from posemb.train import TrainingDiverged, train
from posemb.train import trainer as trainer_mod

N_STEPS = 30
# dropout and random positions make the run depend on every RNG a resume must restore
RESUME_SETS = [
    *FAST_SETS,
    f"train.max_steps={N_STEPS}",
    "train.checkpoint_every=1",
    "model.dropout=0.1",
    "train.positions=random",
    "train.seed=7",
]


def train_args(corpus: Path, out: Path) -> list[str]:
    return [
        "train",
        "--preset",
        "tiny",
        "--data",
        str(corpus),
        "--set",
        *RESUME_SETS,
        "--out",
        str(out),
    ]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Path:
    """The uninterrupted run every interrupted one must reproduce."""
    root = tmp_path_factory.mktemp("reference")
    env = subprocess_env(POSEMB_CACHE=str(root / "cache"))
    proc = run_posemb(*train_args(corpus, root / "run"), env=env)
    assert proc.returncode == 0, proc.stderr
    return root / "run"


def start_training(corpus: Path, run: Path, tmp_path: Path) -> subprocess.Popen:
    log = open(tmp_path / "train.log", "w")  # a file, not a pipe: the child never blocks on it
    return subprocess.Popen(
        posemb_cmd(*train_args(corpus, run)),
        stdout=log,
        stderr=subprocess.STDOUT,
        env=subprocess_env(),
    )


def wait_for_step(proc: subprocess.Popen, run: Path, step: int, timeout: float = 120) -> int:
    """Poll the committed checkpoint until it reaches ``step``; fail if the run ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = read_step(run)
        if seen >= step:
            return seen
        assert proc.poll() is None, f"training exited ({proc.returncode}) before step {step}"
        time.sleep(0.005)
    proc.kill()
    pytest.fail(f"no checkpoint at step {step} within {timeout}s")


def assert_matches_reference(run: Path, reference: Path) -> None:
    assert read_step(run) == N_STEPS
    assert_same_tensors(run_tensors(run), run_tensors(reference))
    assert_same_tensors(
        run_tensors(run, "optimizer.safetensors"), run_tensors(reference, "optimizer.safetensors")
    )
    # metrics.jsonl: every step exactly once, with the reference's losses
    got, want = read_metrics(run), read_metrics(reference)
    assert [m["step"] for m in got] == list(range(1, N_STEPS + 1))
    assert [m["train_loss"] for m in got] == [m["train_loss"] for m in want]
    assert [m.get("val_loss") for m in got] == [m.get("val_loss") for m in want]


@pytest.mark.slow
def test_kill9_at_a_random_step_then_resume_equals_uninterrupted(reference, corpus, tmp_path):
    run = tmp_path / "run"
    target = random.randint(2, 12)
    proc = start_training(corpus, run, tmp_path)
    try:
        wait_for_step(proc, run, target)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "train.log").read_text()
    killed_at = read_step(run)
    assert 2 <= killed_at < N_STEPS, f"killed at step {killed_at} (target {target})"
    posemb.load(run)  # the last complete checkpoint is readable as it is

    proc = run_posemb("train", "--resume", run)
    assert proc.returncode == 0, proc.stderr
    assert f"trained {N_STEPS} steps" in proc.stdout
    assert_matches_reference(run, reference)


def logged_lines(run: Path) -> int:
    """Complete lines in metrics.jsonl (a line may be half-written while we look)."""
    try:
        return (run / "metrics.jsonl").read_text().count("\n")
    except FileNotFoundError:
        return 0


@pytest.mark.slow
def test_kill9_before_the_first_checkpoint_then_resume_equals_uninterrupted(
    reference, corpus, tmp_path
):
    """Killed before any checkpoint: ``--resume`` starts the run from step 0 with its saved
    settings (config.json and the tokenizer) and ends where an uninterrupted run does."""
    run = tmp_path / "run"
    log = open(tmp_path / "train.log", "w")
    proc = subprocess.Popen(  # one checkpoint, at the end: every kill lands before it
        posemb_cmd(*train_args(corpus, run)[:-2], "train.checkpoint_every=1000", "--out", run),
        stdout=log,
        stderr=subprocess.STDOUT,
        env=subprocess_env(),
    )
    try:
        deadline = time.monotonic() + 120
        while logged_lines(run) == 0:
            assert proc.poll() is None, (tmp_path / "train.log").read_text()
            assert time.monotonic() < deadline, "training never logged a step"
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (run / "trainer_state.json").exists(), "killed too late: a checkpoint exists"
    assert (run / "config.json").exists() and logged_lines(run) >= 1

    proc = run_posemb("train", "--resume", run)
    assert proc.returncode == 0, proc.stderr
    assert "training it from step 0" in proc.stderr
    assert_matches_reference(run, reference)


@pytest.mark.slow
def test_sigint_saves_exits_130_and_resume_finishes(reference, corpus, tmp_path):
    run = tmp_path / "run"
    proc = start_training(corpus, run, tmp_path)
    try:
        wait_for_step(proc, run, 3)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    log = (tmp_path / "train.log").read_text()
    assert proc.returncode == 130, log
    assert "Traceback" not in log
    assert f"--resume {run}" in log
    stopped = read_step(run)
    assert 3 <= stopped < N_STEPS
    assert f"interrupted at step {stopped}" in log  # the checkpoint is the step it names
    assert not list(run.glob("*.next")) and not (run / "checkpoint.commit").exists()

    proc = run_posemb("train", "--resume", run)
    assert proc.returncode == 0, proc.stderr
    assert_matches_reference(run, reference)


# -- crashes inside a checkpoint write (in process, deterministic) ---------------------------------
CRASH_STEPS = 4


class Crash(RuntimeError):
    """Stands for the process dying at this point."""


def crash_config():
    return fast_config(
        train__max_steps=CRASH_STEPS,
        train__checkpoint_every=1,
        model__dropout=0.1,
        train__positions="random",
        train__eval_every=2,
    )


def install_crash(where: str, monkeypatch: pytest.MonkeyPatch, run: Path, snapshot: dict) -> None:
    """Make the step-3 checkpoint die at ``where``; ``snapshot`` gets the committed files then."""
    calls = {"n": 0}

    def crash_now():
        snapshot.update(checkpoint_bytes(run))
        raise Crash(where)

    if where in ("model_file", "optimizer_file"):
        real = ckpt.write_weights
        fail_at = (
            5 if where == "model_file" else 6
        )  # two files per checkpoint; step 3's first/second

        def write_weights(path, *args, **kwargs):
            calls["n"] += 1
            if calls["n"] == fail_at:
                real(path, *args, **kwargs)
                Path(path).write_bytes(Path(path).read_bytes()[:100])  # torn mid-write
                crash_now()
            return real(path, *args, **kwargs)

        monkeypatch.setattr(ckpt, "write_weights", write_weights)
    elif where == "journal":
        real_write = ckpt.atomic_write_text

        def atomic_write_text(path, text):
            if Path(path).name == ckpt.JOURNAL:
                calls["n"] += 1
                if calls["n"] == 3:
                    crash_now()
            return real_write(path, text)

        monkeypatch.setattr(ckpt, "atomic_write_text", atomic_write_text)
    elif where == "rename":
        real_replace = os.replace

        def replace(src, dst, *args, **kwargs):
            if str(src).endswith(f"{ckpt.STATE_FILE}.next"):
                calls["n"] += 1
                if calls["n"] == 3:  # model.safetensors already renamed, trainer state not yet
                    crash_now()
            return real_replace(src, dst, *args, **kwargs)

        monkeypatch.setattr(ckpt.os, "replace", replace)
    else:  # pragma: no cover
        raise AssertionError(where)


@pytest.fixture(scope="module")
def crash_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ref = tmp_path_factory.mktemp("crash-reference") / "run"
    with pytest.MonkeyPatch.context() as mp, one_thread():
        mp.setenv("POSEMB_CACHE", str(ref.parent / "cache"))
        train(crash_config(), ref)
    return ref


@pytest.mark.parametrize("where", ["model_file", "optimizer_file", "journal", "rename"])
def test_crash_during_checkpoint_write(where, crash_reference, tmp_path, monkeypatch):
    ref = crash_reference
    run, snapshot = tmp_path / "run", {}
    install_crash(where, monkeypatch, run, snapshot)
    with pytest.raises(Crash):
        train(crash_config(), run)
    monkeypatch.undo()
    assert snapshot, "the crash was not reached"
    # the process died during step 3's checkpoint and left the files as they are now
    left = checkpoint_bytes(run)
    if where == "rename":  # a mixed state on disk: new weights, old trainer state, journal
        with safe_open(str(run / "model.safetensors"), "pt") as f:
            assert f.metadata()["step"] == "3"
        assert read_step(run) == 2 and (run / ckpt.JOURNAL).exists()
    else:
        assert left == snapshot and list(run.glob("*.next"))

    # a reader gets a complete model (model.safetensors is only ever replaced by a rename)
    # and leaves every file as it found it: the trainer may still be writing them
    listing = sorted(p.name for p in run.iterdir())
    model, _ = posemb.load(run)
    assert checkpoint_bytes(run) == left and sorted(p.name for p in run.iterdir()) == listing
    assert_same_tensors(
        {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}, run_tensors(run)
    )

    complete_pending(run)  # what --resume does first
    assert not list(run.glob("*.next")) and not (run / ckpt.JOURNAL).exists()
    if where == "rename":  # the journal was committed: rolled forward, all three files at step 3
        assert read_step(run) == 3
        for name in ("model.safetensors", "optimizer.safetensors"):
            with safe_open(str(run / name), "pt") as f:
                assert f.metadata()["step"] == "3"
    else:  # before the journal: the previous checkpoint (step 2), byte for byte
        assert read_step(run) == 2
        assert checkpoint_bytes(run) == snapshot

    train(None, run, resume=True)  # and the run still ends exactly where it would have
    assert read_step(run) == CRASH_STEPS
    assert_same_tensors(run_tensors(run), run_tensors(ref))
    assert_same_tensors(
        run_tensors(run, "optimizer.safetensors"), run_tensors(ref, "optimizer.safetensors")
    )


@pytest.mark.parametrize("when", ["files_written", "renaming"])
def test_reading_a_run_while_it_checkpoints_leaves_training_alone(
    when, crash_reference, tmp_path, monkeypatch
):
    """``posemb generate``/``eval`` on a run that is training (a common way to watch it):
    the reader lands in the middle of a checkpoint write and must neither delete nor move
    the trainer's files. It gets a complete model: the last or the new checkpoint."""
    run, loaded = tmp_path / "run", []

    def read_concurrently():  # as another process would: the trainer's torch RNG untouched
        with torch.random.fork_rng():
            model, _ = posemb.load(run)
        loaded.append(
            {k: v.clone() for k, v in model.state_dict().items() if k != "lm_head.weight"}
        )

    calls = {"n": 0}
    if when == "files_written":  # all .next files written, journal not yet
        real_write = ckpt.atomic_write_text

        def atomic_write_text(path, text):
            if Path(path).name == ckpt.JOURNAL:
                calls["n"] += 1
                if calls["n"] == 3:
                    read_concurrently()
            return real_write(path, text)

        monkeypatch.setattr(ckpt, "atomic_write_text", atomic_write_text)
    else:  # journal written, model.safetensors renamed, the others not yet
        real_replace = os.replace

        def replace(src, dst, *args, **kwargs):
            if str(src).endswith(f"{ckpt.STATE_FILE}.next"):
                calls["n"] += 1
                if calls["n"] == 3:
                    read_concurrently()
            return real_replace(src, dst, *args, **kwargs)

        monkeypatch.setattr(ckpt.os, "replace", replace)
    committed, real_save = [], trainer_mod.save_checkpoint

    def save_checkpoint(run_dir, *args, **kwargs):
        real_save(run_dir, *args, **kwargs)
        committed.append(read_step(run))

    monkeypatch.setattr(trainer_mod, "save_checkpoint", save_checkpoint)
    train(crash_config(), run)
    monkeypatch.undo()
    assert len(loaded) == 1
    assert committed == [1, 2, 3, 4]  # no checkpoint lost to the reader
    assert read_step(run) == CRASH_STEPS
    assert_same_tensors(run_tensors(run), run_tensors(crash_reference))
    assert_same_tensors(
        run_tensors(run, "optimizer.safetensors"),
        run_tensors(crash_reference, "optimizer.safetensors"),
    )


def test_stray_next_files_without_journal_are_ignored(tmp_path):
    run = tmp_path / "run"
    train(fast_config(train__max_steps=2, train__checkpoint_every=1), run)
    before = checkpoint_bytes(run)
    for name in before:
        (run / f"{name}.next").write_bytes(b"half-written garbage")
    model, _ = posemb.load(run)  # reads the committed checkpoint, touches nothing
    assert checkpoint_bytes(run) == before
    assert_same_tensors(
        {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}, run_tensors(run)
    )
    complete_pending(run)  # no journal: the .next files are dropped, the checkpoint stays
    assert checkpoint_bytes(run) == before and not list(run.glob("*.next"))


# -- NaN ----------------------------------------------------------------------------------------
def test_nan_loss_stops_naming_the_step_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    run = tmp_path / "run"
    saved: list[dict[str, bytes]] = []
    real_save = trainer_mod.save_checkpoint

    def save_checkpoint(run_dir, *args, **kwargs):
        real_save(run_dir, *args, **kwargs)
        saved.append(checkpoint_bytes(Path(run_dir)))

    calls = {"n": 0}
    real_forward = posemb.Transformer.forward

    def forward(self, *args, **kwargs):
        out = real_forward(self, *args, **kwargs)
        if self.training:
            calls["n"] += 1
            if calls["n"] == 3:  # the loss of step 3
                out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(trainer_mod, "save_checkpoint", save_checkpoint)
    monkeypatch.setattr(posemb.Transformer, "forward", forward)
    with pytest.raises(TrainingDiverged, match=r"at step 3\b"):
        train(fast_config(train__max_steps=10, train__checkpoint_every=1), run)
    assert len(saved) == 2  # steps 1 and 2; nothing after the NaN
    assert checkpoint_bytes(run) == saved[-1]
    assert read_step(run) == 2
    assert not list(run.glob("*.next")) and not (run / ckpt.JOURNAL).exists()
    model, _ = posemb.load(run)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_nan_gradient_with_a_finite_loss_never_reaches_a_checkpoint(tmp_path, monkeypatch):
    """A backward pass can overflow while the loss stays finite; the update would turn every
    weight into NaN and the next checkpoint would save them as if they were good."""
    calls = {"n": 0}
    real_forward = posemb.Transformer.forward

    def forward(self, *args, **kwargs):
        out = real_forward(self, *args, **kwargs)
        if self.training:
            calls["n"] += 1
            if calls["n"] == 3:  # value + 0, gradient 0 * inf = NaN
                w = self.wte.weight
                out.loss = out.loss + 0.0 * torch.sqrt(w - w.detach()).sum()
        return out

    monkeypatch.setattr(posemb.Transformer, "forward", forward)
    run = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match=r"step 3\b"):
        train(fast_config(train__max_steps=10, train__checkpoint_every=1), run)
    assert read_step(run) == 2
    model, _ = posemb.load(run)
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.slow
def test_cli_diverging_lr_stops_with_the_step_and_keeps_the_checkpoint(corpus, tmp_path):
    run = tmp_path / "run"
    proc = run_posemb(
        "train",
        "--preset",
        "tiny",
        "--data",
        corpus,
        "--set",
        *FAST_SETS,
        "train.max_steps=20",
        "train.checkpoint_every=1",
        "train.warmup_steps=0",
        "train.lr=1e30",
        "--out",
        run,
    )
    line = assert_clean_error(proc, code=1)
    assert "step 2" in line and "train.lr" in line
    assert read_step(run) == 1  # step 1's checkpoint (loss finite) is the last one written
    assert not list(run.glob("*.next")) and not (run / ckpt.JOURNAL).exists()
    posemb.load(run)
