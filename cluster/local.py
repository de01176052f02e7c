"""The local executor: a bounded thread pool in this process (the default).

One worker (one compiled kernel) is shared by all threads: kernels serialise their own
parallel launches, so while one thread scores, the others read and decode Parquet and
write parts (pyarrow releases the GIL), which keeps every core busy without copying the
model. At most ``max_in_flight`` tasks are submitted at once, so memory stays bounded
however many tasks a run has.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from cluster.executor import BaseExecutor, TaskFailed, WorkerFactory

_DONE = object()  # end of the task iterator (a task may be any object, None included)


class LocalExecutor(BaseExecutor):
    name = "local"

    def __init__(self, *, threads: int = 2, max_in_flight: int | None = None) -> None:
        super().__init__()
        if threads < 1:
            raise ValueError("threads must be >= 1")
        self.threads = threads
        self.max_in_flight = max_in_flight or threads
        self._pool: ThreadPoolExecutor | None = None

    def _execute(self, factory: WorkerFactory, tasks: Iterable[Any]) -> Iterator[Any]:
        worker = factory()
        self._stats.workers_started += 1
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="lakescore")
        pending: dict[Future[Any], Any] = {}
        task_iter = iter(tasks)
        exhausted = False
        try:
            while True:
                while not exhausted and len(pending) < self.max_in_flight:
                    task = next(task_iter, _DONE)
                    if task is _DONE:
                        exhausted = True
                        break
                    pending[self._pool.submit(worker, task)] = task
                    self._stats.tasks_submitted += 1
                if not pending:
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    task = pending.pop(future)
                    error = future.exception()
                    if error is not None:
                        self._stats.tasks_failed += 1
                        raise TaskFailed(task, error) from error
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
