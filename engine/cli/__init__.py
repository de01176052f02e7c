"""The ``lakescore`` command line. Exit codes: 0 ok, 1 quality check failed, 2 bad input or
usage, 3 execution failure (see DESIGN.md).

Each command lives in a module of this package with a ``register(subparsers)`` function
that adds its parser and sets ``handler``; a new command is a new module named in
``_COMMAND_MODULES``. Commands import their heavy dependencies inside the handler, so
``lakescore --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from cluster.huge_pages import disable_transparent_huge_pages
from engine.cli import (
    assess,
    bench,
    evaluate,
    jobs,
    model_commands,
    models,
    quality_commands,
    report,
)
from engine.cli._logging import LOG_FORMATS, setup_logging
from engine.errors import ExecutionError, LakescoreError

_COMMAND_MODULES = (jobs, model_commands, quality_commands, report, assess, models, evaluate, bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lakescore", description="Batch scoring of tree and linear models over a data lake."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    log_format = {
        "choices": LOG_FORMATS,
        "help": "log lines on stderr: text (default) or json (one object per event)",
    }
    parser.add_argument("--log-format", dest="log_format", default="text", **log_format)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _COMMAND_MODULES:
        module.register(sub)
    # Also accepted after the command; SUPPRESS keeps the global value when it is not.
    for command in sub.choices.values():
        command.add_argument(
            "--log-format", dest="log_format", default=argparse.SUPPRESS, **log_format
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # A CLI run is a fresh process: huge pages cost more there than they save.
    disable_transparent_huge_pages()
    args = build_parser().parse_args(argv)
    setup_logging(log_format=args.log_format, verbose=args.verbose, quiet=args.quiet)
    try:
        return args.handler(args)
    except LakescoreError as exc:
        _report_error(args, _one_line(exc), exc.exit_code)
        return exc.exit_code
    except KeyboardInterrupt:
        message = "interrupted; run the same command again to resume"
        _report_error(args, message, ExecutionError.exit_code)
        return ExecutionError.exit_code


def _report_error(args: argparse.Namespace, message: str, exit_code: int) -> None:
    """The one error line: plain text, or in JSON mode an event like every other line."""
    if args.log_format == "json":
        logging.getLogger("lakescore.cli").error(message, extra={"exit_code": exit_code})
    else:
        print(f"lakescore: error: {message}", file=sys.stderr)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
