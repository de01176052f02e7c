"""The Ray executor: tasks run on a pool of Ray actors, each holding one worker.

Each actor gets the run's worker factory once (``ray.put`` ships it once for the pool) and
calls it on its first task (that is where a scoring worker loads its kernel: the factory
pickles only a small config), then runs the run's tasks (several at once: below). Inside
:func:`cluster.keep_actors` the actors outlive the run and serve the next one with no
start-up (:mod:`cluster.ray_standing`). Before the actors go, each reports its work, CPU
seconds and peak RSS (``stats.extra["actor_stats"]``).

An actor of ``C`` CPUs runs ``C`` tasks at once in threads, sharing one worker and one
kernel pool of ``C`` threads (the local executor's design, in each actor's process): one
process start, one import and one kernel per actor, and the last tasks of a run still
use every CPU the actor holds. The driver keeps at most ``tasks_per_actor`` tasks per
running slot queued on each actor and hands the
next task to whichever actor has a free slot when a result comes back (``ray.wait``), so
a faster actor takes more of the work and memory stays bounded however many tasks a run
has.

Failures: a task that raises is run again (on whichever actor is free) up to
``task_retries`` times, then :class:`~cluster.TaskFailed` carries the exception it raised
(not Ray's wrapper). A task whose actor process died (killed, or its node lost) is handed
to another actor, up to ``max_retries`` times; the dead actor is replaced.

Sizing (:mod:`cluster.ray_sizing`): the pool is sized to the CPUs (and GPUs) the cluster
has free when the run starts, and every actor fits in them, so no task can wait on an
actor that will never be scheduled: one actor of all the free CPUs on a one-node cluster,
one per CPU on several, unless ``cpus_per_actor`` says. Reads happen inside the actor's
task, so an actor never waits on another actor for its input.

GPU actors: with ``gpu="auto"`` (or ``"only"``) one actor per free GPU reserves
``gpus_per_actor`` GPUs and builds its worker with ``factory(device="gpu")`` (a scoring
worker compiles the CUDA kernel there); CPU actors call ``factory()``. Both pools pull from
the same queue, so the faster pool takes more of the work.

Ray is imported only when a Ray executor runs (``import cluster`` stays cheap).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from cluster import huge_pages, ray_sizing, ray_standing
from cluster.arrow_allocator import allocator_env
from cluster.executor import BaseExecutor, TaskFailed, WorkerFactory
from cluster.ray_actor import actor_class
from cluster.ray_connection import connect, import_ray, is_ray_address, machine_cpus

__all__ = ["GPU_MODES", "RayExecutor", "import_ray", "is_ray_address", "machine_cpus"]

log = logging.getLogger("lakescore.cluster.ray")

_NO_TASK = object()  # the task iterator is exhausted (a task may be any object, None too)
_READY = object()  # marks the ``prepare()`` call of an actor that is starting


#: What the ``gpu`` option accepts: GPU actors where GPUs are free, none, or only those.
GPU_MODES = ("auto", "never", "only")


@dataclass(eq=False)
class _Slot:
    """One actor of the pool, as the driver sees it."""

    handle: Any
    device: str = "cpu"
    key: str = ""  # the options it was made with (a standing actor is reused by them)
    cpus: float = 0.0
    gpus: float = 0.0
    ready: bool = False
    alive: bool = True
    slots: int = 1  # tasks it runs at once
    in_flight: int = 0
    done: int = 0
    asked: float = field(default_factory=time.perf_counter)  # when it was made or reused


@dataclass(eq=False)
class _Call:
    """What an object ref in flight stands for: an actor's ``ready()`` or one task."""

    slot: _Slot
    task: Any = _READY
    attempt: int = 0


@dataclass
class _Run:
    """The state of one ``execute`` call."""

    slots: list[_Slot] = field(default_factory=list)  # every actor started, dead ones too
    calls: dict[Any, _Call] = field(default_factory=dict)  # object refs in flight
    queue: deque[tuple[Any, int]] = field(default_factory=deque)  # (task, attempt) to run
    exhausted: bool = False  # the task iterator is used up
    free_cpus: float = 0.0  # CPUs the cluster had free when the run started
    free_gpus: float = 0.0  # GPUs likewise
    start_error: str = ""  # why the last actor that failed to start failed

    def live(self) -> list[_Slot]:
        return [s for s in self.slots if s.alive]


