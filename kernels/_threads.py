"""Run a nogil kernel over ranges of work items on a few Python threads.

The CPU kernels are plain ``@njit(nogil=True)`` functions over a range of tiles (lleaves
runs its compiled C the same way): a kernel call releases the GIL, so Python threads run
ranges side by side on every core. Compared with Numba's ``parallel=True``, this spares
the parfor passes at compile time (most of a cold compile), Numba's threading layer and
its rule that two threads must not launch parallel kernels at once.

Work is handed out in chunks from a shared counter, so a thread slowed by a busy machine
takes fewer chunks instead of holding the others up; the calling thread works too.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

#: Chunks per thread: enough to balance a loaded machine, few enough that a call's
#: overhead (tens of microseconds) stays invisible against a chunk's work.
CHUNKS_PER_THREAD = 4

_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


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
    """Call ``work(lo, hi)`` over ``[0, n_items)`` cut into disjoint ranges, on up to
    ``n_threads`` threads (this one included); exceptions propagate."""
    n_threads = max(1, min(n_threads, -(-n_items // max(1, min_chunk))))
    if n_threads == 1:
        if n_items > 0:
            work(0, n_items)
        return
    chunk = max(min_chunk, -(-n_items // (n_threads * CHUNKS_PER_THREAD)))
    n_chunks = -(-n_items // chunk)
    counter = itertools.count()  # next() on a count is atomic under the GIL

    def drain() -> None:
        while (i := next(counter)) < n_chunks:
            work(i * chunk, min(n_items, (i + 1) * chunk))

    pool = _pool(n_threads - 1)
    helpers: list[Future[None]] = [pool.submit(drain) for _ in range(n_threads - 1)]
    try:
        drain()
    finally:
        for future in helpers:
            # A helper that never started (the pool busy with another launch) has nothing
            # left to do: cancel it rather than wait for a free thread.
            if not future.cancel():
                future.result()
