"""The kernels' thread pool: launches share it, a lone launch gets all of it, failures
stop a launch, and each launch's CPU is charged to the thread that launched it."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from kernels._threads import launched_cpu_seconds, run_ranges


class _Concurrency:
    """Records which threads ran ranges, and the most ranges running at once."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.threads: set[int] = set()
        self.covered: list[tuple[int, int]] = []

    def __call__(self, lo: int, hi: int) -> None:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.threads.add(threading.get_ident())
            self.covered.append((lo, hi))
        time.sleep(self.seconds)  # like a nogil kernel: other threads run meanwhile
        with self.lock:
            self.running -= 1


def test_ranges_cover_every_item_once() -> None:
    seen = np.zeros(1000, dtype=np.int64)

    def work(lo: int, hi: int) -> None:
        seen[lo:hi] += 1

    run_ranges(work, 1000, 3, min_chunk=7)
    assert (seen == 1).all()


def test_a_lone_launch_runs_on_every_thread_of_the_pool() -> None:
    work = _Concurrency(seconds=0.01)
    run_ranges(work, 64, 2)
    assert work.most == 2
    assert threading.get_ident() not in work.threads  # the caller waits, it does not score


def test_launches_at_once_share_the_pool() -> None:
    """Two tasks launching at once on a 2-thread pool run at most 2 ranges at a time (a
    caller scoring beside the pool would make it 3), and both finish."""
    work = _Concurrency(seconds=0.005)
    callers = [threading.Thread(target=run_ranges, args=(work, 64, 2)) for _ in range(2)]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    assert work.most == 2
    assert sum(hi - lo for lo, hi in work.covered) == 128


def test_one_range_runs_in_the_callers_thread() -> None:
    work = _Concurrency()
    run_ranges(work, 10, 1)
    run_ranges(work, 10, 4, min_chunk=16)  # fewer items than one chunk
    assert work.threads == {threading.get_ident()}
    run_ranges(work, 0, 4)
    assert len(work.covered) == 2


def test_a_failure_stops_the_launch_and_is_raised() -> None:
    started: list[int] = []

    def work(lo: int, hi: int) -> None:
        started.append(lo)
        if lo == 0:
            raise ValueError("range 0 failed")
        time.sleep(0.001)

    with pytest.raises(ValueError, match="range 0 failed"):
        run_ranges(work, 1000, 2, min_chunk=1)
    assert len(started) < 8  # 8 chunks: the ones not started when it failed are skipped


def test_a_launch_is_charged_to_the_thread_that_launched_it() -> None:
    def spin(lo: int, hi: int) -> None:
        end = time.thread_time() + 0.02
        while time.thread_time() < end:
            pass

    before, own = launched_cpu_seconds(), time.thread_time()
    run_ranges(spin, 8, 2)
    charged = launched_cpu_seconds() - before
    assert charged >= 8 * 0.02 * 0.9  # each of the 8 ranges spun 0.02 s in the pool
    assert time.thread_time() - own < 0.05  # not in this thread

    other: list[float] = []
    t = threading.Thread(target=lambda: other.append(launched_cpu_seconds()))
    t.start()
    t.join()
    assert other == [0.0]  # another thread's account is its own
