"""The local executor: bounded in-flight tasks, every result, fail fast, one worker."""

from __future__ import annotations

import threading
import time

import pytest
from scoring_helpers import CountingTasks

from cluster import LocalExecutor, TaskFailed, make_executor

_NEVER = object()


class Probe:
    """A worker factory whose worker counts tasks running at once and can fail on one."""

    def __init__(self, *, fail_on: object = _NEVER, seconds: float = 0.002) -> None:
        self.fail_on = fail_on
        self.seconds = seconds
        self.factory_calls = 0
        self.running = 0
        self.max_running = 0
        self.started: list[object] = []
        self.finished: list[object] = []
        self._lock = threading.Lock()

    def __call__(self):
        self.factory_calls += 1
        return self.work

    def work(self, task: object) -> tuple[str, object]:
        with self._lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            self.started.append(task)
        try:
            if task == self.fail_on:  # at once, so it is seen before the tasks beside it
                raise ValueError(f"bad task {task}")
            time.sleep(self.seconds)
            return ("done", task)
        finally:
            with self._lock:
                self.running -= 1
                self.finished.append(task)


@pytest.mark.parametrize(("threads", "max_in_flight"), [(4, 2), (3, None), (1, 1)])
def test_in_flight_is_bounded_and_every_task_has_a_result(
    threads: int, max_in_flight: int | None
) -> None:
    bound = max_in_flight or threads
    probe = Probe()
    tasks = CountingTasks(60)
    results = []
    with LocalExecutor(threads=threads, max_in_flight=max_in_flight) as executor:
        for result in executor.execute(probe, tasks):
            results.append(result)
            assert tasks.pulled - len(results) <= bound  # the task list is read lazily
    assert sorted(r[1] for r in results) == list(range(60))
    assert all(r[0] == "done" for r in results)
    assert probe.max_running <= bound
    if bound > 1:
        assert probe.max_running > 1  # it does run tasks concurrently
    assert probe.factory_calls == 1
    assert executor.stats.tasks_submitted == executor.stats.tasks_succeeded == 60
    assert executor.stats.workers_started == 1


def test_first_failure_raises_and_stops_submitting() -> None:
    probe = Probe(fail_on=7, seconds=0.02)
    tasks = CountingTasks(100)
    executor = LocalExecutor(threads=2, max_in_flight=2)
    got = []
    with pytest.raises(TaskFailed) as info:
        for result in executor.execute(probe, tasks):
            got.append(result[1])
    executor.shutdown()
    failure = info.value
    assert failure.task == 7
    assert isinstance(failure.cause, ValueError)
    assert "bad task 7" in str(failure.cause)
    assert 7 not in got
    assert tasks.pulled <= 7 + 1 + 2  # no more than the bound past the failed task
    assert len(probe.started) == tasks.pulled < 100
    assert sorted(probe.finished) == sorted(probe.started)  # nothing still running
    assert executor.stats.tasks_failed == 1
    assert probe.factory_calls == 1


def test_nothing_runs_after_the_failure_is_raised() -> None:
    probe = Probe(fail_on=0, seconds=0.05)
    executor = LocalExecutor(threads=4, max_in_flight=4)
    with pytest.raises(TaskFailed):
        list(executor.execute(probe, range(50)))
    started = len(probe.started)
    time.sleep(0.05)
    assert len(probe.started) == started <= 4
    assert probe.running == 0
    executor.shutdown()


def test_empty_task_list() -> None:
    probe = Probe()
    with LocalExecutor() as executor:
        assert list(executor.execute(probe, [])) == []
    assert probe.started == []


def test_falsy_and_none_tasks_are_tasks() -> None:
    """The executor knows nothing of tasks: ``None``, 0 and "" are tasks like any other."""
    probe = Probe()
    tasks = [0, None, "", 3]
    with LocalExecutor(threads=2) as executor:
        results = list(executor.execute(probe, tasks))
    assert sorted(map(repr, (r[1] for r in results))) == sorted(map(repr, tasks))


def test_factory_runs_once_per_execute_and_shutdown_is_idempotent() -> None:
    probe = Probe()
    executor = LocalExecutor(threads=2)
    assert len(list(executor.execute(probe, range(5)))) == 5
    assert len(list(executor.execute(probe, range(5)))) == 5
    assert probe.factory_calls == 2
    executor.shutdown()
    executor.shutdown()


def test_make_executor() -> None:
    executor = make_executor("local", threads=3)
    assert isinstance(executor, LocalExecutor)
    assert executor.threads == 3
    with pytest.raises(ValueError, match="unknown cluster"):
        make_executor("ray://nowhere")
    with pytest.raises(ValueError):
        LocalExecutor(threads=0)


@pytest.mark.parametrize("cores", [1, 2, 8])
def test_local_kernel_calls_may_use_every_core(monkeypatch, cores) -> None:
    """The local executor's kernel calls share one pool of a thread per core
    (``tests/test_kernel_threads.py``): tasks scoring at once split it, and a task that
    scores alone, such as the last of a run, gets every core."""
    from engine.coordinator import local_kernel_threads

    monkeypatch.setenv("NUMBA_NUM_THREADS", str(cores))  # the cores kernels may use
    assert local_kernel_threads() == cores
