"""The Ray executor: actors that build their worker once (and run one task per CPU at
once), bounded in-flight tasks, the original exception on failure, retries after a killed
actor, no hang on 2 CPUs, standing actors and what comes back to the driver. The engine on
Ray and the choice of cluster: ``test_cluster_ray_engine.py``.

One Ray (2 CPUs) is started for the module; the CLI tests start or connect their own.
Workers record what they did in files, since an actor shares no memory with the test.
"""

from __future__ import annotations

import functools
import os
import pickle
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from scoring_helpers import (  # noqa: E402
    ID,
    CountingTasks,
    write_lake,
)

import cluster  # noqa: E402
from cluster import TaskFailed  # noqa: E402
from cluster.arrow_allocator import allocator_env  # noqa: E402
from cluster.ray_executor import RayExecutor  # noqa: E402
from engine.coordinator import run_job  # noqa: E402
from engine.errors import BadInputError  # noqa: E402
from engine.spec import JobSpec  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180), pytest.mark.usefixtures("local_ray")]

# Actors cannot import this test module: ship its functions and classes by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

NO_TASK = -1


@dataclass(frozen=True)
class Probe:
    """A worker factory whose workers leave files in ``root``: ``factory-<pid>-*`` per
    factory call (holding the actor's ``NUMBA_NUM_THREADS`` and ``MIMALLOC_PURGE_DELAY``),
    ``started-<task>-*`` and
    ``finished-<task>-*`` per task. The worker raises on ``fail_on``, and kills its own
    process on ``crash_on`` (the first time only, unless ``crash_always``). The first
    actor to build a worker is slow when ``slow_seconds`` is set."""

    root: str
    seconds: float = 0.01
    slow_seconds: float = 0.0
    fail_on: int = NO_TASK
    crash_on: int = NO_TASK
    crash_always: bool = False
    #: each task first waits (up to a minute) until this many workers were built
    wait_for_workers: int = 0

    def __call__(self):
        pid = os.getpid()
        threads = os.environ.get("NUMBA_NUM_THREADS", "unset")
        purge = os.environ.get("MIMALLOC_PURGE_DELAY", "unset")
        Path(self.root, f"factory-{pid}-{uuid.uuid4().hex}").write_text(f"{threads} {purge}")
        seconds = self.seconds
        if self.slow_seconds:
            try:  # the first actor to get here is the slow one
                with Path(self.root, "slow-actor").open("x") as fh:
                    fh.write(str(pid))
                seconds = self.slow_seconds
            except FileExistsError:
                pass
        return functools.partial(self.work, pid, seconds)

    def work(self, pid: int, seconds: float, task: int) -> tuple[str, int, int]:
        deadline = time.monotonic() + 60
        while len(files(Path(self.root), "factory")) < self.wait_for_workers:
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        Path(self.root, f"started-{task}-{uuid.uuid4().hex}").touch()
        if task == self.fail_on:
            raise ValueError(f"bad task {task}")
        if task == self.crash_on:
            marker = Path(self.root, f"crashed-{task}-{pid}")
            if self.crash_always or not any(Path(self.root).glob(f"crashed-{task}-*")):
                marker.touch()
                os._exit(1)
        time.sleep(seconds)
        Path(self.root, f"finished-{task}-{uuid.uuid4().hex}").touch()
        return ("done", task, pid)


def files(root: Path, prefix: str) -> list[str]:
    return sorted(p.name for p in root.glob(f"{prefix}-*"))


def tasks_in(root: Path, prefix: str) -> list[int]:
    return sorted(int(name.split("-")[1]) for name in files(root, prefix))


# --- the executor ------------------------------------------------------------------------


def test_every_task_once_bounded_and_the_faster_actor_takes_more(tmp_path: Path) -> None:
    probe = Probe(str(tmp_path), seconds=0.01, slow_seconds=0.3)
    tasks = CountingTasks(40)
    executor = RayExecutor(num_actors=2, tasks_per_actor=2)
    results = []
    for result in executor.execute(probe, tasks):
        results.append(result)
        assert tasks.pulled - len(results) <= 2 * 2  # the task list is read lazily
    executor.shutdown()

    assert sorted(r[1] for r in results) == list(range(40))
    assert all(r[0] == "done" for r in results)
    pids = {r[2] for r in results}
    assert len(pids) == 2  # both actors worked...
    factory_calls = files(tmp_path, "factory")
    assert len(factory_calls) == 2  # ...and each built its worker once
    assert {int(name.split("-")[1]) for name in factory_calls} == pids
    env = {(tmp_path / name).read_text() for name in factory_calls}
    # a kernel uses the CPU its actor reserved, not the machine; Arrow keeps freed pages
    assert env == {f"1 {allocator_env()['MIMALLOC_PURGE_DELAY']}"}
    slow_pid = int((tmp_path / "slow-actor").read_text())
    by_pid = {pid: sum(r[2] == pid for r in results) for pid in pids}
    fast = by_pid[(pids - {slow_pid}).pop()]
    assert fast > 3 * by_pid[slow_pid]  # whichever actor is free takes the next task
    stats = executor.stats
    assert stats.tasks_submitted == stats.tasks_succeeded == 40
    assert stats.tasks_retried == stats.tasks_failed == 0
    assert stats.workers_started == 2
    assert sorted(stats.extra["tasks_by_actor"]) == sorted(by_pid.values())
    assert ray.is_initialized()  # not this executor's Ray: left running


