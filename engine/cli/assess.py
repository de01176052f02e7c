"""``assess`` (and ``score``/``run --dry-run``): a dry run that reports, writes nothing.

Exit code 2 when the job could not run as given (a missing or mistyped column, no rows):
the report still prints, and the error line names the column and its near misses.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from engine.cli._common import add_job_flags, job_spec_fields
from engine.errors import BadInputError

if TYPE_CHECKING:
    from engine.spec import JobSpec


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "assess",
        help="dry run: files, schema against the model, sample, freshness, duration estimate",
    )
    p.add_argument("--model", required=True)
    p.add_argument("--source", required=True)
    p.add_argument("--sink", help="also look at the sink (nothing is written to it)")
    add_job_flags(p)
    add_assess_flags(p)
    p.add_argument("--json", action="store_true", help="print the assessment as JSON")
    p.set_defaults(handler=_cmd_assess)


def add_assess_flags(p: argparse.ArgumentParser) -> None:
    if not any("--reference" in a.option_strings for a in p._actions):
        p.add_argument("--reference", help="reference profile to compare the sample with")
    p.add_argument(
        "--sample-rows",
        dest="sample_rows",
        type=int,
        default=50_000,
        help="rows scored to estimate the duration (default 50000)",
    )


def _cmd_assess(args: argparse.Namespace) -> int:
    from engine.spec import JobSpec

    spec = JobSpec(**job_spec_fields(args))
    return dry_run(spec, args, with_sink=bool(args.sink))


def dry_run(spec: JobSpec, args: argparse.Namespace, *, with_sink: bool = True) -> int:
    """Assess ``spec``, print the report, and exit as the run would have on bad input."""
    from engine.assess import assess

    if getattr(args, "sample_rows", 50_000) < 1:
        raise BadInputError(f"--sample-rows must be positive, got {args.sample_rows}")
    report = assess(
        spec,
        reference=getattr(args, "reference", None),
        sample_rows=getattr(args, "sample_rows", 50_000),
        with_sink=with_sink,
    )
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(render(report))
    problems = report["problems"]
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise BadInputError(problems[0] + more)
    return 0


def render(r: dict[str, Any]) -> str:
    """The assessment as a table for people."""
    src = r["source"]
    lines = [
        f"source      {src['path']}",
        f"            {src['files']} file(s), {src['row_groups']} row group(s), "
        f"{src['rows']:,} rows, {_size(src['bytes'])} ({_size(src['bytes_to_read'])} to read), "
        f"{src['tasks']} task(s)",
        f"model       {r['model']['path']} ({r['model']['features']} features)",
        "",
        f"{'column':<28}{'status':<10}{'type':<16}{'nulls':>8}  {'range':<26}note",
    ]
    sample = r["sample"]["columns"]
    for c in r["schema"]["columns"]:
        name = c["column"] if c["feature"] is not None else f"{c['column']} (id)"
        s = sample.get(c["column"], {})
        nulls = "" if s.get("null_rate") is None else f"{s['null_rate']:.1%}"
        rng = "" if s.get("min") is None else f"{s['min']:.4g} .. {s['max']:.4g}"
        note = ""
        if c["near_misses"]:
            note = "near misses: " + ", ".join(c["near_misses"])
        elif c["files_missing"]:
            note = f"missing from {c['files_missing']} file(s)"
        lines.append(
            f"{name[:27]:<28}{c['status']:<10}{', '.join(c['types'])[:15]:<16}"
            f"{nulls:>8}  {rng:<26}{note}"
        )
    extra = r["schema"]["extra_columns"]
    if extra:
        lines.append(f"not used    {', '.join(extra[:10])}{' ...' if len(extra) > 10 else ''}")
    lines.append(
        f"sample      {r['sample']['rows']:,} rows from {r['sample']['row_groups']} row group(s)"
    )
    ref = r.get("reference")
    if ref:
        lines.append(
            f"reference   {ref['path']}: " + ("compared" if ref["compared"] else ref["note"])
        )
    fresh = r["freshness"]
    for key, p in fresh["partitions"].items():
        age = f", {p['age_days']} day(s) old" if "age_days" in p else ""
        lines.append(f"freshness   newest {key}={p['newest']} ({p['values']} value(s){age})")
    if "newest_file" in fresh:
        lines.append(
            f"            newest file {fresh['newest_file']} written {fresh['newest_file_time']} "
            f"({fresh['newest_file_age_hours']:.1f} h ago)"
        )
    est = r["estimate"]
    if est.get("seconds") is not None:
        lines.append(f"estimate    about {_duration(est['seconds'])} on {est['executor']} "
                     f"({est['backend']}): {est['note']}")  # fmt: skip
    else:
        lines.append(f"estimate    {est['note']}")
    if "sink" in r:
        s = r["sink"]
        state = "exists" if s["exists"] else "would be created"
        resumable = f", resumes run {s['resumable_run']}" if s["resumable_run"] else ""
        lines.append(f"sink        {s['path']} ({state}, {s['committed_runs']} run(s){resumable})")
    lines += [f"warning     {w}" for w in r["warnings"]]
    lines += [f"problem     {p}" for p in r["problems"]]
    return "\n".join(lines)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
