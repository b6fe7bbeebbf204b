"""Helpers shared by subcommands: the usage error, the help layout, argument types."""

from __future__ import annotations

import argparse
import errno
from pathlib import Path
from typing import Any

import torch

from ..positional.checks import check_finite, check_positive_int


class UsageError(ValueError):
    """Bad input from the user: exit code 2."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """``--help`` with descriptions as written and each option's default shown.

    ``(default: X)`` is added to an option's help unless the help already names its default
    or the option has none (None, False, an empty list).
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text, default = action.help or "", action.default
        if "default" in text or default is None or default is False or default == []:
            return action.help
        if default == argparse.SUPPRESS:  # --help, --version
            return action.help
        return f"{text} (default: %(default)s)".strip()


def _argument(text: str, parse, kind: str, check, *bounds) -> Any:
    """``text`` parsed by ``parse`` (else "expected ``kind``"), then checked by one of
    :mod:`posemb.positional.checks`' checks (the one home of what a valid number is);
    argparse puts the option's name in front of either message."""
    try:
        value = parse(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
    try:
        return check("the value", value, *bounds)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def positive_int(text: str) -> int:
    return _argument(text, int, "a positive integer", check_positive_int)


def positive_float(text: str) -> float:
    value = _argument(text, float, "a number", check_finite, 0.0)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    return _argument(text, float, "a number", check_finite, 0.0)


def int_list(text: str) -> list[int]:
    """``"128,256,512"`` -> ``[128, 256, 512]``."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers like 128,256, got {text!r}"
        ) from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers like 128,256, got {text!r}")
    return values


def length_list(text: str) -> list[int]:
    """Evaluation lengths: ``int_list`` with every length >= 2 (one context token, one target)."""
    values = int_list(text)
    if any(v < 2 for v in values):
        raise argparse.ArgumentTypeError(
            "evaluation lengths need at least 2 tokens (one of context, one predicted), got "
            f"{text!r}"
        )
    return values


def existing_run(text: str) -> Path:
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(
            f"run directory {text!r} does not exist (train one with `posemb train --out DIR`)"
        )
    if not path.is_dir():
        raise argparse.ArgumentTypeError(
            f"{text!r} is a file, not a run directory; pass the folder a run was trained into "
            "(posemb train --out DIR)"
        )
    return path


def seed_int(text: str) -> int:
    """A ``--seed``: an integer in the range every seeded generator takes."""
    from ..runs.config import check_seed

    return _argument(text, int, "an integer seed", check_seed)


def utf8_text(text: str, what: str = "--prompt") -> str:
    """``text`` as given on the command line, refused when its bytes were not UTF-8 (Python
    keeps such bytes as lone surrogates, which no tokenizer can encode)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        bad = text[e.start].encode("utf-8", "surrogateescape").hex()
        raise UsageError(
            f"{what} is not UTF-8 (byte 0x{bad} at character {e.start}): pass the text in UTF-8 "
            "(e.g. convert it with iconv -t UTF-8)"
        ) from None
    return text


# OSErrors about the user's own paths: bad input (exit 2), not a posemb failure
_PATH_PROBLEMS = {
    errno.EROFS: "the file system is read-only: choose a writable location",
    errno.ENOSPC: "no space left on the device: free some space or choose another disk",
    errno.EDQUOT: "the disk quota is exceeded: free some space or choose another disk",
    errno.EFBIG: "the file is larger than this file system or your limits allow",
    errno.EACCES: "permission denied: choose a location you may write to",
    errno.EPERM: "operation not permitted: choose a location you may write to",
    errno.EEXIST: "it already exists: choose another path or remove it",
    errno.ENOTDIR: "a part of the path is a file, not a directory: fix the path",
    errno.EISDIR: "it is a directory, where a file is expected: fix the path",
    errno.ENAMETOOLONG: "the name is too long: choose a shorter path",
    errno.ELOOP: "too many symbolic links: fix the path",
    errno.ENOENT: "no such file or directory: check the path",
    errno.EIO: "an input/output error on the device: check the disk or choose another one",
}


def path_error(e: OSError) -> str | None:
    """One line naming the path and the problem, for an OSError about a user's path."""
    problem = _PATH_PROBLEMS.get(e.errno)
    if problem is None or e.filename is None:
        return None
    return f"cannot use {str(e.filename)!r}: {problem}"


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
