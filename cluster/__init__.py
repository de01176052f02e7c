"""Executors: where tasks run. ``cluster`` imports ``kernels`` at most, never ``engine``."""

from cluster.executor import BaseExecutor, Executor, ExecutorStats, TaskFailed, WorkerFactory
from cluster.local import LocalExecutor

__all__ = [
    "BaseExecutor",
    "Executor",
    "ExecutorStats",
    "LocalExecutor",
    "TaskFailed",
    "WorkerFactory",
]


def make_executor(spec: str, *, threads: int = 2) -> Executor:
    """An executor from the ``--cluster`` value."""
    if spec == "local":
        return LocalExecutor(threads=threads)
    raise ValueError(f"unknown cluster {spec!r}; expected 'local'")


__all__ += ["make_executor"]
