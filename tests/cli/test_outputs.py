"""One discipline for every command's output (issue 25, docs/DESIGN.md "Reliability rules").

eval, analyze, extend, export-hf and import-hf build their destination in a hidden folder
beside it and publish it by one rename that never replaces what another writer published
meanwhile: of two writers to one destination one is refused ("already exists"), an existing
destination is replaced only with --force, and a failure, a full or read-only disk or
Ctrl-C leaves nothing visible (a kill leaves the hidden folder, which the next command
writing there removes). sweep and demo train in a work folder held by one writer; a failed
start removes what it wrote. A disk error exits 2 with one line naming the path and the fix.
"""

from __future__ import annotations

import errno
import importlib
import os
import subprocess
from pathlib import Path

import pytest

from kit import TINY, posemb_cmd, subprocess_env, tiny_quick_budget
from posemb.cli.main import main
from posemb.files import output_dir
from posemb.runs.lock import RunLock
from posemb.train import build_config, train


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> tuple[Path, Path]:
    """A tiny trained run and the Hugging Face folder export-hf makes of it."""
    base = tmp_path_factory.mktemp("outputs")
    run = base / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POSEMB_CACHE", str(base / "cache"))
        train(build_config("tiny", {**TINY, "train.max_steps": 2, "data.source": str(corpus)}), run)
    assert main(["export-hf", str(run), str(base / "hf")]) == 0
    return run, base / "hf"


def argv(name: str, built: tuple[Path, Path], dst: Path) -> list[str]:
    run, hf = map(str, built)
    return {
        "eval": ["eval", run, "--lengths", "16", "--tokens", "64", "--out", str(dst)],
        "analyze": ["analyze", run, "--out", str(dst)],
        "extend": ["extend", run, str(dst), "--to", "128", "--method", "tile"],
        "export-hf": ["export-hf", run, str(dst)],
        "import-hf": ["import-hf", hf, str(dst)],
    }[name]


COMMANDS = ("eval", "analyze", "extend", "export-hf", "import-hf")


def usage_error(capsys, args: list[str]) -> str:
    """``posemb ARGS`` in process: exit 2, one stderr line, no traceback; returns the line."""
    capsys.readouterr()
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, f"exit {code}: {err}"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("posemb: error: "), err
    return lines[0]


def names(folder: Path) -> list[str]:
    """What ``folder`` holds (hidden entries included), less the test's own token cache."""
    return sorted(p.name for p in folder.iterdir() if p.name != "posemb-cache")


# -- disk errors: exit 2, one line naming the destination, nothing left ------------------------
@pytest.mark.parametrize("name", COMMANDS)
def test_a_full_disk_exits_2_naming_the_destination_and_leaves_nothing(
    built, tmp_path, capsys, monkeypatch, name
):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")  # as a write to a full disk

    monkeypatch.setattr(os, "fsync", full)
    dst = tmp_path / "out"
    line = usage_error(capsys, argv(name, built, dst))
    assert repr(str(dst)) in line and "no space left on the device" in line, line
    assert "Errno" not in line
    assert names(tmp_path) == []  # neither a half-written DST nor its hidden folder


@pytest.mark.parametrize("name", [*COMMANDS, "sweep", "demo"])
def test_a_read_only_disk_exits_2_naming_the_destination(
    built, tmp_path, capsys, monkeypatch, name
):
    real_mkdir = os.mkdir
    read_only = tmp_path / "ro"
    read_only.mkdir()

    def mkdir(path, *args, **kwargs):
        if Path(path).parent == read_only:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    dst = read_only / "out"
    if name in ("sweep", "demo"):
        line = usage_error(capsys, [name, "--out", str(dst)])
    else:
        line = usage_error(capsys, argv(name, built, dst))
    assert repr(str(dst)) in line and "read-only" in line, line
    assert names(read_only) == []


def test_a_full_disk_during_a_sweep_exits_2_and_leaves_nothing(
    tmp_path, corpus, capsys, monkeypatch
):
    tiny_quick_budget(monkeypatch, train_len=16, tokens=120, settings={"train.max_steps": 2})

    out = tmp_path / "sweep"
    real_fsync = os.fsync

    def full(fd):  # the disk holding the sweep's folder is full (the token cache is not)
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(out)):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to tell which file is written")
    monkeypatch.setattr(os, "fsync", full)
    args = ["sweep", "--schemes", "learned", "--eval-lens", "16", "--data", str(corpus)]
    line = usage_error(capsys, [*args, "--out", str(out)])
    assert "no space left on the device" in line and str(out) in line, line
    assert not out.exists()  # nothing trained: plan.json and runs/ removed with the folder


