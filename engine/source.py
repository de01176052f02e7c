"""The source side of planning: list Parquet files, read their footers, check the schema.

Only footers are read here (no data pages), so planning costs one small read per file.
Every file must hold every column the job needs with a numeric type: a file that does not
is bad input (schema drift), reported before anything is written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq

from engine.errors import BadInputError
from engine.filters import Expr, simplify
from engine.storage import Storage, check_bucket, is_uri


def is_numeric(dtype: pa.DataType) -> bool:
    """Arrow types a feature column may have; each casts to float32 (nulls become NaN)."""
    return (
        pa.types.is_integer(dtype)
        or pa.types.is_floating(dtype)
        or pa.types.is_boolean(dtype)
        or pa.types.is_decimal(dtype)
    )


@dataclass(frozen=True)
class SourceFile:
    """One Parquet file of the source and what its footer says."""

    path: str
    relpath: str
    size: int
    mtime_ns: int
    row_group_rows: tuple[int, ...]
    schema: pa.Schema
    #: partition column -> value (hive ``col=value`` directories, or the Delta log's)
    partition: dict[str, str | None] = field(default_factory=dict, compare=False)
    #: ``(rest, row groups)``: what is left of ``--filter`` on this file and the row
    #: groups whose statistics may hold rows that pass it, found when an object's footer
    #: was read (so the planner need not read it again); None: the planner finds them
    row_groups_kept: tuple[str, frozenset[int]] | None = field(default=None, compare=False)

    @property
    def num_rows(self) -> int:
        return sum(self.row_group_rows)


def list_parquet_files(source: str) -> tuple[Path, list[Path]]:
    """The source's root directory and its data files, sorted (stable task ids).

    Files and directories whose names start with ``_`` or ``.`` are skipped, as dataset
    readers do (``_SUCCESS``, ``_lakescore``, hidden temporary files).
    """
    root = Path(source)
    if not root.exists():
        raise BadInputError(f"source not found: {source}")
    if root.is_file():
        return root.parent, [root]
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(("_", ".")))
        for name in sorted(filenames):
            if not name.startswith(("_", ".")):
                files.append(Path(dirpath) / name)
    return root, files


def hive_partition(relpath: str) -> dict[str, str | None]:
    """``{"region": "north"}`` for ``region=north/part-0.parquet``."""
    values: dict[str, str | None] = {}
    for part in relpath.split("/")[:-1]:
        key, sep, value = part.partition("=")
        if sep and key:
            values[key] = None if value == "__HIVE_DEFAULT_PARTITION__" else unquote(value)
    return values


def read_footer(
    path: Path, root: Path, partition: dict[str, str | None] | None = None
) -> SourceFile:
    try:
        meta = pq.ParquetFile(path).metadata
        schema = meta.schema.to_arrow_schema()
    except (pa.ArrowException, OSError) as exc:
        raise BadInputError(f"{path}: not a readable Parquet file ({one_line(exc)})") from None
    stat = path.stat()
    relpath = path.relative_to(root).as_posix() if path != root else path.name
    return SourceFile(
        path=str(path),
        relpath=relpath,
        size=stat.st_size,
        mtime_ns=stat.st_mtime_ns,
        row_group_rows=tuple(meta.row_group(i).num_rows for i in range(meta.num_row_groups)),
        schema=schema,
        partition=hive_partition(relpath) if partition is None else partition,
    )


def check_columns(file: SourceFile, features: dict[str, str], id_column: str | None) -> None:
    """Raise naming the file and column when a needed column is absent or not numeric."""
    names = set(file.schema.names)
    if id_column is not None and id_column not in names:
        raise BadInputError(f"{file.path}: id column {id_column!r} not found")
    for feature, column in features.items():
        if column not in names:
            hint = f" (model feature {feature!r})" if feature != column else ""
            raise BadInputError(f"{file.path}: feature column {column!r} not found{hint}")
        dtype = file.schema.field(column).type
        if not is_numeric(dtype):
            raise BadInputError(
                f"{file.path}: feature column {column!r} has type {dtype}, not numeric"
            )


@dataclass(frozen=True)
class SourceScan:
    """What planning read of the source: its files, and the Delta version they belong to."""

    files: list[SourceFile]
    delta_version: int | None = None


def scan_source(source: str, features: dict[str, str], id_column: str | None) -> list[SourceFile]:
    """Footers of every data file, each checked against the columns the job needs."""
    return open_source(source, features, id_column).files


def open_source(
    source: str,
    features: dict[str, str],
    id_column: str | None,
    *,
    version: int | None = None,
    timestamp: str | None = None,
    filter: Expr | None = None,
    storage: Storage | None = None,
) -> SourceScan:
    """Scan a Parquet source, or one version of a Delta table (``version``/``timestamp``),
    local or on object storage (``s3://``), and check every file has the job's columns.

    Files whose partition values rule ``filter`` out are dropped before they are opened.
    """
    scan = list_source(source, version=version, timestamp=timestamp, filter=filter, storage=storage)
    files = scan.files
    for f in files:
        check_columns(f, features, id_column)
    if id_column is not None and files:
        first = files[0].schema.field(id_column).type
        for f in files[1:]:
            if f.schema.field(id_column).type != first:
                other = f.schema.field(id_column).type
                raise BadInputError(
                    f"{f.path}: id column {id_column!r} has type {other}, "
                    f"but {files[0].path} has {first}"
                )
    if sum(f.num_rows for f in files) == 0:
        raise BadInputError(f"source {source}: no rows to score ({len(files)} file(s))")
    return scan


def list_source(
    source: str,
    *,
    version: int | None = None,
    timestamp: str | None = None,
    filter: Expr | None = None,
    storage: Storage | None = None,
) -> SourceScan:
    """The footers of a source's data files (Parquet or Delta, local or ``s3://``), as
    :func:`open_source` finds them, without checking them against a job's columns (a dry
    run reports what is missing instead of stopping at the first)."""
    from engine import delta_source, remote_source

    storage = storage or Storage.of(None)
    remote = is_uri(source)
    if remote:
        check_bucket(source, storage, "source")
    delta_version = None
    if delta_source.is_delta_source(source, storage.delta_options()):
        snapshot = delta_source.open_snapshot(
            source,
            version=version,
            timestamp=timestamp,
            storage_options=storage.delta_options(),
        )
        delta_version = snapshot.version
        kept = [(p, rel, values) for p, rel, values in snapshot.files if _may_match(filter, values)]
        if remote:
            infos = remote_source.sizes(storage, [p for p, _, _ in kept])
            files = remote_source.read_remote_footers(
                [(p, rel, *infos[p], values) for p, rel, values in kept], storage, filter
            )
        else:
            files = [read_footer(Path(p), Path(snapshot.root), values) for p, _, values in kept]
        listed = len(snapshot.files)
    elif remote:
        if version is not None or timestamp is not None:
            raise BadInputError(
                f"source {source}: --source-version/--source-timestamp need a Delta table"
            )
        objects = remote_source.list_objects(source, storage)
        files = remote_source.read_remote_footers(
            [
                (uri, rel, size, mtime, None)
                for uri, rel, size, mtime in objects
                if _may_match(filter, hive_partition(rel))
            ],
            storage,
            filter,
        )
        listed = len(objects)
    else:
        if version is not None or timestamp is not None:
            raise BadInputError(
                f"source {source}: --source-version/--source-timestamp need a Delta table"
            )
        root, paths = list_parquet_files(source)
        files = [
            read_footer(p, root)
            for p in paths
            if _may_match(filter, hive_partition(p.relative_to(root).as_posix()))
        ]
        listed = len(paths)
    if filter is not None and listed and not files:
        raise BadInputError(f"source {source}: no partition matches --filter {filter}")
    return SourceScan(files, delta_version)


def _may_match(expr: Expr | None, partition: dict[str, str | None]) -> bool:
    return expr is None or simplify(expr, partition) is not False


def one_line(exc: BaseException) -> str:
    """The first line of an exception message (Arrow's messages run over several)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
