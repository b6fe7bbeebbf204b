"""Bad input at the command line and in the Python API: exit 2 with one line naming the
key or file and the fix (CLI), a ValueError/TypeError saying the same (API).

Covers: non-finite float settings, an empty --config, a file where a run folder is
expected, seeds out of range, sizes nobody can allocate, output on a read-only or full
disk, and the Python API's list positions, NaN masks and non-path run folders. Also:
long generations show progress (on a terminal only), and reading a run never writes to
the token cache its config.json names unless that is the user's own cache.
"""

from __future__ import annotations

import errno
import io
import json
from pathlib import Path

import pytest

import posemb
from kit import TINY, as_sets
from posemb.cli.main import main
from posemb.runs import checkpoint as ckpt
from posemb.train import build_config, train

SETTINGS = {**TINY, "train.max_steps": 2, "data.source": "synthetic:copy"}
HUGE = str(10**12)
SEED_TOO_BIG = str(10**23)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bad-input") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POSEMB_CACHE", str(out.parent / "cache"))
        train(build_config("tiny", SETTINGS), out)
    return out


def usage_error(capsys, *argv: object) -> str:
    """Run ``posemb ARGV`` in process; assert exit 2 and one stderr line; return it."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, f"exit {code}: {err}"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("posemb: error: "), err
    assert "Traceback" not in err
    return lines[0]


def train_argv(out: Path, *sets: str) -> list[str]:
    return ["train", "--preset", "tiny", "--set", *as_sets(SETTINGS), *sets, "--out", str(out)]


# -- settings --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "setting, key",
    [
        ("train.lr=inf", "train.lr"),
        ("train.lr=nan", "train.lr"),
        ("train.min_lr=-inf", "train.min_lr"),
        ("train.weight_decay=nan", "train.weight_decay"),
        ("train.grad_clip=inf", "train.grad_clip"),
        ("train.beta2=nan", "train.beta2"),
        ("train.beta1=1.5", "train.beta1"),
        ("data.val_fraction=nan", "data.val_fraction"),
        ("model.init_std=nan", "init_std"),
        ("model.dropout=nan", "dropout"),
    ],
)
def test_non_finite_floats_are_refused_naming_the_key(capsys, tmp_path, setting, key):
    line = usage_error(capsys, *train_argv(tmp_path / "r", setting))
    assert key in line and ("finite" in line or "[0, 1)" in line)
    assert not (tmp_path / "r").exists()


def test_an_empty_config_path_is_an_error(capsys, tmp_path):
    line = usage_error(capsys, "train", "--config", "", "--out", tmp_path / "r")
    assert "--config is empty" in line


@pytest.mark.parametrize(
    "argv",
    [
        ["generate", "{file}", "--prompt", "x"],
        ["eval", "{file}", "--lengths", "8", "--out", "{tmp}/e"],
        ["train", "--resume", "{file}"],
    ],
    ids=["generate", "eval", "resume"],
)
def test_a_file_where_a_run_folder_is_expected_says_it_is_a_file(capsys, tmp_path, argv):
    file = tmp_path / "model.safetensors"
    file.write_bytes(b"not a folder")
    line = usage_error(capsys, *[a.format(file=file, tmp=tmp_path) for a in argv])
    assert "is a file, not a run directory" in line and "does not exist" not in line


@pytest.mark.parametrize("seed", [SEED_TOO_BIG, "-1"])
@pytest.mark.parametrize("command", ["train", "generate", "sweep", "probe-order", "extend"])
def test_seeds_out_of_range_name_the_valid_range(capsys, tmp_path, run, command, seed):
    argv = {
        "train": train_argv(tmp_path / "r", f"train.seed={seed}"),
        "generate": ["generate", run, "--prompt", "x", f"--seed={seed}"],
        "sweep": ["sweep", "--out", tmp_path / "s", f"--seed={seed}"],
        "probe-order": ["probe-order", "preset:micro", "a b", "b a", f"--seed={seed}"],
        "extend": ["extend", run, tmp_path / "x", "--to", "128", "--method", "tile"],
    }[command]
    if command == "extend":
        argv.append(f"--seed={seed}")
    line = usage_error(capsys, *argv)
    assert "seed" in line and "0 to 9223372036854775807 (2**63 - 1)" in line


# -- sizes nobody can allocate ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "setting, key",
    [
        (f"model.max_positions={HUGE}", "model.max_positions"),
        (f"model.d_model={HUGE}", "model.d_model"),
        (f"model.vocab_size={HUGE}", "model.vocab_size"),
        (f"train.batch_size={HUGE}", "train.batch_size"),
    ],
)
def test_sizes_nobody_can_allocate_exit_2_with_the_estimate(capsys, tmp_path, setting, key):
    line = usage_error(capsys, *train_argv(tmp_path / "r", setting))
    assert key in line and "GiB, more than the" in line and "available" in line
    assert not (tmp_path / "r").exists()  # refused before anything was written


def test_extend_to_a_size_nobody_can_allocate(capsys, tmp_path, run):
    line = usage_error(capsys, "extend", run, tmp_path / "x", "--to", HUGE, "--method", "tile")
    assert "GiB" in line and "--to" in line
    assert not (tmp_path / "x").exists()


# -- the user's disk -------------------------------------------------------------------------------
def test_a_read_only_output_exits_2_naming_the_path(capsys, tmp_path, monkeypatch):
    out = tmp_path / "ro" / "run"
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if self == out:
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    line = usage_error(capsys, *train_argv(out))
    assert str(out) in line and "read-only" in line


def test_a_full_disk_exits_2_and_leaves_the_out_reusable(capsys, tmp_path, monkeypatch):
    out = tmp_path / "run"

    def write_weights(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(ckpt, "write_weights", write_weights)
    line = usage_error(capsys, *train_argv(out))
    assert "model.safetensors.next" in line and "no space left" in line
    monkeypatch.undo()
    monkeypatch.setenv("POSEMB_CACHE", str(tmp_path / "posemb-cache"))
    assert main(train_argv(out)) == 0  # the same --out, once there is room


# -- Python API ------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [123, None, 1.5, ["runs/a"]])
def test_load_wants_a_run_folder_path(value):
    with pytest.raises(TypeError, match=r"run folder path \(a str or pathlib.Path"):
        posemb.load(value)


def test_load_of_a_file_says_it_is_a_file(tmp_path):
    file = tmp_path / "model.safetensors"
    file.write_bytes(b"x")
    with pytest.raises(ValueError, match="is a file, not a run directory"):
        posemb.load(file)


# -- long generations show progress ----------------------------------------------------------------
class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_long_generation_shows_progress_on_a_terminal(run, monkeypatch, capsys):
    from posemb.cli.generate import PROGRESS_FROM

    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    n = PROGRESS_FROM + 1
    assert main(["generate", str(run), "--prompt", "ab", "--max-new-tokens", str(n)]) == 0
    shown = terminal.getvalue()
    assert "generate" in shown and f"/{n}" in shown and "tok/s" in shown


def test_generation_is_quiet_when_stderr_is_not_a_terminal(run, capsys):
    assert main(["generate", str(run), "--prompt", "ab", "--max-new-tokens", "300"]) == 0
    assert capsys.readouterr().err == ""


def test_short_generation_shows_no_progress(run, monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert main(["generate", str(run), "--prompt", "ab", "--max-new-tokens", "20"]) == 0
    assert terminal.getvalue() == ""


# -- reading a run writes only to the user's cache -------------------------------------------------
def test_eval_never_writes_to_the_cache_dir_a_run_names(capsys, tmp_path, monkeypatch):
    """A run's config.json may point data.cache_dir anywhere; eval uses the user's cache."""
    text = tmp_path / "corpus.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 400)
    run = tmp_path / "run"
    train(build_config("tiny", {**SETTINGS, "data.source": str(text)}), run)
    config = json.loads((run / "config.json").read_text())
    elsewhere = tmp_path / "elsewhere"
    config["data"]["cache_dir"] = str(elsewhere)
    (run / "config.json").write_text(json.dumps(config))
    user_cache = tmp_path / "user-cache"
    monkeypatch.setenv("POSEMB_CACHE", str(user_cache))
    code = main(["eval", str(run), "--lengths", "16", "--out", str(tmp_path / "eval")])
    assert code == 0, capsys.readouterr().err
    assert not elsewhere.exists()
    assert any(user_cache.rglob("*")), "the user's cache was not used"
    assert f"using {user_cache}" in capsys.readouterr().err