def test_an_actor_of_two_cpus_runs_two_tasks_at_once_on_one_worker(tmp_path: Path) -> None:
    probe = Probe(str(tmp_path), seconds=0.4)
    tasks = CountingTasks(6)
    executor = RayExecutor(num_actors=1, cpus_per_actor=2.0, tasks_per_actor=1)
    results = []
    for result in executor.execute(probe, tasks):
        results.append(result)
        assert tasks.pulled - len(results) <= 2  # one queued task per slot
    executor.shutdown()

    assert sorted(r[1] for r in results) == list(range(6))
    assert len({r[2] for r in results}) == 1  # one process...
    [factory_call] = files(tmp_path, "factory")  # ...one worker, built once by its slots
    assert (tmp_path / factory_call).read_text().split()[0] == "2"  # a kernel of 2 threads
    spans = {  # task -> (started, finished), from the files' times
        int(name.split("-")[1]): (tmp_path / name).stat().st_mtime_ns
        for name in files(tmp_path, "started")
    }
    ends = {
        int(n.split("-")[1]): (tmp_path / n).stat().st_mtime_ns for n in files(tmp_path, "finished")
    }
    overlapping = [
        (a, b) for a in spans for b in spans if a < b and spans[a] < ends[b] and spans[b] < ends[a]
    ]
    assert len(overlapping) >= 2  # two slots: tasks ran side by side
    [doc] = executor.stats.extra["actor_stats"].values()
    assert doc["slots"] == 2 and doc["tasks"] == 6
    assert executor.stats.extra["tasks_by_actor"] == [6]


def test_failure_is_the_original_exception_and_stops_the_run(tmp_path: Path) -> None:
    probe = Probe(str(tmp_path), seconds=0.05, fail_on=5)
    tasks = CountingTasks(60)
    executor = RayExecutor(num_actors=2, tasks_per_actor=2)
    got = []
    with pytest.raises(TaskFailed) as info:
        for result in executor.execute(probe, tasks):
            got.append(result[1])
    failure = info.value
    assert failure.task == 5
    assert type(failure.cause) is ValueError  # the worker's exception, not Ray's wrapper
    assert failure.cause.args == ("bad task 5",)
    assert failure.__cause__ is failure.cause
    assert 5 not in got
    assert tasks.pulled <= 5 + 1 + 2 * 2  # no more than the bound past the failed task
    started = tasks_in(tmp_path, "started")
    assert len(started) <= tasks.pulled < 60
    # Queued tasks were cancelled, running ones finished: nothing runs any more.
    assert tasks_in(tmp_path, "finished") == sorted(set(started) - {5})
    time.sleep(0.3)
    assert tasks_in(tmp_path, "started") == started
    assert executor.stats.tasks_failed == 1
    assert executor.stats.tasks_retried == 0


def test_a_task_whose_actor_was_killed_runs_again_elsewhere(tmp_path: Path) -> None:
    probe = Probe(str(tmp_path), seconds=0.02, crash_on=3)
    executor = RayExecutor(num_actors=2, tasks_per_actor=2)
    results = list(executor.execute(probe, range(12)))

    assert sorted(r[1] for r in results) == list(range(12))
    crashed = files(tmp_path, "crashed")
    assert len(crashed) == 1
    crashed_pid = int(crashed[0].split("-")[2])
    assert next(r[2] for r in results if r[1] == 3) != crashed_pid
    stats = executor.stats
    assert stats.tasks_retried >= 1  # task 3, and the one queued behind it if any
    assert stats.tasks_succeeded == 12
    assert stats.workers_started == 3  # the dead actor was replaced
    factory_pids = [name.split("-")[1] for name in files(tmp_path, "factory")]
    assert len(factory_pids) == len(set(factory_pids))  # once per actor, restarts too


