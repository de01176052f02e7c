"""Flags and helpers that several commands share."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from engine.errors import BadInputError

if TYPE_CHECKING:
    import kernels
    from engine.coordinator import ScoreResult


def add_job_flags(p: argparse.ArgumentParser) -> None:
    """The flags of a scoring job, shared by ``score`` and the job spec's key names."""
    p.add_argument("--id-column", dest="id_column", help="source column copied beside each score")
    p.add_argument(
        "--cluster",
        default="local",
        help="local (default: threads here) | ray (a local Ray) | auto | HOST:PORT | "
        "ray://HOST:PORT (an existing Ray cluster)",
    )
    p.add_argument("--backend", default="auto", help="auto | numba | cuda | tl2cgen")
    p.add_argument(
        "--format",
        default="parquet",
        choices=["parquet", "delta"],
        help="sink format: parquet (a directory per run) or delta (a Delta table)",
    )
    p.add_argument("--run-id", dest="run_id", help="resume or re-commit this run id")
    p.add_argument(
        "--source-version",
        dest="source_version",
        type=int,
        help="score this version of a Delta source (time travel)",
    )
    p.add_argument(
        "--source-timestamp",
        dest="source_timestamp",
        metavar="ISO",
        help="score the version of a Delta source current at this time (UTC unless zoned)",
    )
    p.add_argument(
        "--filter",
        metavar="EXPR",
        help="score only matching rows: comparisons, and/or/not, in (...), is [not] null",
    )
    p.add_argument(
        "--partition-by",
        dest="partition_by",
        action="append",
        default=[],
        metavar="COL[=VALUE]",
        help="partition the output by a source column, or by a constant COL=VALUE (repeatable)",
    )
    p.add_argument(
        "--overwrite-partition",
        dest="overwrite_partition",
        metavar="EXPR",
        help="replace this output partition with the run (e.g. \"score_date = '2026-11-01'\")",
    )
    add_column_flag(p)
    add_registry_flag(p)
    p.add_argument("--batch-rows", dest="batch_rows", type=int, default=65_536)
    p.add_argument(
        "--workers", type=int, default=2, help="tasks in flight (local executor; Ray sizes its own)"
    )
    p.add_argument(
        "--actor-cpus",
        dest="actor_cpus",
        type=int,
        default=None,
        metavar="N",
        help="CPUs per Ray actor, each running N tasks at once on one kernel (default: "
        "a one-node cluster's free CPUs, else 1)",
    )
    add_trust_flag(p)


def add_metrics_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--metrics-file",
        dest="metrics_file",
        metavar="PATH",
        help="write Prometheus text-format metrics of the run here (node_exporter textfile)",
    )


def show_progress(args: argparse.Namespace) -> bool:
    """Progress bar or lines, unless -q; never in JSON mode (a bar would break the lines
    apart, and the per-task events say the same)."""
    return not args.quiet and args.log_format != "json"


def add_registry_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--registry",
        help="model registry root for models named NAME@VERSION or NAME@ALIAS "
        "(default: $LAKESCORE_REGISTRY)",
    )


def add_column_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--column",
        dest="columns",
        action="append",
        default=[],
        metavar="FEATURE=COLUMN",
        help="map a model feature to a differently named source column (repeatable)",
    )


def add_trust_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--trust-pickle",
        dest="trust_pickle",
        action="store_true",
        help="allow a pickle/joblib model file (unpickling runs code from the file)",
    )


def parse_columns(pairs: list[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for pair in pairs:
        feature, sep, column = pair.partition("=")
        if not sep or not feature or not column:
            raise BadInputError(f"--column {pair!r}: expected FEATURE=COLUMN")
        mapping[feature] = column
    return mapping


def job_spec_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The ``JobSpec`` fields of :func:`add_job_flags`'s flags (``score`` and ``assess``):
    files resolved against the working directory, as a job file's are against its own."""
    from pathlib import Path

    from engine.registry import resolve_model_value
    from engine.spec import resolve_path

    cwd = Path.cwd()  # the run record names files absolutely
    return dict(
        model=resolve_model_value(args.model, cwd),  # a path, s3:// or NAME@ALIAS
        source=resolve_path(args.source, cwd),
        sink=resolve_path(args.sink, cwd) if args.sink is not None else "",  # optional: assess
        id_column=args.id_column,
        columns=parse_columns(args.columns),
        backend=args.backend,
        cluster=args.cluster,
        batch_rows=args.batch_rows,
        workers=args.workers,
        actor_cpus=args.actor_cpus,
        trust_pickle=args.trust_pickle,
        registry=resolve_path(args.registry, cwd) if args.registry else None,
        source_version=args.source_version,
        source_timestamp=args.source_timestamp,
    )


def print_summary(result: ScoreResult, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.record, indent=2, sort_keys=True))
        return
    print(
        f"scored {result.rows_scored:,} rows in {result.seconds:.2f} s "
        f"({result.rows_per_second:,.0f} rows/s), status {result.status}"
    )
    print(f"run id      {result.run_id}")
    sink = result.sink.rstrip("/")  # a path or an s3:// URI
    print(f"scores      {sink}/{result.run_id}")
    print(f"run record  {sink}/_lakescore/run_records/{result.run_id}.json")
    reference = result.record.get("reference")
    print(f"reference   {reference or 'none (first run in this sink): no drift measured'}")
    drifted = {k: v for k, v in result.record.get("drift_status", {}).items() if v != "ok"}
    if drifted:
        print("drift       " + ", ".join(f"{k} {v}" for k, v in sorted(drifted.items())))
    for name, doc in (result.record.get("variants") or {}).items():  # a variant run
        mean = (doc.get("score") or {}).get("mean")
        share = doc.get("share")
        drift = doc.get("drift_status") or "not measured"
        print(
            f"variant     {name}: {doc.get('rows', 0):,} rows"
            + (f" ({share:.1%})" if share is not None else "")
            + (f", mean score {mean:.4f}" if mean is not None else "")
            + f", drift {drift} (reference {doc.get('reference') or 'none'})"
        )


def load_forest(path: str, trust_pickle: bool = False) -> kernels.Forest:
    """Load a model for a command; a bad file is bad input (exit 2)."""
    import kernels

    try:
        return kernels.load_model(path, trust_pickle=trust_pickle)
    except kernels.KernelError as exc:
        raise BadInputError(str(exc)) from None
