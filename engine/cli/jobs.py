"""``score``, ``run`` and ``demo``: the commands that run a scoring job."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from engine.cli._common import add_job_flags, parse_columns, print_summary
from engine.errors import BadInputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="make a demo lake and model, score it, print a summary")
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--dir", default="demo-lake", help="where the lake, model and scores go")
    p.set_defaults(handler=_cmd_demo)

    p = sub.add_parser("score", help="score a source with a model into a sink")
    p.add_argument("--model", required=True)
    p.add_argument("--source", required=True)
    p.add_argument("--sink", required=True)
    add_job_flags(p)
    p.add_argument("--json", action="store_true", help="print the run record as JSON")
    p.set_defaults(handler=_cmd_score)

    p = sub.add_parser("run", help="run a job spec (TOML)")
    p.add_argument("job", help="job file")
    p.add_argument("--run-id", dest="run_id", help="resume or re-commit this run id")
    p.add_argument("--json", action="store_true", help="print the run record as JSON")
    p.set_defaults(handler=_cmd_run)


def _cmd_score(args: argparse.Namespace) -> int:
    from engine.coordinator import run_job
    from engine.spec import JobSpec, resolve_path

    cwd = Path.cwd()  # the run record names files absolutely, like a job file's
    spec = JobSpec(
        model=resolve_path(args.model, cwd),
        source=resolve_path(args.source, cwd),
        sink=resolve_path(args.sink, cwd),
        id_column=args.id_column,
        columns=parse_columns(args.columns),
        backend=args.backend,
        cluster=args.cluster,
        format=args.format,
        run_id=args.run_id,
        batch_rows=args.batch_rows,
        workers=args.workers,
        trust_pickle=args.trust_pickle,
        source_version=args.source_version,
        source_timestamp=args.source_timestamp,
        filter=args.filter,
        partition_by=args.partition_by,
        overwrite_partition=args.overwrite_partition,
    )
    result = run_job(spec, progress=not args.quiet)
    print_summary(result, args.json)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from engine.coordinator import run_job
    from engine.spec import load_job_file

    spec = load_job_file(args.job)
    if args.run_id:
        spec = dataclasses.replace(spec, run_id=args.run_id)
    result = run_job(spec, progress=not args.quiet)
    print_summary(result, args.json)
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
    print_summary(result, as_json=False)
    print(f"model       {paths.model}")
    print(f"lake        {paths.lake}")
    return 0
