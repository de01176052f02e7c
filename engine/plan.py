"""Planning: source files -> small, serialisable :class:`ScoreTask` s with stable ids.

The same input always gives the same task ids (a hash of the file's relative path, size,
modification time and row groups), which is what lets a resumed run skip finished tasks
and lets a retried task overwrite its own part file instead of adding a second one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from engine.errors import BadInputError
from engine.filters import Expr, columns, simplify, to_arrow
from engine.source import SourceFile, one_line
from engine.storage import Storage, fs_and_path


@dataclass(frozen=True)
class ScoreTask:
    """Score some row groups of one file. Small enough to send to any worker."""

    task_id: str
    path: str
    relpath: str
    row_groups: tuple[int, ...]
    first_row: int
    num_rows: int
    #: the file's partition values (hive directories or the Delta log)
    partition: tuple[tuple[str, str | None], ...] = ()
    #: rows to keep (what is left of ``--filter`` once the partition values are known)
    filter: Expr | None = None


def plan_tasks(
    files: list[SourceFile],
    *,
    task_rows: int,
    filter: Expr | None = None,
    storage: Storage | None = None,
) -> list[ScoreTask]:
    """Split every file into runs of whole row groups of about ``task_rows`` rows.

    Files without rows get no task. With a ``filter``, only the row groups whose
    statistics may hold matching rows are planned (files whose partition values rule it
    out were never listed: see :func:`engine.source.open_source`).
    """
    tasks: list[ScoreTask] = []
    for f in files:
        residual = simplify(filter, f.partition) if filter is not None else True
        if residual is False:
            continue
        rest = None if residual is True else residual
        keep = set(range(len(f.row_group_rows))) if rest is None else _row_groups(f, rest, storage)
        group: list[int] = []
        group_rows = 0
        first_row = 0
        row = 0
        for rg, n in enumerate(f.row_group_rows):
            row += n
            if rg not in keep:
                continue
            if not group:
                first_row = row - n
            group.append(rg)
            group_rows += n
            if group_rows >= task_rows:
                tasks.append(_task(f, group, first_row, group_rows, rest))
                group, group_rows = [], 0
        if group_rows:
            tasks.append(_task(f, group, first_row, group_rows, rest))
    return tasks


def _row_groups(f: SourceFile, expr: Expr, storage: Storage | None) -> set[int]:
    """Row groups of ``f`` whose statistics do not rule ``expr`` out (Arrow decides)."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    for column in sorted(columns(expr)):
        if column not in f.schema.names:
            raise BadInputError(f"{f.path}: filter column {column!r} not found")
    try:
        filesystem, where = fs_and_path(f.path, storage)
        fragment = ds.ParquetFileFormat().make_fragment(where, filesystem=filesystem)
        kept = fragment.subset(filter=to_arrow(expr), schema=f.schema)
        return {rg.id for rg in kept.row_groups}
    except (pa.ArrowException, TypeError) as exc:
        raise BadInputError(f"{f.path}: --filter {expr}: {one_line(exc)}") from None


def _task(
    f: SourceFile, row_groups: list[int], first_row: int, num_rows: int, rest: Expr | None
) -> ScoreTask:
    doc: list[object] = [f.relpath, f.size, f.mtime_ns, row_groups]
    if rest is not None:  # the same row groups under another filter are another task
        doc.append(str(rest))
    key = json.dumps(doc).encode()
    return ScoreTask(
        task_id=hashlib.sha256(key).hexdigest()[:20],
        path=f.path,
        relpath=f.relpath,
        row_groups=tuple(row_groups),
        first_row=first_row,
        num_rows=num_rows,
        partition=tuple(sorted(f.partition.items())),
        filter=rest,
    )


def job_fingerprint(
    *,
    model_sha256: str,
    source: str,
    files: list[SourceFile],
    id_column: str | None,
    features: dict[str, str],
    outputs: dict[str, Any] | None = None,
    extra: dict[str, object] | None = None,
) -> str:
    """What makes two invocations "the same job": a resumed run must match this exactly.

    ``outputs`` (kept columns, the id hash's salt id) joins the hash only when given, so
    the fingerprints of jobs without them stay as they were.
    """
    doc: dict[str, Any] = {
        "model": model_sha256,
        "source": source,
        "files": [[f.relpath, f.size, f.mtime_ns] for f in files],
        "id_column": id_column,
        "features": features,
        **(extra or {}),  # options that change the output (filter, partitions, overwrite)
    }
    if outputs:
        doc["outputs"] = outputs
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
