"""``bench``: measure a model on this machine (or cluster) and plan capacity from it."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from engine.cli._common import add_registry_flag, add_trust_flag
from engine.errors import BadInputError

#: --quick: tiny row counts and short measurements (tests, smoke runs); explicit flags win.
QUICK = {
    "sample_rows": 4096,
    "batch_rows": "512,2048",
    "default_batch": 2048,
    "seconds": 0.02,
    "e2e_rows": 20_000,
}
FULL = {
    "sample_rows": 262_144,
    "batch_rows": "16384,65536,262144",
    "default_batch": 65_536,
    "seconds": 2.0,
    "e2e_rows": 500_000,
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="measure a model here and plan the cores/nodes a run needs",
        description="Measure kernel rows/s per backend and thread count against the model's "
        "native library on the same rows, compile times, and one short end-to-end run; with "
        "--rows and --deadline, project the cores (and GPU nodes) that meet the deadline. "
        "Writes bench.json, bench.md and bench.html to --out.",
    )
    p.add_argument("--model", required=True, help="model file, NAME@VERSION or NAME@ALIAS")
    add_registry_flag(p)
    add_trust_flag(p)
    p.add_argument("--rows", help="rows of the run to plan, e.g. 500M (suffixes k, M, B)")
    p.add_argument("--deadline", help="time the run must fit in, e.g. 2h, 90m, 1h30m")
    p.add_argument(
        "--headroom", default="0.3", help="share of the deadline kept spare (default 0.3 = 30%%)"
    )
    p.add_argument(
        "--source",
        help="sample the measured rows from this Parquet source "
        "instead of generating them from the model",
    )
    p.add_argument("--sample-rows", dest="sample_rows", help="rows every contender scores")
    p.add_argument("--threads", help="thread counts, e.g. 1,2,4 (default 1, 2, 4, ... cores)")
    p.add_argument("--batch-rows", dest="batch_rows", help="batch sizes, e.g. 16k,64k,256k")
    p.add_argument("--seconds", type=float, help="seconds per measurement (default 2)")
    p.add_argument(
        "--backend",
        dest="backends",
        action="append",
        help="measure only this backend (repeatable; default every one)",
    )
    p.add_argument("--e2e-rows", dest="e2e_rows", help="rows of the end-to-end run")
    p.add_argument("--workers", type=int, default=2, help="tasks in flight, end to end")
    p.add_argument("--cluster", help="also run end to end on Ray: ray | auto | HOST:PORT")
    p.add_argument(
        "--nan-rate",
        dest="nan_rate",
        type=float,
        help="share of generated values that are NaN (default 0.02; 0 for sklearn)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="output folder (default ./bench-<time>)")
    p.add_argument("--quick", action="store_true", help="tiny rows and short measurements")
    p.set_defaults(handler=_cmd_bench)


def _list(text: str, flag: str) -> list[int]:
    from engine.bench.units import parse_count

    values = [parse_count(part, flag=flag) for part in text.split(",") if part.strip()]
    if not values:
        raise BadInputError(f"{flag} {text!r}: expected a comma-separated list")
    return sorted(set(values))


def _options(args: argparse.Namespace, model: Path):
    from engine.bench.machine import usable_cores
    from engine.bench.runner import BenchOptions, default_threads
    from engine.bench.units import parse_count, parse_duration, parse_fraction

    preset = QUICK if args.quick else FULL
    plan = None
    if (args.rows is None) != (args.deadline is None):
        raise BadInputError("--rows and --deadline go together (the run to plan)")
    if args.rows is not None:
        plan = (
            parse_count(args.rows),
            parse_duration(args.deadline),
            parse_fraction(args.headroom),
        )
    cores = usable_cores()
    threads = _list(args.threads, "--threads") if args.threads else default_threads(cores)
    if args.quick and not args.threads:
        threads = sorted({1, min(2, cores)})
    batches = _list(args.batch_rows or preset["batch_rows"], "--batch-rows")
    default_batch = preset["default_batch"] if preset["default_batch"] in batches else batches[0]
    seconds = args.seconds if args.seconds is not None else preset["seconds"]
    if seconds <= 0:
        raise BadInputError(f"--seconds {seconds}: must be positive")
    if args.workers < 1:
        raise BadInputError(f"--workers {args.workers}: must be at least 1")
    if args.nan_rate is not None and not 0 <= args.nan_rate < 1:
        raise BadInputError(f"--nan-rate {args.nan_rate}: must be at least 0 and below 1")
    sample_rows = parse_count(args.sample_rows or str(preset["sample_rows"]), flag="--sample-rows")
    return BenchOptions(
        model=model,
        model_arg=args.model,
        trust_pickle=args.trust_pickle,
        source=args.source,
        sample_rows=max(sample_rows, max(batches)),
        nan_rate=args.nan_rate,
        seed=args.seed,
        threads=threads,
        batches=batches,
        default_batch=default_batch,
        seconds=seconds,
        backends=args.backends,
        e2e_rows=parse_count(args.e2e_rows or str(preset["e2e_rows"]), flag="--e2e-rows"),
        workers=args.workers,
        cluster=args.cluster,
        plan=plan,
        quick=args.quick,
        argv=["lakescore", *sys.argv[1:]],
    )


def _out_dir(arg: str | None) -> Path:
    """The output folder, checked now (created only when there are results to write)."""
    import os

    out = Path(arg) if arg else Path(f"bench-{dt.datetime.now():%Y%m%dT%H%M%S}")
    if out.exists() and not out.is_dir():
        raise BadInputError(f"--out {out}: exists and is not a folder")
    parent = out.absolute()
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise BadInputError(f"--out {out}: {parent} is not a writable folder")
    return out


def _cmd_bench(args: argparse.Namespace) -> int:
    from engine.bench.report import render_terminal, write_outputs
    from engine.bench.runner import run_bench
    from engine.registry import resolve_model

    resolved = resolve_model(args.model, args.registry)  # NAME@ALIAS: sha256 checked
    forest = resolved.load(trust_pickle=args.trust_pickle)
    model = Path(resolved.path)
    opts = _options(args, model)
    if args.cluster:  # an unknown cluster value is bad input: found before measuring
        from engine.bench.end_to_end import check_cluster

        check_cluster(args.cluster)
    if args.source and not Path(args.source).exists():
        raise BadInputError(f"--source {args.source}: not found")
    out = _out_dir(args.out)
    doc = run_bench(opts, forest)
    paths = write_outputs(doc, out)
    print(render_terminal(doc, paths), end="")
    return 0
