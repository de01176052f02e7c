"""Where a run's work went: rows, tasks and rows/s per node and per worker process, and
the executor's retries and failures, for the run record."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cluster import ExecutorStats
from engine.task import TaskResult

_ACTOR_FIGURES = ("slots", "build_seconds", "idle_seconds", "cpu_seconds", "peak_rss_mib")


def execution_report(stats: ExecutorStats, results: Iterable[TaskResult]) -> dict[str, Any]:
    """The run record's ``nodes``, ``workers``, ``executor_stats`` and (on Ray)
    ``ray_nodes`` entries.

    A worker's rows/s is its rows over the seconds its tasks took (read to write), so it
    compares workers, not the run's wall-clock rate; tasks resumed from an earlier
    attempt count where they ran then (an actor running ``slots`` tasks at once counts
    each task's seconds, as the local executor's threads do). A Ray actor's row adds its
    ``slots``, its kernel load (``build_seconds``), its slots' wait for tasks
    (``idle_seconds``), and its process's CPU seconds and peak RSS.
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
        workers[key]["pid"] = r.worker
    for table in (nodes, workers):
        for entry in table.values():
            seconds = entry["seconds"]
            entry["seconds"] = round(seconds, 3)
            entry["rows_per_second"] = round(entry["rows"] / seconds, 1) if seconds > 0 else None
    # A Ray actor's own figures (its process's CPU seconds and peak RSS, its kernel load,
    # its time waiting for tasks) join its worker row; the pid ties them together.
    # Hosts can hold several Ray nodes (and a host name says nothing of which), so Ray
    # runs also get ``ray_nodes``: the same rows by the actor's Ray node id.
    actors = {doc.get("pid"): doc for doc in stats.extra.get("actor_stats", {}).values()}
    ray_nodes: dict[str, dict[str, Any]] = {}
    for entry in workers.values():
        doc = actors.get(entry.pop("pid"))
        if doc is None:
            continue
        entry.update({k: doc[k] for k in _ACTOR_FIGURES if k in doc})
        node = ray_nodes.setdefault(
            str(doc.get("node") or "unknown"), {"actors": 0, "tasks": 0, "rows": 0, "seconds": 0.0}
        )
        node["actors"] += 1
        for k in ("tasks", "rows", "seconds"):
            node[k] += entry[k]
    for node in ray_nodes.values():
        node["seconds"] = round(node["seconds"], 3)
        node["rows_per_second"] = (
            round(node["rows"] / node["seconds"], 1) if node["seconds"] > 0 else None
        )
    report: dict[str, Any] = {"ray_nodes": dict(sorted(ray_nodes.items()))} if ray_nodes else {}
    return {
        **report,
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