# -- two writers: never both succeed -----------------------------------------------------------
@pytest.mark.parametrize("force", [False, True])
def test_of_two_writers_to_one_folder_the_second_to_finish_is_refused(tmp_path, force):
    dst = tmp_path / "out"
    if force:
        dst.mkdir()
        (dst / "old").write_text("old")
    with pytest.raises(FileExistsError, match="another process wrote it while this one ran"):
        with output_dir(dst, force=force) as slow:
            (slow / "slow").write_text("slow")
            with output_dir(dst, force=force) as fast:  # starts later, finishes first
                (fast / "fast").write_text("fast")
    assert names(dst) == ["fast"]  # the first to finish stays whole; nothing was lost silently
    assert names(tmp_path) == ["out"]


def test_two_extends_racing_to_one_new_dst_never_both_report_success(built, tmp_path):
    run = str(built[0])
    procs = [
        subprocess.Popen(
            posemb_cmd("extend", run, tmp_path / "dst", "--to", "128", "--method", method),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=subprocess_env(),
        )
        for method in ("tile", "random")
    ]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    assert "already exists" in refused and "Traceback" not in refused
    assert names(tmp_path) == ["dst"]


@pytest.mark.parametrize("name", ["eval", "analyze", "import-hf"])
def test_an_existing_output_is_refused_without_force_and_replaced_with_it(
    built, tmp_path, capsys, name
):
    dst = tmp_path / "out"
    assert main(argv(name, built, dst)) == 0
    (dst / "stale").write_text("from an earlier run")
    line = usage_error(capsys, argv(name, built, dst))
    assert "already exists" in line and "--force" in line
    assert main([*argv(name, built, dst), "--force"]) == 0
    assert not (dst / "stale").exists()
    assert names(tmp_path) == ["out"]


# -- results never go into a run ---------------------------------------------------------------
@pytest.mark.parametrize("name", ["eval", "analyze"])
def test_results_are_never_written_into_or_over_a_run(built, tmp_path, capsys, name):
    run = built[0]
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    for args in (argv(name, built, run), [*argv(name, built, run), "--force"]):
        line = usage_error(capsys, args)
        assert "is a run or model folder" in line
    line = usage_error(capsys, [*argv(name, built, run.parent), "--force"])
    assert "overlaps the source" in line
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


# -- interrupted and killed commands -----------------------------------------------------------
def test_ctrl_c_during_analyze_leaves_nothing_visible(built, tmp_path, monkeypatch):
    analyze_module = importlib.import_module("posemb.analysis.analyze")
    real = analyze_module.plot_analysis

    def interrupted(a, out):
        real(a, out)  # the PNGs are written, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(analyze_module, "plot_analysis", interrupted)
    assert main(argv("analyze", built, tmp_path / "out")) == 130
    assert names(tmp_path) == []


@pytest.mark.parametrize("name", ["eval", "analyze"])
def test_a_killed_commands_hidden_folder_is_removed_by_the_next_one(built, tmp_path, name):
    leftover = tmp_path / ".out.abcdefgh.tmp"  # what kill -9 left (no process holds its lock)
    leftover.mkdir()
    (leftover / ".results.json.a1b2c3d4.tmp").write_bytes(b"")  # an interrupted atomic write
    (leftover / "cosine.png").write_bytes(b"half")
    assert main(argv(name, built, tmp_path / "out")) == 0
    assert names(tmp_path) == ["out"]
    assert not any(p.name.endswith(".tmp") for p in (tmp_path / "out").iterdir())


# -- work folders: sweep and demo --------------------------------------------------------------
@pytest.mark.parametrize("command", ["sweep", "demo"])
def test_a_sweep_or_demo_on_empty_data_leaves_nothing(tmp_path, capsys, monkeypatch, command):
    tiny_quick_budget(monkeypatch, train_len=16, tokens=120, settings={"train.max_steps": 2})
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    out = tmp_path / "out"
    args = [command, "--data", str(empty), "--out", str(out)]
    if command == "sweep":
        args += ["--schemes", "learned", "--eval-lens", "16"]
    usage_error(capsys, args)
    assert names(tmp_path) == ["empty.txt"]  # no plan.json, no folder
    capsys.readouterr()


@pytest.mark.parametrize("command", ["sweep", "demo"])
def test_a_second_writer_to_a_sweep_or_demo_folder_is_refused(tmp_path, capsys, command):
    out = tmp_path / "out"
    out.mkdir()
    if command == "demo":
        (out / "posemb-demo.txt").write_text("written by `posemb demo`")
    with RunLock(out):  # another process is writing it (a lock is per open file)
        line = usage_error(capsys, [command, "--out", str(out), "--data", "stdlib"])
    assert "is being written by" in line
    assert out.is_dir()  # the other writer's folder is left alone
