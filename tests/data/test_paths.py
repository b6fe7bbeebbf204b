"""posemb.data.inside: the one check every file name read from a file goes through; and
regular files only (a FIFO or a device is refused before anything opens it, issue 25)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from posemb.data import DataError, UnsafePathError, inside, open_source
from posemb.files import NotRegularFileError, read_json, tensor_shapes


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "a.safetensors").write_bytes(b"x")
    (tmp_path / "model" / "sub").mkdir()
    (tmp_path / "model" / "sub" / "b.safetensors").write_bytes(b"y")
    (tmp_path / "secret.txt").write_text("secret")
    return tmp_path / "model"


def test_names_inside_the_folder_are_returned_unresolved(folder):
    assert inside(folder, "a.safetensors") == folder / "a.safetensors"
    assert inside(folder, "sub/b.safetensors") == folder / "sub" / "b.safetensors"
    assert inside(folder, "not-there.json") == folder / "not-there.json"  # existence is not checked


@pytest.mark.parametrize(
    "name",
    [
        "/etc/passwd",
        "../secret.txt",
        "sub/../../secret.txt",
        "..",
        "C:/x",
        "C:\\x",
        "..\\secret.txt",
    ],
)
def test_absolute_and_dotdot_names_are_refused_naming_the_file_that_named_them(folder, name):
    with pytest.raises(UnsafePathError) as info:
        inside(folder, name, named_by=folder / "index.json")
    message = str(info.value)
    assert repr(name) in message and "index.json" in message and "\n" not in message


@pytest.mark.parametrize("name", [None, 3, "", ["a"], "a\x00b"])
def test_non_names_are_refused(folder, name):
    with pytest.raises(UnsafePathError, match="not a file name"):
        inside(folder, name, named_by="index.json")


def test_links_leaving_the_folder_are_refused_links_inside_are_followed(folder):
    (folder / "out").symlink_to(folder.parent / "secret.txt")
    (folder / "up").symlink_to(folder.parent)
    (folder / "alias").symlink_to("a.safetensors")
    (folder / "subalias").symlink_to("sub")
    for name in ("out", "up/secret.txt"):
        with pytest.raises(UnsafePathError, match="leads through a link to .*outside .*cp -L"):
            inside(folder, name)
    assert inside(folder, "alias").read_bytes() == b"x"
    assert inside(folder, "subalias/b.safetensors").read_bytes() == b"y"


def test_a_folder_given_through_a_link_is_its_target(tmp_path, folder):
    (tmp_path / "link").symlink_to(folder)
    assert inside(tmp_path / "link", "a.safetensors").read_bytes() == b"x"


def test_a_link_loop_is_refused(folder):
    (folder / "loop").symlink_to("loop")
    with pytest.raises(UnsafePathError):
        inside(folder, "loop")


def test_it_is_a_value_error_so_the_cli_exits_2():
    assert issubclass(UnsafePathError, ValueError)


# -- regular files only: a FIFO or a device is refused before anything opens it -------------------
@pytest.fixture
def fifo_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        os.mkfifo(folder / name)  # opening one for reading would block forever
    return folder


@pytest.mark.parametrize("name", ["config.json", "model.safetensors", "tokenizer.json"])
def test_a_fifo_is_refused_by_the_path_rule(fifo_folder, name):
    with pytest.raises(NotRegularFileError, match=r"is a FIFO \(named pipe\), not a regular file"):
        inside(fifo_folder, name)


def test_a_device_is_refused_by_the_path_rule():
    with pytest.raises(NotRegularFileError, match="is a character device"):
        inside("/dev", "null")
    with pytest.raises(NotRegularFileError, match="is a character device"):
        read_json("/dev/null")


def test_file_readers_refuse_a_fifo_instead_of_blocking(fifo_folder):
    with pytest.raises(NotRegularFileError, match="config.json"):
        read_json(fifo_folder / "config.json")
    with pytest.raises(NotRegularFileError, match="model.safetensors"):
        tensor_shapes(fifo_folder / "model.safetensors")


@pytest.mark.parametrize("spec", ["/dev/null", "FIFO"])
def test_data_that_is_not_a_regular_file_is_named_for_what_it_is(tmp_path, spec):
    if spec == "FIFO":
        spec = str(tmp_path / "fifo.txt")
        os.mkfifo(spec)
    kind = "character device" if spec == "/dev/null" else r"FIFO \(named pipe\)"
    with pytest.raises(DataError, match=rf"is a {kind}, not a text file"):
        open_source(spec)


def test_a_fifo_inside_a_data_folder_is_refused_before_reading(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("some text " * 100)
    os.mkfifo(tmp_path / "data" / "b.txt")
    with pytest.raises(DataError, match=r"b.txt' in data folder .* is a FIFO"):
        open_source(str(tmp_path / "data"))
