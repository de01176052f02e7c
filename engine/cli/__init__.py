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

from engine.cli import jobs, model_commands, quality_commands
from engine.errors import ExecutionError, LakescoreError

_COMMAND_MODULES = (jobs, model_commands, quality_commands)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lakescore", description="Batch scoring of tree and linear models over a data lake."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _COMMAND_MODULES:
        module.register(sub)
    return parser


def _setup_logging(args: argparse.Namespace) -> None:
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("lakescore")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args)
    try:
        return args.handler(args)
    except LakescoreError as exc:
        print(f"lakescore: error: {_one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("lakescore: interrupted; run the same command again to resume", file=sys.stderr)
        return ExecutionError.exit_code


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
