"""``profile``: a reference profile for drift (features and the model's scores)."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.cli._common import add_column_flag, add_trust_flag, parse_columns


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "profile",
        help="profile a data set and the model's scores on it (a drift reference)",
    )
    p.add_argument(
        "--source",
        required=True,
        help="Parquet file or directory, or Delta table; local or s3:// (training data)",
    )
    p.add_argument("--model", required=True)
    p.add_argument("-o", "--output", required=True, help="profile file to write (JSON)")
    add_column_flag(p)
    p.add_argument("--batch-rows", dest="batch_rows", type=int, default=65_536)
    p.add_argument("--workers", type=int, default=2)
    add_trust_flag(p)
    p.set_defaults(handler=_cmd_profile)


def _cmd_profile(args: argparse.Namespace) -> int:
    from engine.errors import BadInputError
    from engine.quality.profile_job import build_profile

    for name in ("batch_rows", "workers"):
        if getattr(args, name) < 1:
            raise BadInputError(f"--{name.replace('_', '-')} must be positive")
    output = Path(args.output)
    if output.is_dir():
        raise BadInputError(f"-o {output}: is a directory, expected a file name")
    from engine.registry import resolve_model_value
    from engine.spec import resolve_path

    profile = build_profile(
        model=resolve_model_value(args.model, Path.cwd()),  # a path, s3:// or NAME@ALIAS
        source=resolve_path(args.source, Path.cwd()),  # a path or s3:// (Parquet or Delta)
        columns=parse_columns(args.columns),
        batch_rows=args.batch_rows,
        workers=args.workers,
        trust_pickle=args.trust_pickle,
    )
    profile.save(output)
    print(
        f"profiled {profile.rows:,} rows: {len(profile.features)} feature(s), "
        f"{len(profile.scores)} score column(s) -> {output}"
    )
    return 0
