"""Values that cannot work are refused up front with one line (exit 2), and lines say what is
wrong in words, never raw errno text (issue 25).

Covers: train.device values torch does not know, a seed past 2**63 - 1 for eval (as for
generate and extend), a model.vocab_size smaller than the tokenizer's ids, eval of an
encoder run (it scores next tokens, which an encoder was not trained to predict), a
generation that cannot finish, probe-order's texts after --set, a prompt that is not UTF-8,
and a path through a file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kit import TINY, as_sets, fast_config
from posemb.cli.main import main
from posemb.train import train


def usage_error(capsys, *argv: object) -> str:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, f"exit {code}: {err}"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("posemb: error: "), err
    assert "Traceback" not in err and "Errno" not in err and "unexpected" not in err
    return lines[0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny causal run and a tiny encoder run (model.causal=false)."""
    base = tmp_path_factory.mktemp("bad-values")
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POSEMB_CACHE", str(base / "cache"))
        for name, causal in (("causal", True), ("encoder", False)):
            cfg = fast_config(train__max_steps=2, data__source="stdlib", model__causal=causal)
            train(cfg, base / name)
            out[name] = base / name
    return out


def train_argv(out: Path, *sets: str) -> list[str]:
    settings = as_sets({**TINY, "train.max_steps": 1, "data.source": "synthetic:copy"})
    return ["train", "--preset", "tiny", "--set", *settings, *sets, "--out", str(out)]


@pytest.mark.parametrize("device", ["tpu", "", "cuda:x", "CPU"])
def test_a_device_torch_does_not_know_is_refused_naming_the_setting(capsys, tmp_path, device):
    line = usage_error(capsys, *train_argv(tmp_path / "run", f"train.device={device}"))
    assert f"train.device={device!r}" in line and "auto, cpu, cuda, cuda:N" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("device", ["auto", "cpu"])
def test_the_devices_posemb_trains_on_are_accepted(device):
    assert fast_config(train__device=device).train.device == device


def test_eval_refuses_a_seed_past_the_range_as_generate_and_extend_do(runs, capsys, tmp_path):
    for command in (
        ["eval", runs["causal"], "--lengths", "16", "--out", tmp_path / "e"],
        ["generate", runs["causal"], "--prompt", "a"],
    ):
        line = usage_error(capsys, *command, "--seed", 2**64)
        assert "--seed" in line and "2**63 - 1" in line


def test_a_vocabulary_smaller_than_the_tokenizers_is_refused(capsys, tmp_path):
    line = usage_error(capsys, *train_argv(tmp_path / "run", "model.vocab_size=10"))
    assert "model.vocab_size=10" in line and "256 ids" in line


def test_eval_of_an_encoder_run_says_what_it_cannot_score(runs, capsys, tmp_path):
    line = usage_error(capsys, "eval", runs["encoder"], "--lengths", "16", "--out", tmp_path / "e")
    assert "bidirectional encoder (model.causal=false)" in line and "probe-order" in line
    assert not (tmp_path / "e").exists()


def test_a_generation_that_cannot_finish_is_refused_up_front(runs, capsys):
    line = usage_error(
        capsys, "generate", runs["causal"], "--prompt", "a", "--max-new-tokens", 10**20
    )
    assert "cannot finish" in line and "10,000,000" in line


def test_probe_order_finds_its_texts_after_set(capsys):
    args = ["probe-order", "preset:micro", "--set", "model.causal=false", "ab", "ba"]
    assert main(args) == 0
    assert "A: 'ab'\nB: 'ba'" in capsys.readouterr().out
    line = usage_error(capsys, "probe-order", "preset:micro", "--set", "model.causal=maybe", "ab")
    assert "compares two texts, got 1" in line


def test_a_prompt_that_is_not_utf8_says_so(runs, capsys):
    prompt = b"\xff\xfeab".decode("utf-8", "surrogateescape")  # how Python passes such argv
    line = usage_error(capsys, "generate", runs["causal"], "--prompt", prompt)
    assert "--prompt is not UTF-8 (byte 0xff at character 0)" in line
    assert "surrogates" not in line


@pytest.mark.parametrize("command", ["train", "sweep", "demo"])
def test_a_path_through_a_file_is_said_in_words(capsys, tmp_path, command):
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" / "o"
    args = train_argv(out) if command == "train" else [command, "--out", out]
    line = usage_error(capsys, *args)
    assert str(out) in line and "a part of the path is a file, not a directory" in line
