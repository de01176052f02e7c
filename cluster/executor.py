"""The ``Executor`` protocol: run one worker function over many small tasks.

The coordinator hands an executor a *worker factory* (a picklable callable that builds the
per-worker state, e.g. a compiled kernel, and returns the function to apply to each task)
and the tasks. Results come back as tasks finish, in any order. Executors know nothing of
scoring: ``cluster`` never imports ``engine``.

Metrics are kept by :class:`BaseExecutor`, not by each implementation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: ``factory()`` builds a worker; executors that place workers on GPUs call
#: ``factory(device="gpu")`` there, so a factory used with GPU pools must accept it.
WorkerFactory = Callable[..., Callable[[Any], Any]]


class TaskFailed(RuntimeError):
    """A task raised; ``__cause__`` is the worker's exception."""

    def __init__(self, task: object, cause: BaseException) -> None:
        super().__init__(f"task {task!r} failed: {cause}")
        self.task = task
        self.cause = cause


@dataclass
class ExecutorStats:
    tasks_submitted: int = 0
    tasks_succeeded: int = 0
    tasks_failed: int = 0
    tasks_retried: int = 0
    workers_started: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class Executor(Protocol):
    name: str

    def execute(self, factory: WorkerFactory, tasks: Iterable[Any]) -> Iterator[Any]:
        """Apply ``factory()`` 's function to every task; yield results as they finish.

        Raises :class:`TaskFailed` on the first task that fails (after any retries the
        executor makes) and stops starting new tasks.
        """
        ...

    def shutdown(self) -> None: ...

    @property
    def stats(self) -> ExecutorStats: ...


class BaseExecutor:
    """Records metrics around an implementation's ``_execute``."""

    name = "base"

    def __init__(self) -> None:
        self._stats = ExecutorStats()

    @property
    def stats(self) -> ExecutorStats:
        return self._stats

    def execute(self, factory: WorkerFactory, tasks: Iterable[Any]) -> Iterator[Any]:
        start = time.perf_counter()
        try:
            for result in self._execute(factory, tasks):
                self._stats.tasks_succeeded += 1
                yield result
        finally:
            self._stats.seconds += time.perf_counter() - start

    def _execute(self, factory: WorkerFactory, tasks: Iterable[Any]) -> Iterator[Any]:
        raise NotImplementedError

    def shutdown(self) -> None:
        """Release workers; safe to call twice."""

    def __enter__(self) -> BaseExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
