"""Run a nogil kernel over ranges of work items on a process-wide pool of threads.

The CPU kernels are plain ``@njit(nogil=True)`` functions over a range of tiles (lleaves
runs its compiled C the same way): a kernel call releases the GIL, so Python threads run
ranges side by side on every core. Compared with Numba's ``parallel=True``, this spares
the parfor passes at compile time (most of a cold compile), Numba's threading layer and
its rule that two threads must not launch parallel kernels at once.

A launch cuts its items into chunks, hands them to the pool's threads through a shared
counter and waits: a thread slowed by a busy machine takes fewer chunks instead of holding
the others up. Launches of the same width share one pool, so several tasks scoring at once
(the local executor's) never run more kernel threads than the pool has, and a task that
scores alone, the last of a run or one whose neighbour is decoding, gets every core. The
calling thread only waits: were it to work too, two tasks scoring at once on 2 cores would
run 3 kernel threads.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait

#: Chunks per thread: enough to balance a loaded machine and to let another launch's
#: threads join in, few enough that a chunk's overhead (tens of microseconds) stays
#: invisible against its work.
CHUNKS_PER_THREAD = 4

_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()
_launched = threading.local()  # per calling thread: CPU its launches took in the pool


def launched_cpu_seconds() -> float:
    """CPU seconds the pool's threads have spent on this thread's launches so far.
    Added to the thread's own CPU time, it charges a launch to whoever launched it (a
    task's kernel stage), as if it had run in that thread."""
    return getattr(_launched, "seconds", 0.0)


def default_threads() -> int:
    """``NUMBA_NUM_THREADS`` where set (the Ray executor sets it per worker), else the
    cores this process may run on."""
    env = os.environ.get("NUMBA_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _forget_pools() -> None:
    """In a forked child the pools' threads do not exist: start afresh."""
    global _pools_lock
    _pools.clear()
    _pools_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_pools)


def _pool(workers: int) -> ThreadPoolExecutor:
    with _pools_lock:
        pool = _pools.get(workers)
        if pool is None:
            pool = ThreadPoolExecutor(workers, thread_name_prefix="lakescore-kernel")
            _pools[workers] = pool
        return pool


def run_ranges(
    work: Callable[[int, int], None], n_items: int, n_threads: int, *, min_chunk: int = 1
) -> None:
    """Call ``work(lo, hi)`` over ``[0, n_items)`` cut into disjoint ranges, on the pool of
    ``n_threads`` threads; returns when every range is done, raising the first exception
    (the ranges not yet started are then skipped)."""
    if n_items <= 0:
        return
    if n_threads <= 1 or n_items <= min_chunk:  # one range: a hand-off would only add latency
        work(0, n_items)
        return
    chunk = max(min_chunk, -(-n_items // (n_threads * CHUNKS_PER_THREAD)))
    n_chunks = -(-n_items // chunk)
    counter = itertools.count()  # next() on a count is atomic under the GIL
    failed = threading.Event()

    def drain() -> float:
        started = time.thread_time()
        try:
            while not failed.is_set() and (i := next(counter)) < n_chunks:
                work(i * chunk, min(n_items, (i + 1) * chunk))
        except BaseException:
            failed.set()
            raise
        return time.thread_time() - started

    pool = _pool(n_threads)
    futures = [pool.submit(drain) for _ in range(min(n_threads, n_chunks))]
    wait(futures)  # every drain has returned: nothing of this launch runs after us
    _launched.seconds = launched_cpu_seconds() + sum(
        f.result() for f in futures if f.exception() is None
    )
    for future in futures:
        future.result()  # the first failure, if any