def test_an_actor_of_two_slots_killed_mid_task_loses_no_task(tmp_path: Path) -> None:
    """Its process dies with a task on each slot and more queued: every one of them runs
    again on the replacement actor, and each task's result comes back once."""
    probe = Probe(str(tmp_path), seconds=0.1, crash_on=3)
    executor = RayExecutor(num_actors=1, cpus_per_actor=2.0)
    results = list(executor.execute(probe, range(10)))

    assert sorted(r[1] for r in results) == list(range(10))
    [crashed] = files(tmp_path, "crashed")
    assert {r[2] for r in results if r[1] >= 3} == {r[2] for r in results if r[1] == 3}
    assert next(r[2] for r in results if r[1] == 3) != int(crashed.split("-")[2])
    stats = executor.stats
    assert stats.tasks_retried >= 2  # task 3 and at least the one beside it
    assert stats.tasks_succeeded == 10
    assert stats.workers_started == 2


def test_retries_are_bounded(tmp_path: Path) -> None:
    probe = Probe(str(tmp_path), crash_on=0, crash_always=True)
    executor = RayExecutor(num_actors=1, cpus_per_actor=1.0, tasks_per_actor=1, max_retries=1)
    with pytest.raises(TaskFailed) as info:
        list(executor.execute(probe, range(3)))
    assert info.value.task == 0
    assert isinstance(info.value.cause, ray.exceptions.RayActorError)
    assert len(files(tmp_path, "crashed")) == 2  # the first run and one retry
    assert executor.stats.tasks_retried == 1
    assert executor.stats.tasks_failed == 1


def test_a_full_cluster_still_makes_progress(tmp_path: Path) -> None:
    """Every CPU is held by another actor: the pool shrinks to what is free (nothing
    here), runs unreserved instead of waiting forever, and finishes."""

    @ray.remote(num_cpus=2)
    class Hog:
        def ready(self) -> bool:
            return True

    hog = Hog.remote()
    ray.get(hog.ready.remote(), timeout=60)
    deadline = time.monotonic() + 30
    while ray.available_resources().get("CPU", 0) > 0 and time.monotonic() < deadline:
        time.sleep(0.1)  # the resource view lags the scheduler a little
    try:
        executor = RayExecutor()
        started = time.perf_counter()
        results = list(executor.execute(Probe(str(tmp_path)), range(6)))
        assert time.perf_counter() - started < 60
    finally:
        ray.kill(hog)
    assert sorted(r[1] for r in results) == list(range(6))
    assert executor.stats.extra["actors"] == 1
    assert executor.stats.extra["cpus_per_actor"] == 0.0


def _refuse_to_unpickle() -> None:
    raise RuntimeError("this factory cannot be built here")


class Unshippable:
    """A factory that no actor can receive (unpickling it raises)."""

    def __reduce__(self):
        return (_refuse_to_unpickle, ())

    def __call__(self):  # pragma: no cover - never reached
        raise AssertionError


def test_actors_that_cannot_start_fail_the_run() -> None:
    executor = RayExecutor(num_actors=2)
    with pytest.raises(TaskFailed) as info:
        list(executor.execute(Unshippable(), range(4)))
    assert info.value.task == 0
    assert "no Ray actor could start" in str(info.value.cause)
    assert executor.stats.workers_started == 2  # not replaced over and over


@pytest.mark.parametrize(
    ("free", "options", "expected"),
    [
        (2.0, {}, (2, 1.0)),
        (2.5, {}, (2, 1.0)),
        (0.5, {}, (1, 0.5)),
        (0.0, {}, (1, 0.0)),
        (2.0, {"num_actors": 4}, (4, 0.5)),
        (3.0, {"cpus_per_actor": 2.0}, (1, 2.0)),
        (8.0, {"cpus_per_actor": 2.0}, (4, 2.0)),
    ],
)
def test_the_pool_fits_in_the_free_cpus(
    free: float, options: dict[str, float], expected: tuple[int, float]
) -> None:
    assert RayExecutor(**options)._pool_size(free) == expected


@pytest.mark.parametrize(
    ("free", "options", "expected"),
    [
        (2.0, {}, (1, 2.0)),  # one node: one actor of all its free CPUs
        (7.5, {}, (1, 7.5)),
        (0.5, {}, (1, 0.5)),
        (0.0, {}, (1, 0.0)),
        (2.0, {"num_actors": 2}, (2, 1.0)),
        (4.0, {"cpus_per_actor": 1.0}, (4, 1.0)),
    ],
)
def test_on_one_node_the_pool_is_one_actor_of_its_free_cpus(
    free: float, options: dict[str, float], expected: tuple[int, float]
) -> None:
    assert RayExecutor(**options)._pool_size(free, one_node=True) == expected


def test_no_task_starts_no_actor(tmp_path: Path) -> None:
    executor = RayExecutor()
    assert list(executor.execute(Probe(str(tmp_path)), [])) == []
    assert executor.stats.workers_started == 0


