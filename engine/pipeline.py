"""Bounded background stages of one task: read ahead of the kernel, write behind it.

A task is a pipeline ``read -> features -> kernel -> write``. The kernel releases the GIL
while it scores, and so do Parquet decoding and encoding, so each stage can run in its own
thread: :class:`ReadAhead` decodes and builds the next batch while the current one is
scored, :class:`WriteBehind` encodes the last batch's scores meanwhile. Both hold at most
``depth`` items in a queue, so a task's memory is a few batches whatever its size, and
both hand a stage's exception to the task's own thread, which raises it as if the stage
had run there. ``close`` always stops and joins the thread: nothing of a task runs after
the task returned or raised.

The threads are long-lived (:class:`_StageThread`): a stage borrows an idle one and gives
it back when it ends. Allocators keep per-thread state (mimalloc, Arrow's allocator, has a
heap per thread; glibc assigns each thread an arena), so a new thread per task started
from cold memory: in a Ray actor's first runs about 18% of the CPU went to zeroing fresh
pages (``clear_page``, perf), and the feature stage took 0.6-0.7 CPU s per 1M rows more
than once the memory was warm.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

_END = object()  # the producer finished (an item may be any object, None included)

#: Idle stage threads kept for the next stage (more than the stages running at once on a
#: machine's worth of tasks are let go).
MAX_IDLE_THREADS = 16


_idle_threads: list[_StageThread] = []
_idle_lock = threading.Lock()


def _forget_idle_threads() -> None:
    """In a forked child the idle threads do not exist: start afresh."""
    global _idle_lock
    _idle_threads.clear()
    _idle_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_idle_threads)


class _StageThread:
    """A daemon thread that runs one stage at a time, then waits for the next one."""

    def __init__(self) -> None:
        self._work: queue.Queue[tuple[Callable[[], None], threading.Event, str]] = queue.Queue()
        self._thread = threading.Thread(target=self._serve, name="lakescore-stage", daemon=True)
        self._thread.start()

    @classmethod
    def run(cls, fn: Callable[[], None], name: str) -> threading.Event:
        """Run ``fn`` in an idle stage thread (a new one if none is idle); the event is
        set when it has returned."""
        with _idle_lock:
            thread = _idle_threads.pop() if _idle_threads else None
        if thread is None:
            thread = cls()
        done = threading.Event()
        thread._work.put((fn, done, name))
        return done

    def _serve(self) -> None:
        me = threading.current_thread()
        while True:
            fn, done, name = self._work.get()
            me.name = name
            failed = True
            try:
                fn()  # a stage hands its exceptions to the task; one that escapes ends us
                failed = False
            finally:
                me.name = "lakescore-stage"
                with _idle_lock:
                    keep = not failed and len(_idle_threads) < MAX_IDLE_THREADS
                    if keep:
                        _idle_threads.append(self)
                done.set()
            if not keep:
                return


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class ReadAhead(Generic[T]):
    """Iterate ``items`` in a thread, at most ``depth`` items ahead of the consumer.

    The thread produces item ``k + depth + 1`` only after the consumer asked for item
    ``k + 1``: an item the consumer holds stays valid until it asks for the next one plus
    ``depth + 1`` more, which is what buffers reused in turn need.
    """

    def __init__(self, items: Iterator[T], *, depth: int = 1, name: str = "read-ahead") -> None:
        if depth < 1:
            raise ValueError("depth must be >= 1")
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = _StageThread.run(lambda: self._run(items), name)

    def _run(self, items: Iterator[T]) -> None:
        try:
            for item in items:
                self._queue.put(item)
                if self._stop.is_set():
                    return
            self._queue.put(_END)
        except BaseException as exc:  # handed to the consumer, raised there
            self._queue.put(_Failed(exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:  # a generator's files close in the thread that read them
                close()

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]

    @property
    def running(self) -> bool:
        """The producer has not returned yet."""
        return not self._done.is_set()

    def close(self) -> None:
        """Stop reading and join the thread (it finishes the item it is producing)."""
        self._stop.set()
        while not self._done.is_set():
            # A slot for a producer blocked on a full queue; it then sees the stop.
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.05)

    def __enter__(self) -> ReadAhead[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WriteBehind(Generic[T]):
    """Call ``write(item)`` in a thread for every :meth:`put` item, in order.

    :meth:`put` blocks while ``depth`` items wait. After a failed ``write`` the thread
    drops what is still queued (so ``put`` never blocks for ever) and the failure is
    raised by the next :meth:`put` or by :meth:`finish`.
    """

    def __init__(
        self, write: Callable[[T], None], *, depth: int = 2, name: str = "write-behind"
    ) -> None:
        if depth < 1:
            raise ValueError("depth must be >= 1")
        self._write = write
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._dropping = False
        self._done = _StageThread.run(self._run, name)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if self._error is not None or self._dropping:
                continue
            try:
                self._write(item)  # type: ignore[arg-type]
            except BaseException as exc:  # raised in the task's thread
                self._error = exc

    @property
    def running(self) -> bool:
        """The writer loop has not returned yet."""
        return not self._done.is_set()

    def put(self, item: T) -> None:
        self._raise_failure()
        self._queue.put(item)

    def finish(self) -> None:
        """Wait until every item is written; raise a write's failure."""
        self._stop()
        self._raise_failure()

    def close(self) -> None:
        """Drop what is not written yet and join the thread (after a failure elsewhere)."""
        self._dropping = True
        self._stop()

    def _stop(self) -> None:
        if not self._done.is_set():
            self._queue.put(_END)
            self._done.wait()

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise self._error
