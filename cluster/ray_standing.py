"""Standing Ray actors: a pool that outlives each run inside a ``keep_actors()`` block.

Without it every run starts its actors and each loads its kernel: on a small job that
start-up is most of Ray's overhead (see benchmarks/README.md, "Ray overhead"). A Python
backfill that scores many runs in one driver process can hold its actors instead::

    with cluster.keep_actors():
        for day in days:
            engine.score(model, f"lake/day={day}", sink, cluster="ray")

Between runs the idle actors keep their CPUs reserved (and a kernel loaded), so the
block is opt-in: leaving it kills them, and stops a local Ray a run inside it started.
An actor is reused only with the same resources and environment; its next run gives it
the new worker factory, and a scoring worker finds its kernel in its process's memory.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("lakescore.cluster.ray")


@dataclass(eq=False)
class Standing:
    """An idle actor: its handle, the options it was made with, the CPUs/GPUs it holds."""

    handle: Any
    device: str
    key: str
    cpus: float
    gpus: float


@dataclass
class _Pool:
    job_id: str = ""  # the Ray driver job the actors belong to (they die with it)
    idle: list[Standing] = field(default_factory=list)
    owns_ray: bool = False  # a run inside the block started (or connected) Ray


_pool: _Pool | None = None


@contextlib.contextmanager
def keep_actors() -> Iterator[None]:
    """Ray actors outlive each run in this block and serve the next; see the module."""
    global _pool
    if _pool is not None:  # nested: the outer block keeps them
        yield
        return
    _pool = pool = _Pool()
    try:
        yield
    finally:
        _pool = None
        if pool.idle or pool.owns_ray:
            import ray

            if ray.is_initialized() and _job_id(ray) == pool.job_id:
                for actor in pool.idle:
                    ray.kill(actor.handle)
            if pool.owns_ray and ray.is_initialized():
                ray.shutdown()


def active() -> bool:
    return _pool is not None


def take_all(ray: Any) -> list[Standing]:
    """Every idle actor of this Ray job (those of an earlier, stopped Ray are dropped)."""
    if _pool is None:
        return []
    idle, _pool.idle = _pool.idle, []
    return idle if _pool.job_id == _job_id(ray) else []


def give_back(ray: Any, actors: list[Standing]) -> bool:
    """Keep ``actors`` for the next run; False (keep nothing) outside a block."""
    if _pool is None:
        return False
    job = _job_id(ray)
    if _pool.job_id != job:
        _pool.idle, _pool.job_id = [], job
    _pool.idle.extend(actors)
    return True


def defer_shutdown() -> bool:
    """Inside a block, the Ray a run started stops when the block ends: True if so."""
    if _pool is None:
        return False
    _pool.owns_ray = True
    return True


def _job_id(ray: Any) -> str:
    return str(ray.get_runtime_context().get_job_id())
