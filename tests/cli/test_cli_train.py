"""``posemb train`` / ``posemb generate`` at the command line.

Bad input exits 2 with one line on stderr naming the problem and the fix, no traceback
(docs/DESIGN.md, "Reliability rules");
``--help`` shows an example; ``generate`` is reproducible with ``--seed``. Most cases call
``posemb.cli.main.main`` in process (fast); a few run ``python -m posemb`` for real, where
stray warnings or a traceback would show on the true stderr.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kit import TINY
from posemb.cli.main import build_parser, main
from posemb.train import build_config, train


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "run"
    train(
        build_config("tiny", {**TINY, "train.max_steps": 3, "data.source": "synthetic:copy"}), out
    )
    return out


def posemb_exit(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_usage_error(capsys, *argv: str) -> str:
    code, _, err = posemb_exit(capsys, *argv)
    assert code == 2, f"exit {code}: {err}"
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("posemb: error: ")
    return lines[0]


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# -- bad input: exit 2, one line ----------------------------------------------------------------
def test_generate_missing_run_dir(capsys, tmp_path):
    line = assert_usage_error(capsys, "generate", tmp_path / "nope", "--prompt", "hi")
    assert "does not exist" in line and "posemb train" in line


def test_generate_on_a_directory_that_is_not_a_run(capsys, tmp_path):
    line = assert_usage_error(capsys, "generate", tmp_path, "--prompt", "hi")
    assert "config.json" in line


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--max-new-tokens", "abc"], "--max-new-tokens"),
        (["--max-new-tokens", "0"], "--max-new-tokens"),
        (["--temperature", "hot"], "--temperature"),
        (["--temperature", "-1"], "--temperature"),
        (["--top-k", "1.5"], "--top-k"),
        (["--seed", "x"], "--seed"),
    ],
)
def test_generate_bad_numbers(capsys, run, argv, needle):
    line = assert_usage_error(capsys, "generate", run, "--prompt", "ab|", *argv)
    assert needle in line


def test_generate_without_prompt(capsys, run):
    assert "--prompt" in assert_usage_error(capsys, "generate", run)


@pytest.mark.parametrize(
    "content, needle",
    [
        (b"[train\nmax_steps = 3\n", "not valid TOML"),
        (b"\xff\xfe[train]\n", "config.toml"),  # not UTF-8: the message names the file
        (b"[trian]\nmax_steps = 3\n", "'train'"),
        (b"[train]\nmax_step = 3\n", "max_steps"),
        (b"[train]\nmax_steps = 'many'\n", "max_steps"),
        (b"preset = 'tinyy'\n", "'tiny'"),
    ],
)
def test_invalid_toml_config(capsys, tmp_path, content, needle):
    cfg = write(tmp_path / "config.toml", content)
    line = assert_usage_error(capsys, "train", "--config", cfg, "--out", tmp_path / "run")
    assert needle in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("path, needle", [("missing.toml", "not found"), (".", "is a directory")])
def test_unreadable_toml_config(capsys, tmp_path, path, needle):
    line = assert_usage_error(
        capsys, "train", "--config", tmp_path / path, "--out", tmp_path / "run"
    )
    assert "config file" in line and needle in line


@pytest.mark.parametrize(
    "argv, needles",
    [
        (["--set", "model.position=rotary"], ["'rope'"]),
        (["--preset", "tinyy"], ["'tiny'"]),
        (["--set", "train.max_step=3"], ["'train.max_steps'"]),
        (["--set", "trian.max_steps=3"], ["'train.max_steps'"]),
        (["--set", "train.max_steps=abc"], ["train.max_steps", "'abc'"]),
        (["--set", "train.max_steps=0"], ["train.max_steps"]),
        (["--set", "train.positions=randomized"], ["'random'"]),
        (["--set", "train.parallel=fdsp"], ["train.parallel", "'fsdp'"]),
        (["--set", "model.n_head=3"], ["n_head"]),
        (["--set", "train.max_steps"], ["key=value"]),
        (["--data", "synthetic:cpy"], ["'copy'"]),
        (["--data", "no/such/corpus.txt"], ["no/such/corpus.txt"]),
    ],
)
def test_bad_settings(capsys, tmp_path, argv, needles):
    line = assert_usage_error(capsys, "train", "--preset", "tiny", *argv, "--out", tmp_path / "run")
    for needle in needles:
        assert needle in line


def test_existing_out_without_resume(capsys, run):
    line = assert_usage_error(capsys, "train", "--preset", "tiny", "--out", run)
    assert "--resume" in line


def test_out_is_required_and_resume_excludes_out(capsys, run, tmp_path):
    assert "--out" in assert_usage_error(capsys, "train", "--preset", "tiny")
    assert "--resume" in assert_usage_error(
        capsys, "train", "--resume", run, "--out", tmp_path / "x"
    )


def test_resume_of_a_missing_run(capsys, tmp_path):
    assert "does not exist" in assert_usage_error(capsys, "train", "--resume", tmp_path / "nope")


def test_unknown_subcommand_and_option(capsys):
    assert "gnerate" in assert_usage_error(capsys, "gnerate")
    assert "--frobnicate" in assert_usage_error(capsys, "train", "--frobnicate")


def _python_m_posemb(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "posemb", *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["generate", "{tmp}/nope", "--prompt", "hi"],
        ["train", "--preset", "tiny", "--set", "model.position=rotary", "--out", "{tmp}/run"],
        ["generate", "{run}", "--prompt", "ab|", "--max-new-tokens", "abc"],
    ],
)
def test_bad_input_in_a_real_process(run, tmp_path, argv):
    proc = _python_m_posemb(*(a.format(tmp=tmp_path, run=run) for a in argv))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


# -- help ---------------------------------------------------------------------------------------
def test_help_shows_an_example(capsys):
    code, out, _ = posemb_exit(capsys, "--help")
    assert code == 0 and "Example:" in out and "posemb train" in out


@pytest.mark.parametrize(
    "command", sorted(next(a for a in build_parser()._actions if a.dest == "command").choices)
)
def test_each_subcommand_help_shows_an_example(capsys, command):
    code, out, _ = posemb_exit(capsys, command, "--help")
    assert code == 0
    assert "Example:" in out and f"posemb {command}" in out.split("Example:", 1)[1]


@pytest.mark.parametrize(
    "command", sorted(next(a for a in build_parser()._actions if a.dest == "command").choices)
)
def test_each_option_with_a_default_shows_it_in_help(command):
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    shown = 0
    for action in sub._actions:
        default = action.default
        if default is None or default is False or default == [] or default == "==SUPPRESS==":
            continue
        text = sub._get_formatter()._expand_help(action)  # the help as --help prints it
        assert "default" in text and str(default) in text, (action.option_strings, text)
        shown += 1
    assert shown or command in ("train", "analyze", "export-hf", "import-hf")


def test_help_in_a_real_process():
    proc = _python_m_posemb("train", "--help")
    assert proc.returncode == 0 and "Example:" in proc.stdout and not proc.stderr.strip()


# -- generate ----------------------------------------------------------------------------------
def test_generate_is_reproducible_with_seed(capsys, run):
    def sample(seed: int) -> str:
        code, out, err = posemb_exit(
            capsys,
            "generate",
            run,
            "--prompt",
            "ab|",
            "--max-new-tokens",
            "24",
            "--temperature",
            "1",
            "--seed",
            str(seed),
        )
        assert code == 0, err
        return out

    first = sample(1)
    assert first.startswith("ab|") and len(first) > len("ab|\n")
    assert sample(1) == first
    assert sample(2) != first


def test_generate_greedy_ignores_seed(capsys, run):
    outs = {
        posemb_exit(
            capsys,
            "generate",
            run,
            "--prompt",
            "ab|",
            "--max-new-tokens",
            "8",
            "--temperature",
            "0",
            "--seed",
            str(s),
        )[1]
        for s in (1, 2)
    }
    assert len(outs) == 1


# -- review: data and run-directory errors that used to be unclear or silent --------------------
def _text_sets(**extra: str) -> list[str]:
    sets = {
        "model.n_layer": "1",
        "model.d_model": "32",
        "model.n_head": "2",
        "model.max_positions": "64",
        "train.seq_len": "32",
        "train.batch_size": "4",
        "train.progress": "false",
        "train.eval_batches": "2",
        "train.max_steps": "2",
        **extra,
    }
    return ["--set", *(f"{k}={v}" for k, v in sets.items())]


def test_out_that_is_a_file(capsys, tmp_path):
    target = write(tmp_path / "notes.txt", b"keep me")
    line = assert_usage_error(capsys, "train", "--preset", "tiny", *_text_sets(), "--out", target)
    assert "is a file" in line and "Errno" not in line
    assert target.read_bytes() == b"keep me"


@pytest.mark.parametrize(
    "data, needle",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 40, "binary file"),
        ("caf\u00e9 na\u00efve text\n".encode("latin-1") * 40, "not UTF-8"),
    ],
)
def test_binary_or_non_utf8_data_file(capsys, tmp_path, data, needle):
    corpus = write(tmp_path / "corpus.txt", data)
    line = assert_usage_error(
        capsys,
        "train",
        "--preset",
        "tiny",
        "--data",
        corpus,
        *_text_sets(),
        "--out",
        tmp_path / "run",
    )
    assert needle in line and "corpus.txt" in line


@pytest.mark.parametrize(
    "extra, needles",
    [
        ({"data.val_fraction": "0"}, ["validation split", "data.val_fraction"]),
        ({"train.seq_len": "60"}, ["validation split", "44 tokens", "train.seq_len"]),
    ],
)
def test_validation_split_too_short_names_the_split(capsys, tmp_path, extra, needles):
    # the message read "the corpus has 0 tokens" for a corpus of hundreds of tokens
    corpus = write(tmp_path / "corpus.txt", b"hello world, " * 33 + b"the end\n")  # 437 bytes
    line = assert_usage_error(
        capsys,
        "train",
        "--preset",
        "tiny",
        "--data",
        corpus,
        *_text_sets(**extra),
        "--out",
        tmp_path / "run",
    )
    for needle in needles:
        assert needle in line


def test_char_vocabulary_covers_characters_only_in_validation_text(capsys, tmp_path):
    # a character only in the last 10% of the file made the run fail at its first evaluation
    corpus = write(tmp_path / "corpus.txt", b"ab " * 300 + b"XYZ!\n")
    code, out, err = posemb_exit(
        capsys,
        "train",
        "--preset",
        "tiny",
        "--data",
        corpus,
        *_text_sets(**{"data.tokenizer": "char"}),
        "--out",
        tmp_path / "run",
    )
    assert code == 0, err
    import posemb

    tok = posemb.load(tmp_path / "run")[1]
    assert tok.decode(tok.encode("XYZ!")) == "XYZ!"


def test_resume_of_a_finished_run_says_so(capsys, run):
    code, out, err = posemb_exit(capsys, "train", "--resume", run)
    assert code == 0, err
    assert "nothing to train" in out and "train.max_steps=" in out and "nan" not in out
