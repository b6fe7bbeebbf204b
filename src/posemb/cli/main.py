"""``posemb``: the command line. One module per subcommand; this file wires them up.

Exit codes: 0 success; 2 bad input or usage (one line on stderr naming the problem and
the fix, no traceback unless ``--debug``); 1 an unexpected failure.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback

from .. import __version__
from . import (
    analyze,
    demo,
    eval_cmd,
    export_hf,
    extend,
    generate,
    import_hf,
    probe_order,
    sweep,
    train,
)
from .common import HelpFormatter, UsageError, path_error

# Every subcommand, in the order --help lists them. Each module has HELP (the one-line
# summary), EXAMPLE, add_arguments(parser) and run(args); its docstring is its --help text.
COMMANDS = {
    "demo": demo,
    "train": train,
    "generate": generate,
    "probe-order": probe_order,
    "eval": eval_cmd,
    "sweep": sweep,
    "analyze": analyze,
    "extend": extend,
    "export-hf": export_hf,
    "import-hf": import_hf,
}

__all__ = ["COMMANDS", "UsageError", "build_parser", "main"]


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own errors: one line, exit 2
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="posemb",
        description="Learnable absolute positional embeddings and the positional family "
        "around them.",
        epilog="Example: posemb train --preset tiny --data stdlib --set train.max_steps=200 "
        "--out runs/a",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--version", action="version", version=f"posemb {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, module in COMMANDS.items():
        p = sub.add_parser(
            name,
            help=module.HELP,
            description=module.__doc__,
            epilog=f"Example: {module.EXAMPLE}",
            formatter_class=HelpFormatter,
        )
        p.add_argument("--debug", action="store_true", help="show tracebacks")
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def user_errors() -> tuple[type[BaseException], ...]:
    from ..positional import PositionOutOfRangeError

    return (
        UsageError,
        ValueError,
        FileNotFoundError,
        NotADirectoryError,
        IsADirectoryError,
        PermissionError,
        FileExistsError,
        PositionOutOfRangeError,
        ImportError,
    )


def main(argv: list[str] | None = None) -> int:
    from ..provenance import set_command

    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    set_command(["posemb", *argv])  # what results and configs record as their command
    _show_notices()
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("posemb: interrupted", file=sys.stderr)
        return 130
    except SystemExit as e:  # --help
        return int(e.code or 0)
    except Exception as e:  # noqa: BLE001 - bad input: exit 2; else the last resort, exit 1
        if debug:
            traceback.print_exc()
        line = user_error_line(e)
        if line is not None:
            print(f"posemb: error: {line}", file=sys.stderr)
            return 2
        print(
            f"posemb: unexpected {type(e).__name__}: {_one_line(e)} (rerun with --debug for the "
            "traceback)",
            file=sys.stderr,
        )
        return 1


def user_error_line(e: BaseException) -> str | None:
    """The one line of an error that is bad input (exit 2), or None for a posemb failure.

    An OSError about a path the user gave (read-only, full disk, a part that is a file, ...)
    names the path and the fix instead of the raw ``[Errno N]`` text."""
    if isinstance(e, OSError) and (line := path_error(e)) is not None:
        return line
    if isinstance(e, user_errors()):
        return _one_line(e)
    return None


class _Notices(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a message comes (not when it was made), and
    only when it is a terminal: like the progress bars, notices are for a person watching."""

    def emit(self, record: logging.LogRecord) -> None:
        if sys.stderr.isatty() or record.levelno >= logging.WARNING:
            super().emit(record)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _show_notices() -> None:
    """The library's progress notices (``posemb.*`` loggers at INFO, e.g. "tokenising the
    validation split ...") go to stderr as ``posemb: ...`` lines."""
    logger = logging.getLogger("posemb")
    if not any(isinstance(h, _Notices) for h in logger.handlers):
        handler = _Notices()
        handler.setFormatter(logging.Formatter("posemb: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _one_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    if isinstance(e, KeyError):
        text = f"missing {text}"
    return " ".join(text.split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
