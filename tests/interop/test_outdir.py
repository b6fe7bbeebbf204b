"""Output folders of the interop commands: crash leftovers removed on a rerun (never a live
one), nothing written beside DST, and weights files with a normal file mode."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from posemb.cli.main import main
from posemb.interop.outdir import leftover_pattern, output_dir

fcntl = pytest.importorskip("fcntl")

# Fills DST's temporary folder, prints its path, then waits (holding the lock) until killed.
FILLER = """
import sys
from pathlib import Path
from posemb.interop.outdir import output_dir
with output_dir(sys.argv[1], force=True) as out:
    (out / "half-written").write_text("x")
    print(out, flush=True)
    sys.stdin.read()
"""


def hidden(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_a_rerun_removes_a_killed_commands_leftovers_but_never_a_live_ones(tmp_path, run_dir):
    dst = tmp_path / "hf"
    stale = tmp_path / ".hf.abcdefgh.tmp"  # what a killed export left (no process holds it)
    (stale / "sub").mkdir(parents=True)
    (tmp_path / ".hf.abcdefgh.tmp.old").mkdir()  # a DST moved aside by a killed --force
    others = [tmp_path / ".hf.b.abcdefgh.tmp", tmp_path / ".hfx.abcdefgh.tmp"]  # other DSTs'
    for other in others:
        other.mkdir()
    live = subprocess.Popen(
        [sys.executable, "-c", FILLER, str(dst)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        filling = Path(live.stdout.readline().strip())
        assert filling.parent == tmp_path and leftover_pattern("hf").fullmatch(filling.name)

        assert main(["export-hf", str(run_dir), str(dst)]) == 0
        assert not stale.exists() and not (tmp_path / ".hf.abcdefgh.tmp.old").exists()
        assert (filling / "half-written").is_file(), "a live process's folder was removed"
        assert all(other.is_dir() for other in others)
    finally:
        live.kill()  # SIGKILL: no cleanup runs, the folder stays, its lock goes
        live.wait()
    assert (filling / "half-written").is_file()
    assert main(["export-hf", str(run_dir), str(dst), "--force"]) == 0
    assert not filling.exists()
    assert hidden(tmp_path) == sorted(other.name for other in others)


def test_a_folder_locked_by_another_open_file_is_kept(tmp_path):
    # flock locks belong to an open file description: a second open in this process is
    # refused as another process would be
    held = tmp_path / ".out.zzzzzzzz.tmp"
    held.mkdir()
    fd = os.open(held, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with output_dir(tmp_path / "out", force=False) as out:
            (out / "f").write_text("done")
        assert held.is_dir()
    finally:
        os.close(fd)
    with output_dir(tmp_path / "out", force=True) as out:
        (out / "f").write_text("again")
    assert not held.exists() and (tmp_path / "out" / "f").read_text() == "again"


def test_a_failed_command_leaves_nothing_beside_dst(tmp_path):
    with pytest.raises(RuntimeError), output_dir(tmp_path / "out", force=False) as out:
        (out / "f").write_text("x")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_force_replaces_a_link_not_what_it_points_to(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "keep").write_text("keep")
    (tmp_path / "out").symlink_to(tmp_path / "elsewhere")
    with output_dir(tmp_path / "out", force=True) as out:
        (out / "f").write_text("new")
    assert not (tmp_path / "out").is_symlink() and (tmp_path / "out" / "f").read_text() == "new"
    assert (tmp_path / "elsewhere" / "keep").read_text() == "keep"


@pytest.mark.parametrize(
    ("umask", "mode"), [(0o022, 0o644), (0o027, 0o640)], ids=["umask022", "umask027"]
)
def test_weights_files_get_a_normal_file_mode(tmp_path, run_dir, make_gpt2_dir, umask, mode):
    # safetensors' save_file alone makes 0600: unreadable to the group, unlike every other
    # file; a copied file gets a new file's mode too
    src = make_gpt2_dir(tmp_path / "src", shards=2)  # its shards are 0600 (save_file)
    (src / "README.md").write_text("card")
    old = os.umask(umask)
    try:
        assert main(["export-hf", str(run_dir), str(tmp_path / "hf")]) == 0
        args = ["extend", str(src), str(tmp_path / "ext"), "--to", "128", "--method", "tile"]
        assert main(args) == 0
    finally:
        os.umask(old)
    written = [tmp_path / "hf" / "model.safetensors", tmp_path / "hf" / "config.json"]
    written += [tmp_path / "ext" / "model.safetensors.index.json"]
    written += sorted((tmp_path / "ext").glob("*.safetensors"))  # one rewritten, one copied
    written += [tmp_path / "ext" / "README.md"]
    assert len(written) == 6
    assert {w.name: oct(stat.S_IMODE(w.stat().st_mode)) for w in written} == {
        w.name: oct(mode) for w in written
    }
