"""The local executor: a bounded thread pool in this process (the default).

One worker (one compiled kernel) is shared by all threads: kernels serialise their own
parallel launches, so while one thread scores, the others read and decode Parquet and
write parts (pyarrow releases the GIL), which keeps every core busy without copying the
model. At most ``max_in_flight`` tasks are submitted at once, so memory stays bounded
however many tasks a run has. A task that raises runs again up to ``task_retries`` times.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from cluster.executor import BaseExecutor, TaskFailed, WorkerFactory

log = logging.getLogger("lakescore.cluster.local")

_DONE = object()  # end of the task iterator (a task may be any object, None included)


class LocalExecutor(BaseExecutor):
    name = "local"

    def __init__(
        self, *, threads: int = 2, max_in_flight: int | None = None, task_retries: int = 0
    ) -> None:
        super().__init__()
        if threads < 1:
            raise ValueError("threads must be >= 1")
        if task_retries < 0:
            raise ValueError("task_retries must be >= 0")
        self.threads = threads
        self.task_retries = task_retries
        self.max_in_flight = max_in_flight or threads
        self._pool: ThreadPoolExecutor | None = None

    def _execute(self, factory: WorkerFactory, tasks: Iterable[Any]) -> Iterator[Any]:
        worker = factory()
        self._stats.workers_started += 1
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="lakescore")
        pending: dict[Future[Any], tuple[Any, int]] = {}  # future -> (task, attempt)
        task_iter = iter(tasks)
        exhausted = False
        try:
            while True:
                while not exhausted and len(pending) < self.max_in_flight:
                    task = next(task_iter, _DONE)
                    if task is _DONE:
                        exhausted = True
                        break
                    pending[self._pool.submit(worker, task)] = (task, 0)
                    self._stats.tasks_submitted += 1
                if not pending:
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    task, attempt = pending.pop(future)
                    error = future.exception()
                    if error is not None and attempt < self.task_retries:
                        log.warning("task %r raised (%s); retrying", task, error)
                        self._stats.tasks_retried += 1
                        pending[self._pool.submit(worker, task)] = (task, attempt + 1)
                    elif error is not None:
                        self._stats.tasks_failed += 1
                        raise TaskFailed(task, error) from error
                    else:
                        yield future.result()
        finally:
            for future in pending:
                future.cancel()
            # Let running tasks finish so no thread writes after the caller moved on.
            wait(pending)

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