class RayExecutor(BaseExecutor):
    """Runs tasks on a pool of Ray actors.

    Parameters
    ----------
    address
        Cluster to connect to (``auto``, ``ray://HOST:PORT``, ``HOST:PORT``); never shut
        down by this executor. ``None``: a local Ray sized to the machine, started on
        first use and shut down by :meth:`shutdown`. Either way, a Ray this process is
        already connected to is used as it is.
    num_actors
        Actors in the pool; by default as many as fit in the free CPUs.
    cpus_per_actor
        CPUs each actor reserves, and the tasks it runs at once (its whole part: 2.5 CPUs
        run 2) and the threads of its kernel; lowered to what the cluster has free, so
        every actor of the pool can be scheduled at once. Whole nodes (``C`` = a node's
        CPUs) mean one process, one import and one kernel per node. ``None``: on a
        cluster of one node (``--cluster ray``, a lone ``ray start --head``), one actor of
        all its free CPUs; on several nodes, one CPU per actor (a larger actor might fit
        on none of them: each node's free CPUs are not known here).
    tasks_per_actor
        Tasks queued on one actor per task it runs at once (running and waiting): the
        bound on tasks in flight is ``num_actors * slots * tasks_per_actor``.
    max_retries
        Times a task whose actor died is run again on another actor.
    task_retries
        Times a task that raised is run again before the run fails.
    gpu
        ``auto``: one GPU actor per ``gpus_per_actor`` free GPUs beside the CPU actors;
        ``never``: CPU actors only; ``only``: GPU actors only (a cluster without a free
        GPU fails the run).
    gpus_per_actor
        GPUs each GPU actor reserves.
    gpu_actor_cpus
        CPUs each GPU actor reserves (it reads and writes the data its GPU scores).
    gpu_env
        Environment variables for GPU actors only (e.g. ``NUMBA_ENABLE_CUDASIM=1`` to run
        the CUDA kernel in Numba's simulator on a cluster that declares GPUs it lacks).
    start_timeout_s
        How long the run may wait with no task running for an actor to start.
    drain_timeout_s
        On failure or early exit, how long to let running tasks finish before the actors
        are killed (queued tasks are cancelled at once).
    release_timeout_s
        How long to wait, once the actors are killed, for their CPUs to be free again.
    init_options
        Further ``ray.init`` keyword arguments when this executor starts or connects.
    """

    name = "ray"

    def __init__(
        self,
        *,
        address: str | None = None,
        num_actors: int | None = None,
        cpus_per_actor: float | None = None,
        tasks_per_actor: int = 2,
        max_retries: int = 3,
        task_retries: int = 0,
        gpu: str = "auto",
        gpus_per_actor: float = 1.0,
        gpu_actor_cpus: float = 1.0,
        gpu_env: dict[str, str] | None = None,
        start_timeout_s: float = 300.0,
        drain_timeout_s: float = 60.0,
        release_timeout_s: float = 5.0,
        init_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if num_actors is not None and num_actors < 1:
            raise ValueError("num_actors must be >= 1")
        if cpus_per_actor is not None and cpus_per_actor <= 0:
            raise ValueError("cpus_per_actor must be > 0")
        if tasks_per_actor < 1:
            raise ValueError("tasks_per_actor must be >= 1")
        if max_retries < 0 or task_retries < 0:
            raise ValueError("max_retries and task_retries must be >= 0")
        if gpu not in GPU_MODES:
            raise ValueError(f"gpu must be one of {', '.join(GPU_MODES)}, got {gpu!r}")
        if gpus_per_actor <= 0 or gpu_actor_cpus < 0:
            raise ValueError("gpus_per_actor must be > 0 and gpu_actor_cpus >= 0")
        self.address = address
        self.num_actors = num_actors
        self.cpus_per_actor = cpus_per_actor
        self.tasks_per_actor = tasks_per_actor
        self.max_retries = max_retries
        self.task_retries = task_retries
        self.gpu = gpu
        self.gpus_per_actor = gpus_per_actor
        self.gpu_actor_cpus = gpu_actor_cpus
        self.gpu_env = dict(gpu_env or {})
        self.start_timeout_s = start_timeout_s
        self.drain_timeout_s = drain_timeout_s
        self.release_timeout_s = release_timeout_s
        self.init_options = dict(init_options or {})
        self._owns_ray = False

    # --- connection ----------------------------------------------------------------------

    def start(self) -> None:
        """Connect to Ray (or start a local Ray); does nothing when already connected.

        Raises ``ValueError`` when Ray is not installed and ``ConnectionError`` when the
        address cannot be reached.
        """
        if connect(self.address, self.init_options):
            self._owns_ray = True  # a local Ray to stop, or a connection to drop

    def shutdown(self) -> None:
        """Stop the local Ray this executor started, or drop the connection it made (the
        cluster itself keeps running); a Ray it found connected is left alone."""
        if self._owns_ray:
            self._owns_ray = False
            if not ray_standing.defer_shutdown():  # in keep_actors(): stops at its end
                import_ray().shutdown()

    # --- execution -----------------------------------------------------------------------

    def _execute(self, factory: WorkerFactory, tasks: Iterable[Any]) -> Iterator[Any]:
        run = _Run()
        source = iter(tasks)
        if not self._has_work(run, source):  # no task: no actor, no Ray
            return
        self.start()
        ray = import_ray()
        # Idle standing actors (``keep_actors``) hold CPUs that are this run's to use.
        standing = ray_standing.take_all(ray)
        free = ray.available_resources()
        run.free_cpus = free.get("CPU", 0.0) + sum(a.cpus for a in standing)
        run.free_gpus = free.get("GPU", 0.0) + sum(a.gpus for a in standing)
        gpu_actors, gpu_cpus = self._gpu_pool_size(run.free_cpus, run.free_gpus)
        if self.gpu == "only" and gpu_actors == 0:
            _kill(ray, standing)
            self._fail_to_start(run, "no GPU is free on the Ray cluster (backend cuda)")
        if self.gpu == "only":
            num_actors, cpus = 0, 0.0
        else:
            # The nodes are listed only when the pool's size depends on them.
            one_node = self.cpus_per_actor is None and ray_sizing.one_node(ray)
            num_actors, cpus = self._pool_size(run.free_cpus - gpu_actors * gpu_cpus, one_node)
        # The environment is set by the actor itself before it imports anything (not as a
        # runtime_env: one of those keeps Ray from handing the actor a worker process it
        # started ahead, and a process start is most of an actor's start-up).
        env = {**allocator_env(), **huge_pages.process_env()}
        options: dict[str, dict[str, Any]] = {
            "cpu": {
                "num_cpus": cpus,
                "max_concurrency": ray_sizing.slots(cpus),
                "env": {"NUMBA_NUM_THREADS": str(ray_sizing.slots(cpus)), **env},
            },
            "gpu": {
                "num_cpus": gpu_cpus,
                "num_gpus": self.gpus_per_actor,
                "env": {"NUMBA_NUM_THREADS": str(max(1, int(gpu_cpus))), **env, **self.gpu_env},
            },
        }
        keys = {device: repr(sorted(opts.items())) for device, opts in options.items()}
        tasks_at_once = {d: opts.get("max_concurrency", 1) for d, opts in options.items()}
        self._stats.extra.update(actors=num_actors, cpus_per_actor=cpus, gpu_actors=gpu_actors)
        log.info(
            "ray: %d CPU actor(s) of %.4g CPU(s), %d GPU actor(s)", num_actors, cpus, gpu_actors
        )
        # The factory is shipped once; each actor's prepare() reads it from the store.
        factory_ref = ray.put(factory)

        def prepare(slot: _Slot) -> None:
            run.slots.append(slot)
            run.calls[slot.handle.prepare.remote(factory_ref, slot.device)] = _Call(slot)

        def spawn(device: str = "cpu") -> None:
            opts = dict(options[device])
            env = opts.pop("env")
            handle = (
                actor_class()
                # a dead actor is replaced here, so its tasks are counted
                .options(max_restarts=0, max_task_retries=0, **opts)
                .remote(env, tasks_at_once[device])
            )
            cpus, gpus = opts["num_cpus"], opts.get("num_gpus", 0)
            prepare(_Slot(handle, device, keys[device], cpus, gpus, slots=tasks_at_once[device]))
            self._stats.workers_started += 1

        try:
            wanted = {"gpu": gpu_actors, "cpu": num_actors}
            for actor in list(standing):  # reuse the standing actors that fit this run
                if wanted[actor.device] > 0 and actor.key == keys[actor.device]:
                    wanted[actor.device] -= 1
                    standing.remove(actor)
                    slot = _Slot(
                        actor.handle, actor.device, actor.key, actor.cpus, actor.gpus,
                        slots=tasks_at_once[actor.device],
                    )  # fmt: skip
                    prepare(slot)
                    self._stats.extra["actors_reused"] = (
                        self._stats.extra.get("actors_reused", 0) + 1
                    )
            _kill(ray, standing)  # the rest do not fit: free their CPUs for new actors
            for device in ("gpu", "cpu"):
                for _ in range(wanted[device]):
                    spawn(device)
            while True:
                self._fill(run, source)
                running = sum(call.task is not _READY for call in run.calls.values())
                if running == 0:
                    if not self._has_work(run, source):
                        return
                    if not run.live():
                        self._fail_to_start(run, f"no Ray actor could start: {run.start_error}")
                # With nothing running, the run waits for an actor to start: bounded.
                timeout = self.start_timeout_s if running == 0 else None
                done, _ = ray.wait(list(run.calls), num_returns=1, timeout=timeout)
                if not done:
                    self._fail_to_start(run, f"no Ray actor started within {timeout:g} s")
                for ref in done:
                    call = run.calls.pop(ref)
                    if call.task is _READY:
                        self._on_ready(ray, run, ref, call)
                        continue
                    ok, value = self._outcome(ray, run, ref, call, spawn)
                    if ok:
                        yield value
        finally:
            self._stop(ray, run)

    def _pool_size(self, free_cpus: float, one_node: bool = False) -> tuple[int, float]:
        return ray_sizing.cpu_pool(
            free_cpus,
            num_actors=self.num_actors,
            cpus_per_actor=self.cpus_per_actor,
            one_node=one_node,
        )

    def _gpu_pool_size(self, free_cpus: float, free_gpus: float) -> tuple[int, float]:
        return ray_sizing.gpu_pool(
            free_cpus,
            free_gpus,
            mode=self.gpu,
            gpus_per_actor=self.gpus_per_actor,
            actor_cpus=self.gpu_actor_cpus,
        )

    def _has_work(self, run: _Run, source: Iterator[Any]) -> bool:
        """Whether a task is waiting to run (pulling one from ``source`` if need be)."""
        if not run.queue and not run.exhausted:
            task = next(source, _NO_TASK)
            if task is _NO_TASK:
                run.exhausted = True
            else:
                self._stats.tasks_submitted += 1
                run.queue.append((task, 0))
        return bool(run.queue)

    def _fill(self, run: _Run, source: Iterator[Any]) -> None:
        """Queue tasks on started actors with a free slot, the least busy first."""
        while True:
            free = [
                s for s in run.live() if s.ready and s.in_flight < self.tasks_per_actor * s.slots
            ]
            if not free or not self._has_work(run, source):
                return
            task, attempt = run.queue.popleft()
            slot = min(free, key=lambda s: s.in_flight / s.slots)
            slot.in_flight += 1
            run.calls[slot.handle.run.remote(task)] = _Call(slot, task, attempt)

    def _on_ready(self, ray: Any, run: _Run, ref: Any, call: _Call) -> None:
        try:
            ray.get(ref)
        except ray.exceptions.RayError as exc:
            # An actor that cannot start is not replaced: the next one would fail alike.
            run.start_error = _first_line(exc)
            log.warning("ray: an actor failed to start: %s", run.start_error)
            call.slot.alive = False
            ray.kill(call.slot.handle)  # alive if only the factory failed to unpickle
            return
        call.slot.ready = True
        # Spawn (or reuse) -> ready: process start, imports, the factory's transfer.
        seconds = round(time.perf_counter() - call.slot.asked, 3)
        extra = self._stats.extra
        extra["actor_start_seconds"] = max(extra.get("actor_start_seconds", 0.0), seconds)

    def _outcome(
        self, ray: Any, run: _Run, ref: Any, call: _Call, spawn: Callable[[str], None]
    ) -> tuple[bool, Any]:
        """``(True, result)``, or ``(False, None)`` for a task queued again; raises
        :class:`TaskFailed` for a task that failed for good."""
        slot = call.slot
        slot.in_flight -= 1
        try:
            result = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # the task raised
            cause = exc.cause if isinstance(exc.cause, BaseException) else exc
            if call.attempt < self.task_retries:
                log.warning("ray: task %r raised (%s); retrying", call.task, _first_line(cause))
                self._stats.tasks_retried += 1
                run.queue.appendleft((call.task, call.attempt + 1))
                return False, None
            self._stats.tasks_failed += 1
            raise TaskFailed(call.task, cause) from cause
        except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as exc:
            if slot.alive:  # the first of its tasks to report the death replaces it
                slot.alive = False
                ray.kill(slot.handle)
                spawn(slot.device)
            if call.attempt >= self.max_retries:
                self._stats.tasks_failed += 1
                raise TaskFailed(call.task, exc) from exc
            log.warning("ray: task %r lost its actor (%s); retrying", call.task, _first_line(exc))
            self._stats.tasks_retried += 1
            run.queue.appendleft((call.task, call.attempt + 1))
            return False, None
        except ray.exceptions.RayError as exc:  # e.g. the result was lost with its node
            self._stats.tasks_failed += 1
            raise TaskFailed(call.task, exc) from exc
        slot.done += 1
        return True, result

    def _fail_to_start(self, run: _Run, why: str) -> None:
        """No actor can take the waiting tasks (there is one): fail the first of them."""
        task = run.queue[0][0]
        error = RuntimeError(why)
        self._stats.tasks_failed += 1
        raise TaskFailed(task, error) from error

    def _stop(self, ray: Any, run: _Run) -> None:
        """Cancel queued tasks, let running ones finish, then kill every actor."""
        tasks = [ref for ref, call in run.calls.items() if call.task is not _READY]
        for ref in tasks:
            ray.cancel(ref)  # a queued actor task never starts; a running one finishes
        left: list[Any] = []
        if tasks:
            _, left = ray.wait(tasks, num_returns=len(tasks), timeout=self.drain_timeout_s)
            if left:
                log.warning(
                    "ray: %d task(s) still running after %g s; killing their actors",
                    len(left),
                    self.drain_timeout_s,
                )
        live = run.live()
        # Inside keep_actors(), live actors with nothing left running (starting ones too:
        # the next run's prepare() queues behind their start) stay for the next run;
        # every other actor is killed.
        busy = {run.calls[ref].slot for ref in left}
        kept = [s for s in live if s not in busy]
        self._collect_actor_stats(ray, kept)
        standing = [ray_standing.Standing(s.handle, s.device, s.key, s.cpus, s.gpus) for s in kept]
        if not ray_standing.give_back(ray, standing):
            kept = []
        for slot in live:
            if slot not in kept:
                ray.kill(slot.handle)
        # Wait (briefly) for the killed actors' CPUs to come back, so a run that follows
        # at once sizes its pool to the whole cluster again.
        held = sum(s.cpus for s in kept)
        deadline = time.monotonic() + self.release_timeout_s
        while (
            ray.available_resources().get("CPU", 0.0) < run.free_cpus - held - 1e-6
            and time.monotonic() < deadline
        ):
            time.sleep(0.02)
        self._stats.extra["tasks_by_actor"] = sorted((s.done for s in run.slots), reverse=True)
        self._stats.extra["tasks_by_device"] = {
            device: sum(s.done for s in run.slots if s.device == device)
            for device in ("cpu", "gpu")
        }
        run.calls.clear()

    def _collect_actor_stats(self, ray: Any, live: list[_Slot], timeout: float = 5.0) -> None:
        """Each live actor's ``stats()`` (this run's work, its process's CPU and peak RSS),
        as ``extra["actor_stats"]`` keyed by ``node:pid``; an actor that does not answer in
        ``timeout`` seconds is left out."""
        refs = {s.handle.stats.remote(): s for s in live if s.ready}
        if not refs:
            return
        done, _ = ray.wait(list(refs), num_returns=len(refs), timeout=timeout)
        by_actor = self._stats.extra.setdefault("actor_stats", {})
        for ref in done:
            try:
                doc = ray.get(ref)
            except ray.exceptions.RayError:
                continue
            by_actor[f"{doc['node']}:{doc['pid']}"] = doc


def _kill(ray: Any, actors: list[Any]) -> None:
    for actor in actors:
        ray.kill(actor.handle)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
