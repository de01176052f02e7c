"""The ``lakescore`` command line. Exit codes: 0 ok, 1 quality check failed, 2 bad input or
usage, 3 execution failure (see DESIGN.md)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import BadInputError, ExecutionError, LakescoreError

if TYPE_CHECKING:
    import kernels
    from engine.coordinator import ScoreResult

log = logging.getLogger("lakescore")


def _add_job_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--id-column", dest="id_column", help="source column copied beside each score")
    p.add_argument(
        "--cluster",
        default="local",
        help="local (default: threads here) | ray (a local Ray) | auto | HOST:PORT | "
        "ray://HOST:PORT (an existing Ray cluster)",
    )
    p.add_argument("--backend", default="auto", help="auto | numba | cuda")
    p.add_argument("--format", default="parquet", choices=["parquet"], help="sink format")
    p.add_argument("--run-id", dest="run_id", help="resume or re-commit this run id")
    p.add_argument(
        "--column",
        dest="columns",
        action="append",
        default=[],
        metavar="FEATURE=COLUMN",
        help="map a model feature to a differently named source column (repeatable)",
    )
    p.add_argument("--batch-rows", dest="batch_rows", type=int, default=65_536)
    p.add_argument(
        "--workers", type=int, default=2, help="tasks in flight (local executor; Ray sizes its own)"
    )
    _add_trust_flag(p)


def _add_trust_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--trust-pickle",
        dest="trust_pickle",
        action="store_true",
        help="allow a pickle/joblib model file (unpickling runs code from the file)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lakescore", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="make a demo lake and model, score it, print a summary")
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--dir", default="demo-lake", help="where the lake, model and scores go")

    p = sub.add_parser("score", help="score a source with a model into a sink")
    p.add_argument("--model", required=True)
    p.add_argument("--source", required=True)
    p.add_argument("--sink", required=True)
    _add_job_flags(p)
    p.add_argument("--json", action="store_true", help="print the run record as JSON")

    p = sub.add_parser("run", help="run a job spec (TOML)")
    p.add_argument("job", help="job file")
    p.add_argument("--run-id", dest="run_id", help="resume or re-commit this run id")
    p.add_argument("--json", action="store_true", help="print the run record as JSON")

    p = sub.add_parser("inspect", help="format, objective, trees, depth, features of a model")
    p.add_argument("model")
    _add_trust_flag(p)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("compile", help="compile a model (warms Numba's cache)")
    p.add_argument("model")
    _add_trust_flag(p)
    p.add_argument("--backend", default="auto")
    return parser


def _setup_logging(args: argparse.Namespace) -> None:
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("lakescore")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _parse_columns(pairs: list[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for pair in pairs:
        feature, sep, column = pair.partition("=")
        if not sep or not feature or not column:
            raise BadInputError(f"--column {pair!r}: expected FEATURE=COLUMN")
        mapping[feature] = column
    return mapping


def _print_summary(result: ScoreResult, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.record, indent=2, sort_keys=True))
        return
    print(
        f"scored {result.rows_scored:,} rows in {result.seconds:.2f} s "
        f"({result.rows_per_second:,.0f} rows/s), status {result.status}"
    )
    print(f"run id      {result.run_id}")
    print(f"scores      {Path(result.sink) / result.run_id}")
    print(f"run record  {Path(result.sink) / '_lakescore' / 'runs' / (result.run_id + '.json')}")


def _cmd_score(args: argparse.Namespace) -> int:
    from engine.coordinator import run_job
    from engine.spec import JobSpec, resolve_path

    cwd = Path.cwd()  # the run record names files absolutely, like a job file's
    spec = JobSpec(
        model=resolve_path(args.model, cwd),
        source=resolve_path(args.source, cwd),
        sink=resolve_path(args.sink, cwd),
        id_column=args.id_column,
        columns=_parse_columns(args.columns),
        backend=args.backend,
        cluster=args.cluster,
        format=args.format,
        run_id=args.run_id,
        batch_rows=args.batch_rows,
        workers=args.workers,
        trust_pickle=args.trust_pickle,
    )
    result = run_job(spec, progress=not args.quiet)
    _print_summary(result, args.json)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from engine.coordinator import run_job
    from engine.spec import load_job_file

    spec = load_job_file(args.job)
    if args.run_id:
        spec = dataclasses.replace(spec, run_id=args.run_id)
    result = run_job(spec, progress=not args.quiet)
    _print_summary(result, args.json)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from engine import demo
    from engine.coordinator import run_job
    from engine.spec import JobSpec

    if args.rows < 1:
        raise BadInputError(f"--rows must be positive, got {args.rows}")
    paths = demo.prepare(Path(args.dir), args.rows)
    spec = JobSpec(
        model=str(paths.model),
        source=str(paths.lake),
        sink=str(paths.sink),
        id_column="customer_id",
    )
    result = run_job(spec, progress=not args.quiet)
    _print_summary(result, as_json=False)
    print(f"model       {paths.model}")
    print(f"lake        {paths.lake}")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    import kernels

    forest = _load(args.model, args.trust_pickle)
    info = forest.describe()
    kernel = kernels.compile_model(forest, backend="numba")  # lays out; compiles on first use
    info["kernel"] = f"{kernel.backend} ({kernel.layout} layout)"
    info["kernel_bytes"] = kernel.memory_bytes
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for key, value in info.items():
        if isinstance(value, list):
            value = ", ".join(value[:8]) + (" ..." if len(value) > 8 else "")
        print(f"{key:<20}{value}")
    return 0


def _cmd_compile(args: argparse.Namespace) -> int:
    import time

    import numpy as np

    import kernels

    forest = _load(args.model, args.trust_pickle)
    start = time.perf_counter()
    try:
        kernel = kernels.compile_model(forest, backend=args.backend)
        kernel.predict(np.zeros((1, forest.num_features), dtype=np.float32))
    except kernels.KernelError as exc:
        raise BadInputError(str(exc)) from None
    print(f"compiled {args.model} for {kernel.backend} in {time.perf_counter() - start:.2f} s")
    return 0


def _load(path: str, trust_pickle: bool = False) -> kernels.Forest:
    import kernels

    try:
        return kernels.load_model(path, trust_pickle=trust_pickle)
    except kernels.KernelError as exc:
        raise BadInputError(str(exc)) from None


_COMMANDS = {
    "demo": _cmd_demo,
    "score": _cmd_score,
    "run": _cmd_run,
    "inspect": _cmd_inspect,
    "compile": _cmd_compile,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args)
    try:
        return _COMMANDS[args.command](args)
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
