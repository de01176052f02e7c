"""``report``: a run's self-contained HTML report (inline CSS and SVG, no network needed)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="write the HTML report of a sink's latest run (or of the run given)"
    )
    p.add_argument(
        "target",
        metavar="RUN_OR_SINK",
        help="a sink folder or s3:// URI (its latest run), or a run record "
        "<sink>/_lakescore/run_records/<run_id>.json",
    )
    p.add_argument("--run", dest="run_id", help="report on this run of the sink")
    p.add_argument(
        "-o", "--output", default="report.html", help="HTML file to write (default: report.html)"
    )
    p.set_defaults(handler=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from engine.errors import BadInputError
    from engine.report import write_report
    from engine.storage import Storage, is_uri

    if not is_uri(args.output) and Path(args.output).is_dir():
        raise BadInputError(f"-o {args.output}: is a directory, expected a file name")
    data = write_report(args.target, args.output, run_id=args.run_id, storage=Storage.of(None))
    status = data.record.get("status") or "unknown"
    print(
        f"report of run {data.run_id} (status {status}; {len(data.history)} run(s) in the "
        f"history) -> {args.output}"
    )
    return 0
