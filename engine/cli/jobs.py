"""``score``, ``run`` and ``demo``: the commands that run a scoring job."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from engine.cli._common import (
    add_job_flags,
    add_metrics_flag,
    add_registry_flag,
    job_spec_fields,
    print_summary,
    show_progress,
)
from engine.cli.assess import add_assess_flags, dry_run
from engine.errors import BadInputError, QualityCheckError

if TYPE_CHECKING:
    from engine.coordinator import ScoreResult


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
    p.add_argument(
        "--reference",
        help="profile file (lakescore profile -o) to measure drift against "
        "(default: the sink's previous good run)",
    )
    add_metrics_flag(p)
    add_output_flags(p)
    add_dry_run_flag(p)  # its assessment compares with the same --reference
    p.add_argument("--json", action="store_true", help="print the run record as JSON")
    p.set_defaults(handler=_cmd_score)

    p = sub.add_parser("run", help="run a job spec (TOML)")
    p.add_argument("job", help="job file")
    p.add_argument("--run-id", dest="run_id", help="resume or re-commit this run id")
    add_metrics_flag(p)
    add_dry_run_flag(p)
    add_registry_flag(p)
    p.add_argument("--json", action="store_true", help="print the run record as JSON")
    p.set_defaults(handler=_cmd_run)


def add_output_flags(p: argparse.ArgumentParser) -> None:
    """What reaches the sink besides the scores (engine.governance)."""
    p.add_argument(
        "--keep",
        action="append",
        default=[],
        metavar="COL,...",
        help="source columns written beside the id and the scores (repeatable)",
    )
    salt = p.add_mutually_exclusive_group()
    salt.add_argument(
        "--hash-id",
        dest="hash_id_salt",
        metavar="SALT",
        help="write the id as hex SHA-256 of SALT followed by the id, not the raw id",
    )
    salt.add_argument(
        "--hash-id-env",
        dest="hash_id_salt_env",
        metavar="NAME",
        help="like --hash-id, the salt read from environment variable NAME",
    )


def parse_keep(values: list[str]) -> tuple[str, ...]:
    return tuple(name.strip() for value in values for name in value.split(",") if name.strip())


def add_dry_run_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dry-run",
        dest="dry_run",
        action="store_true",
        help="assess the job (like lakescore assess) and write nothing",
    )
    add_assess_flags(p)


def _cmd_score(args: argparse.Namespace) -> int:
    from engine.coordinator import run_job
    from engine.spec import JobSpec, resolve_path

    cwd = Path.cwd()
    spec = JobSpec(
        **job_spec_fields(args),
        format=args.format,
        run_id=args.run_id,
        filter=args.filter,
        partition_by=args.partition_by,
        overwrite_partition=args.overwrite_partition,
        metrics_file=resolve_path(args.metrics_file, cwd) if args.metrics_file else None,
        reference=resolve_path(args.reference, cwd) if args.reference else None,
        keep=parse_keep(args.keep),
        hash_id_salt=args.hash_id_salt,
        hash_id_salt_env=args.hash_id_salt_env,
    )
    if args.dry_run:
        return dry_run(spec, args)
    result = run_job(spec, progress=show_progress(args))
    print_summary(result, args.json)
    return _exit_code(result)


def _cmd_run(args: argparse.Namespace) -> int:
    from engine.coordinator import run_job
    from engine.spec import load_job_file, resolve_path

    spec = load_job_file(args.job)
    if args.run_id:
        spec = dataclasses.replace(spec, run_id=args.run_id)
    if args.metrics_file:
        spec = dataclasses.replace(spec, metrics_file=resolve_path(args.metrics_file, Path.cwd()))
    if args.registry:  # the flag wins over the job file's registry
        spec = dataclasses.replace(spec, registry=resolve_path(args.registry, Path.cwd()))
    if args.dry_run:
        return dry_run(spec, args)
    result = run_job(spec, progress=show_progress(args))
    print_summary(result, args.json)
    return _exit_code(result)


def _exit_code(result: ScoreResult) -> int:
    """1 when a quality check failed (the run was committed), else 0; failed checks are
    listed on stderr, one line each."""
    if result.status != "fail":
        return 0
    for check in result.record.get("checks", []):
        if check.get("status") == "fail":
            print(f"lakescore: check failed: {check['name']}: {check['detail']}", file=sys.stderr)
    return QualityCheckError.exit_code


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
    result = run_job(spec, progress=show_progress(args))
    print_summary(result, as_json=False)
    print(f"model       {paths.model}")
    print(f"lake        {paths.lake}")
    return 0
