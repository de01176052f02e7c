"""The run's log events, with the fields a log pipeline reads (``--log-format json``).

Each event is one log record whose ``extra`` fields name it (``event``) and carry its
figures: ``run_id``, ``task_id``, ``stage`` (plan, execute, commit), ``rows``,
``seconds``, ``node``. In text mode they read as ordinary log lines.
"""

from __future__ import annotations

import logging
from typing import Any

from engine.task import TaskResult

log = logging.getLogger("lakescore.coordinator")
#: One event per finished task: the CLI's text mode shows them only with -v.
task_log = logging.getLogger("lakescore.tasks")


def run_planned(run_id: str, *, tasks: int, done: int, rows: int, backend: str,
                executor: str, seconds: float) -> None:  # fmt: skip
    log.info(
        "run %s: %d task(s), %d already done, %d row(s), backend %s",
        run_id,
        tasks,
        done,
        rows,
        backend,
        extra={"event": "run_planned", "run_id": run_id, "stage": "plan", "tasks": tasks,
               "tasks_done": done, "rows": rows, "backend": backend, "executor": executor,
               "seconds": round(seconds, 3)},
    )  # fmt: skip


def task_finished(run_id: str, result: TaskResult) -> None:
    seconds = sum(result.seconds.values())
    task_log.info(
        "task %s: %d rows in %.3f s on %s",
        result.task_id,
        result.rows,
        seconds,
        result.node or "?",
        extra={"event": "task_finished", "run_id": run_id, "task_id": result.task_id,
               "stage": "execute", "rows": result.rows, "seconds": round(seconds, 6),
               "stage_seconds": result.seconds, "node": result.node},
    )  # fmt: skip


def run_committed(record: dict[str, Any]) -> None:
    log.info(
        "run %s committed: %d rows in %.2f s",
        record["run_id"],
        record["rows"],
        record["seconds"],
        extra={"event": "run_committed", "run_id": record["run_id"], "stage": "commit",
               "status": record.get("status"), "rows": record["rows"],
               "seconds": record["seconds"], "rows_per_second": record.get("rows_per_second"),
               "node": record.get("host")},
    )  # fmt: skip


def run_failed(record: dict[str, Any], error: BaseException) -> None:
    """A run that got a run id and then failed (bad input found while planning is reported
    by whoever called, with no run to name)."""
    log.error(
        "run %s failed: %s",
        record["run_id"],
        " ".join(str(error).split()) or type(error).__name__,
        extra={"event": "run_failed", "run_id": record["run_id"], "stage": "execute",
               "status": record.get("status"), "rows": record.get("rows"),
               "seconds": record.get("seconds"), "node": record.get("host")},
    )  # fmt: skip
