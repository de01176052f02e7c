"""Executors: where tasks run. ``cluster`` imports ``kernels`` at most, never ``engine``."""

from cluster.executor import BaseExecutor, Executor, ExecutorStats, TaskFailed, WorkerFactory
from cluster.local import LocalExecutor
from cluster.ray_standing import keep_actors  # imports no Ray until a block ends

__all__ = [
    "BaseExecutor",
    "Executor",
    "ExecutorStats",
    "LocalExecutor",
    "TaskFailed",
    "WorkerFactory",
]


def make_executor(
    spec: str,
    *,
    threads: int = 2,
    actor_cpus: int | None = None,
    gpu: str = "auto",
    task_retries: int = 0,
) -> Executor:
    """An executor from the ``--cluster`` value.

    ``local``: threads in this process (``threads`` of them). ``ray``: Ray actors on a
    local Ray sized to the machine, started when the first task runs and stopped by
    ``shutdown()``. ``auto``, ``ray://HOST:PORT`` or ``HOST:PORT``: Ray actors on an
    existing cluster, connected to here (``shutdown()`` disconnects; the cluster keeps
    running). A Ray this process is already connected to is used as it is. ``actor_cpus``
    is the CPUs each Ray actor reserves (and the tasks it runs at once; ``None``: a
    one-node cluster's free CPUs, else 1). ``gpu`` is the
    Ray executor's GPU pool mode (``auto``, ``never``, ``only``; see ``RayExecutor``), and
    ``task_retries`` how often a task that raised runs again before the run fails.

    Raises ``ValueError`` for an unknown value, a missing ``ray`` package or a cluster
    that cannot be reached.
    """
    if spec == "local":
        return LocalExecutor(threads=threads, task_retries=task_retries)
    from cluster.ray_connection import import_ray, is_ray_address
    from cluster.ray_executor import RayExecutor

    if spec not in ("ray", "auto") and not is_ray_address(spec):
        raise ValueError(
            f"unknown cluster {spec!r}; expected 'local', 'ray', 'auto', "
            "'ray://HOST:PORT' or 'HOST:PORT'"
        )
    import_ray()  # a missing package is a ValueError naming the extra to install
    if spec == "ray":  # started by the first task: a run that fails before leaves nothing
        return RayExecutor(cpus_per_actor=actor_cpus, gpu=gpu, task_retries=task_retries)
    executor = RayExecutor(
        address=spec, cpus_per_actor=actor_cpus, gpu=gpu, task_retries=task_retries
    )
    try:  # connect now: an unreachable cluster is bad input, found before any work
        executor.start()
    except ConnectionError as exc:
        raise ValueError(str(exc)) from None
    return executor


__all__ += ["keep_actors", "make_executor"]
