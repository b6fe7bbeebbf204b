"""Packaging basics: one version (pyproject reads posemb.__version__, `posemb --version` prints
it), the MIT license file, py.typed, and the example configs shipped inside the package."""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import re
import sys
from pathlib import Path

import pytest

import posemb
from posemb.cli.main import main
from posemb.runs.config import read_toml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SHIPPED = ("randomised-positions", "rope-copy", "shakespeare-char", "tiny-learned")


def test_version_has_one_source_and_the_cli_prints_it(capsys):
    project = PYPROJECT["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "posemb.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", posemb.__version__)
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"posemb {posemb.__version__}"
    # the installed metadata was built from the same attribute
    assert importlib.metadata.version("posemb") == posemb.__version__


def test_license_is_mit():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "the posemb authors" in text
    assert PYPROJECT["project"]["license"] == {"text": "MIT"}


def test_package_is_typed():
    assert importlib.resources.files("posemb").joinpath("py.typed").is_file()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["posemb"]


def test_configs_ship_inside_the_package():
    from posemb import configs

    files = importlib.resources.files("posemb.configs")
    assert sorted(p.name for p in files.iterdir() if p.name.endswith(".toml")) == [
        f"{name}.toml" for name in SHIPPED
    ]
    assert configs.names() == list(SHIPPED)
    assert "*.toml" in PYPROJECT["tool"]["setuptools"]["package-data"]["posemb.configs"]


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_config_is_found_by_its_name(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # far from the checkout: only the package can provide it
    by_name = read_toml(name)
    assert by_name == read_toml(f"{name}.toml") == read_toml(ROOT / "configs" / f"{name}.toml")
    assert by_name  # non-empty settings


def test_a_local_file_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny-learned.toml").write_text("[train]\nmax_steps = 7\n")
    assert read_toml("tiny-learned.toml") == {"train.max_steps": 7}


def test_an_unknown_config_lists_the_shipped_names(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--config", "tiny-learnd", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "tiny-learnd" in err and all(name in err for name in SHIPPED)


def test_config_paths_in_the_docs_resolve_from_the_checkout():
    # configs/ at the top is a link to src/posemb/configs: the paths the docs show still work
    texts = [p.read_text(encoding="utf-8") for p in (ROOT / "README.md", ROOT / "BENCHMARKS.md")]
    texts += [p.read_text(encoding="utf-8") for p in (ROOT / "docs").glob("*.md")]
    texts += [p.read_text(encoding="utf-8") for p in (ROOT / "configs").glob("*.toml")]
    mentioned = {m for text in texts for m in re.findall(r"configs/[\w.-]+\.toml", text)}
    assert mentioned
    for path in mentioned:
        assert (ROOT / path).is_file(), path
        assert (ROOT / path).resolve().parent == (ROOT / "src" / "posemb" / "configs").resolve()
