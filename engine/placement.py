"""Where a run's work went: rows, tasks and rows/s per node and per worker process, and
the executor's retries and failures, for the run record."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cluster import ExecutorStats
from engine.task import TaskResult


def execution_report(stats: ExecutorStats, results: Iterable[TaskResult]) -> dict[str, Any]:
    """The run record's ``nodes``, ``workers`` and ``executor_stats`` entries.

    A worker's rows/s is its rows over the seconds its tasks took (read to write), so it
    compares workers, not the run's wall-clock rate; tasks resumed from an earlier
    attempt count where they ran then.
    """
    nodes: dict[str, dict[str, float]] = {}
    workers: dict[str, dict[str, Any]] = {}
    for r in results:
        busy = sum(r.seconds.values())
        key = f"{r.node}:{r.worker}" if r.node else "unknown"
        for table, name in ((nodes, r.node or "unknown"), (workers, key)):
            entry = table.setdefault(name, {"tasks": 0, "rows": 0, "seconds": 0.0})
            entry["tasks"] += 1
            entry["rows"] += r.rows
            entry["seconds"] += busy
        workers[key]["backend"] = r.backend
    for table in (nodes, workers):
        for entry in table.values():
            seconds = entry["seconds"]
            entry["seconds"] = round(seconds, 3)
            entry["rows_per_second"] = round(entry["rows"] / seconds, 1) if seconds > 0 else None
    return {
        "nodes": dict(sorted(nodes.items())),
        "workers": dict(sorted(workers.items())),
        "executor_stats": {
            "tasks_submitted": stats.tasks_submitted,
            "tasks_succeeded": stats.tasks_succeeded,
            "tasks_retried": stats.tasks_retried,
            "tasks_failed": stats.tasks_failed,
            "workers_started": stats.workers_started,
            **{k: v for k, v in stats.extra.items() if isinstance(v, int | float | str | dict)},
        },
    }
