"""The body of one Ray actor of :class:`~cluster.ray_executor.RayExecutor`'s pool.

An actor is generic: ``prepare(factory, device)`` gives it a run's worker factory (the
same actor can serve several runs, see :func:`cluster.keep_actors`), and its first task
builds the worker from it (a scoring worker loads its kernel there). An actor of several
CPUs runs as many tasks at once, in Ray's threads, sharing that worker (and its kernel's
pool of threads), as the local executor's threads do. ``stats()`` says
what the actor did in this run and what its process cost since it started (CPU seconds,
peak RSS): the run record's per-actor rows, and the figures of the overhead benchmark.
"""

from __future__ import annotations

import functools
import os
import resource
import threading
import time
from typing import Any

from cluster.executor import WorkerFactory
from cluster.huge_pages import disable_transparent_huge_pages


class TaskActor:
    """Builds its worker from the run's factory once, then runs that run's tasks
    (``slots`` of them at once: the actor's ``max_concurrency``)."""

    def __init__(self, env: dict[str, str] | None = None, slots: int = 1) -> None:
        # Before any import reads it (NUMBA_NUM_THREADS: the CPUs this actor reserved).
        os.environ.update(env or {})
        disable_transparent_huge_pages()  # an actor is a fresh process: see the module
        self._born = time.perf_counter()
        self._slots = slots
        self._runs = 0
        self._lock = threading.Lock()  # the worker's build and the counters
        self._reset(None, "cpu")

    def _reset(self, factory: WorkerFactory | None, device: str) -> None:
        self._factory = factory
        self._device = device
        self._worker: Any = None
        self._error: BaseException | None = None
        self._prepared = time.perf_counter()
        self._build_s = 0.0
        self._busy_s = 0.0
        self._tasks = 0

    def prepare(self, factory: WorkerFactory, device: str = "cpu") -> int:
        """Take a run's factory (dropping the previous run's worker); returns the pid."""
        self._reset(factory, device)
        self._runs += 1
        return os.getpid()

    def run(self, task: Any) -> Any:
        started = time.perf_counter()
        worker = self._worker
        if worker is None:
            worker = self._build()
        try:
            return worker(task)
        finally:
            with self._lock:
                self._tasks += 1
                self._busy_s += time.perf_counter() - started

    def _build(self) -> Any:
        """The run's worker, built by the first task to ask (the others wait for it)."""
        with self._lock:
            if self._worker is not None:
                return self._worker
            if self._error is not None:  # the factory failed on an earlier task
                raise self._error
            started = time.perf_counter()
            try:
                if self._device == "gpu":
                    self._worker = self._factory(device="gpu")  # type: ignore[misc]
                else:
                    self._worker = self._factory()  # type: ignore[misc]
            except Exception as exc:
                self._error = exc
                raise
            finally:
                self._build_s = time.perf_counter() - started
            return self._worker

    def stats(self) -> dict[str, Any]:
        """This run's work and this process's cost so far (see :func:`actor_stats`)."""
        now = time.perf_counter()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "pid": os.getpid(),
            "node": _node_id(),
            "device": self._device,
            "runs": self._runs,
            "tasks": self._tasks,
            "slots": self._slots,
            # building the worker (a kernel load) and running tasks, this run (summed
            # over the slots: up to slots x the wall time)
            "build_seconds": round(self._build_s, 4),
            "busy_seconds": round(self._busy_s, 4),
            # since prepare(): slot-seconds spent waiting for tasks (dispatch, results)
            "idle_seconds": round(max(0.0, (now - self._prepared) * self._slots - self._busy_s), 4),
            "age_seconds": round(now - self._born, 4),
            # the whole process, start-up and imports included
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 4),
            "peak_rss_mib": round(usage.ru_maxrss / 1024.0, 1),  # Linux: KiB
        }


def _node_id() -> str:
    try:
        import ray

        return str(ray.get_runtime_context().get_node_id())[:12]
    except Exception:  # not inside Ray (a direct call in a test)
        return ""


@functools.cache
def actor_class() -> Any:
    import ray

    return ray.remote(TaskActor)