def test_actor_cpus_must_be_a_whole_cpu_or_more(model_file: Path, lake: Path) -> None:
    for bad in (0, -1, 1.5, True):
        with pytest.raises(BadInputError, match=r"actor_cpus: must be an integer >= 1"):
            JobSpec(model=str(model_file), source=str(lake), sink="s", actor_cpus=bad)


def test_options_are_checked() -> None:
    for bad in (
        {"num_actors": 0},
        {"tasks_per_actor": 0},
        {"max_retries": -1},
        {"gpu": "sometimes"},
        {"gpus_per_actor": 0},
    ):
        with pytest.raises(ValueError):
            RayExecutor(**bad)


# --- standing actors, per-actor figures, what comes back ---------------------------------


def _cpus_free_again(expected: float = 2.0, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while ray.available_resources().get("CPU", 0.0) < expected and time.monotonic() < deadline:
        time.sleep(0.1)
    return ray.available_resources().get("CPU", 0.0) >= expected


def test_standing_actors_serve_the_next_run_and_go_with_the_block(tmp_path: Path) -> None:
    first_root, second_root = tmp_path / "first", tmp_path / "second"
    first_root.mkdir()
    second_root.mkdir()
    with cluster.keep_actors():
        first = RayExecutor(num_actors=2)
        got = list(first.execute(Probe(str(first_root)), range(6)))
        second = RayExecutor(num_actors=2)  # a new run, with a new factory
        again = list(second.execute(Probe(str(second_root), seconds=0.02), range(6)))
        assert ray.available_resources().get("CPU", 0.0) == 0  # held between runs
    assert sorted(r[1] for r in again) == list(range(6))
    assert {r[2] for r in again} & {r[2] for r in got}  # the same processes served both
    assert first.stats.workers_started == 2
    assert second.stats.workers_started == 0
    assert second.stats.extra["actors_reused"] == 2
    # Each run's factory was built in each actor that ran its tasks, once.
    assert {int(n.split("-")[1]) for n in files(second_root, "factory")} == {r[2] for r in again}
    assert len(files(second_root, "factory")) == len({r[2] for r in again})
    assert _cpus_free_again()  # leaving the block killed them


def test_each_actor_reports_its_work_cpu_and_memory(tmp_path: Path) -> None:
    executor = RayExecutor(num_actors=2)
    # Tasks wait for both workers: one actor cannot finish them all before the other starts
    results = list(executor.execute(Probe(str(tmp_path), wait_for_workers=2), range(8)))
    by_actor = executor.stats.extra["actor_stats"]
    assert sorted(doc["pid"] for doc in by_actor.values()) == sorted({r[2] for r in results})
    assert len(by_actor) == 2
    assert sum(doc["tasks"] for doc in by_actor.values()) == 8
    for key, doc in by_actor.items():
        assert key == f"{doc['node']}:{doc['pid']}" and doc["node"]
        assert doc["cpu_seconds"] > 0 and doc["peak_rss_mib"] > 10
        assert 0 <= doc["build_seconds"] <= doc["busy_seconds"]
        assert doc["device"] == "cpu" and doc["runs"] == 1
    assert executor.stats.extra["actor_start_seconds"] > 0  # the slowest actor's start


class RecordingRay(RayExecutor):
    """The Ray executor, noting the pickled size of each result that reaches the driver."""

    def __init__(self, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self.sizes: list[tuple[int, int]] = []

    def _execute(self, factory, tasks):
        for result in super()._execute(factory, tasks):
            self.sizes.append((result.rows, len(pickle.dumps(result))))
            yield result


def test_only_counts_and_stats_travel_back(model_file: Path, tmp_path: Path) -> None:
    """Tasks of 2,000 and of 40,000 rows send back results of the same size (counts,
    timings, bounded sketches): less than a byte per row, so no row data passes through
    the object store to the driver."""
    lake = write_lake(tmp_path / "lake", regions=("a",), files_per_region=1,
                      rows_per_file=40_000, row_group_rows=2_000)  # fmt: skip
    sizes = {}
    for task_rows in (2_000, 40_000):
        executor = RecordingRay(num_actors=2)
        sink = tmp_path / f"s{task_rows}"
        spec = JobSpec(model=str(model_file), source=str(lake), sink=str(sink), id_column=ID,
                       cluster="ray", task_rows=task_rows)  # fmt: skip
        assert run_job(spec, executor=executor, progress=False).rows_scored == 40_000
        assert {rows for rows, _ in executor.sizes} == {task_rows}
        sizes[task_rows] = [size for _, size in executor.sizes]
    assert len(sizes[2_000]) == 20 and len(sizes[40_000]) == 1
    assert max(sizes[40_000]) < 1.2 * min(sizes[2_000])  # 20x the rows, no bigger
    assert max(sizes[40_000]) < 40_000  # the scores alone would be 320,000 bytes
