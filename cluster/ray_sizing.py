"""How big a run's Ray actor pool is: pure arithmetic over the cluster's free resources.

Every actor of the pool must fit in what is free when the run starts, so that no task
waits on an actor that will never be scheduled (issue: a pool that hangs on 2 CPUs).
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("lakescore.cluster.ray")


def cpu_pool(
    free_cpus: float, *, num_actors: int | None, cpus_per_actor: float | None, one_node: bool
) -> tuple[int, float]:
    """CPU actors and the CPUs each reserves, the whole pool within ``free_cpus``.

    ``cpus_per_actor=None``: on one node, one actor of all its free CPUs (one process,
    one import, one kernel); on several, one CPU per actor, since a larger actor might fit
    on none of them (each node's free CPUs are not known here).
    """
    per_actor = cpus_per_actor or (max(1.0, free_cpus) if one_node else 1.0)
    n = num_actors or max(1, int(free_cpus // per_actor))
    cpus = min(per_actor, free_cpus / n)
    if cpus <= 0:
        log.warning("ray: no CPU is free; %d actor(s) run without reserving one", n)
        return n, 0.0
    return n, round(cpus, 4)


def gpu_pool(
    free_cpus: float, free_gpus: float, *, mode: str, gpus_per_actor: float, actor_cpus: float
) -> tuple[int, float]:
    """GPU actors and the CPUs each reserves, leaving at least one CPU actor room (unless
    ``mode`` is ``only``; ``never``: none)."""
    if mode == "never":
        return 0, 0.0
    n = int(free_gpus // gpus_per_actor + 1e-9)
    if n == 0:
        return 0, 0.0
    share = free_cpus / (n + (mode != "only"))
    return n, round(min(actor_cpus, share), 4)


def slots(cpus: float) -> int:
    """Tasks an actor of ``cpus`` CPUs runs at once: its whole CPUs, at least one."""
    return max(1, int(cpus))


def one_node(ray: Any) -> bool:
    """Whether the cluster has one live node (where its free CPUs are that node's)."""
    try:
        return sum(bool(node.get("Alive")) for node in ray.nodes()) == 1
    except Exception as exc:  # a client connection that cannot list nodes: assume several
        log.info("ray: cannot list the cluster's nodes (%s)", str(exc).strip()[:200])
        return False
