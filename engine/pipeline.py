"""Bounded background stages of one task: read ahead of the kernel, write behind it.

A task is a pipeline ``read -> features -> kernel -> write``. The kernel releases the GIL
while it scores, and so do Parquet decoding and encoding, so each stage can run in its own
thread: :class:`ReadAhead` decodes and builds the next batch while the current one is
scored, :class:`WriteBehind` encodes the last batch's scores meanwhile. Both hold at most
``depth`` items in a queue, so a task's memory is a few batches whatever its size, and
both hand a stage's exception to the task's own thread, which raises it as if the stage
had run there. ``close`` always stops and joins the thread: nothing of a task runs after
the task returned or raised.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

_END = object()  # the producer finished (an item may be any object, None included)


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
        self._thread = threading.Thread(target=self._run, args=(items,), name=name, daemon=True)
        self._thread.start()

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

    def close(self) -> None:
        """Stop reading and join the thread (it finishes the item it is producing)."""
        self._stop.set()
        while self._thread.is_alive():
            # A slot for a producer blocked on a full queue; it then sees the stop.
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.05)
        self._thread.join()

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
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

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
        if self._thread.is_alive():
            self._queue.put(_END)
            self._thread.join()

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise self._error
