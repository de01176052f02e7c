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

from engine.source import SourceFile


@dataclass(frozen=True)
class ScoreTask:
    """Score some row groups of one file. Small enough to send to any worker."""

    task_id: str
    path: str
    relpath: str
    row_groups: tuple[int, ...]
    first_row: int
    num_rows: int


def plan_tasks(files: list[SourceFile], *, task_rows: int) -> list[ScoreTask]:
    """Split every file into runs of whole row groups of about ``task_rows`` rows.

    Files without rows get no task.
    """
    tasks: list[ScoreTask] = []
    for f in files:
        group: list[int] = []
        group_rows = 0
        first_row = 0
        row = 0
        for rg, n in enumerate(f.row_group_rows):
            if not group:
                first_row = row
            group.append(rg)
            group_rows += n
            row += n
            if group_rows >= task_rows:
                tasks.append(_task(f, group, first_row, group_rows))
                group, group_rows = [], 0
        if group_rows:
            tasks.append(_task(f, group, first_row, group_rows))
    return tasks


def _task(f: SourceFile, row_groups: list[int], first_row: int, num_rows: int) -> ScoreTask:
    key = json.dumps([f.relpath, f.size, f.mtime_ns, row_groups]).encode()
    return ScoreTask(
        task_id=hashlib.sha256(key).hexdigest()[:20],
        path=f.path,
        relpath=f.relpath,
        row_groups=tuple(row_groups),
        first_row=first_row,
        num_rows=num_rows,
    )


def job_fingerprint(
    *,
    model_sha256: str,
    source: str,
    files: list[SourceFile],
    id_column: str | None,
    features: dict[str, str],
    outputs: dict[str, Any] | None = None,
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
    }
    if outputs:
        doc["outputs"] = outputs
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
