"""A task's background stages (engine.pipeline) and the matrix built from Arrow buffers."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pytest

from engine import features
from engine.features import FeatureMatrixBuilder, column_as_float32, fill_float32
from engine.pipeline import ReadAhead, WriteBehind


def test_read_ahead_yields_every_item_in_order_and_stays_bounded():
    produced: list[int] = []
    consumed: list[int] = []
    ahead: list[int] = []

    def items():
        for i in range(50):
            produced.append(i)
            yield i

    with ReadAhead(items(), depth=2) as reader:
        for item in reader:
            consumed.append(item)
            ahead.append(len(produced) - len(consumed))
    assert consumed == list(range(50))
    # queued (2) + the one being produced: never more, however slow the consumer
    assert max(ahead) <= 3


def test_read_ahead_raises_the_producers_error_in_the_consumer():
    def items():
        yield 1
        raise ValueError("bad file")

    reader = ReadAhead(items())
    got = []
    with pytest.raises(ValueError, match="bad file"):
        for item in reader:
            got.append(item)
    reader.close()
    assert got == [1]


def test_read_ahead_close_stops_a_blocked_producer_and_closes_its_generator():
    closed = threading.Event()

    def items():
        try:
            i = 0
            while True:  # endless: only close() can stop it
                yield i
                i += 1
        finally:
            closed.set()

    reader = ReadAhead(items(), depth=1)
    assert next(iter(reader)) == 0
    reader.close()
    assert closed.is_set()
    assert not reader.running


def test_stages_borrow_long_lived_threads():
    """A stage runs in a thread an earlier stage gave back (allocators keep per-thread
    heaps warm), and under the stage's own name while it runs."""

    def where() -> Iterator[tuple[int, str]]:
        yield threading.get_ident(), threading.current_thread().name

    with ReadAhead(where(), name="first") as reader:
        ((first, name),) = list(reader)
    assert name == "first"
    written: list[tuple[int, str]] = []
    writer = WriteBehind(lambda _: written.append(next(where())), name="second")
    writer.put(None)
    writer.finish()
    assert written == [(first, "second")]


def test_write_behind_writes_in_order_and_raises_a_failure_on_finish():
    written: list[int] = []
    writer = WriteBehind(written.append, depth=2)
    for i in range(20):
        writer.put(i)
    writer.finish()
    assert written == list(range(20))

    def fail(item: int) -> None:
        if item == 3:
            raise OSError("disk full")
        written.append(item)

    written.clear()
    writer = WriteBehind(fail, depth=1)
    with pytest.raises(OSError, match="disk full"):
        for i in range(100):  # a put after the failure raises it: no write after it
            writer.put(i)
        writer.finish()
    writer.close()
    assert written == [0, 1, 2]


def test_write_behind_close_drops_what_is_queued():
    release = threading.Event()
    written: list[int] = []

    def slow(item: int) -> None:
        release.wait()
        written.append(item)

    writer = WriteBehind(slow, depth=2)
    for i in range(3):
        writer.put(i)
    release.set()
    writer.close()
    assert not writer.running
    assert written in ([0], [0, 1], [0, 1, 2])  # the running write ends; the rest may drop


@pytest.mark.parametrize("dtype", [pa.float32(), pa.float64(), pa.int64(), pa.bool_()])
@pytest.mark.parametrize("offset", [0, 3, 8, 13])
@pytest.mark.parametrize("rows", [60, 64, 5])
def test_fill_float32_matches_arrow_cast_with_nulls_and_slices(dtype, offset, rows):
    """Aligned bits go a validity byte at a time (whole bytes, then a tail), unaligned
    ones a bit at a time: both against Arrow's own cast and fill."""
    rng = np.random.default_rng(offset)
    values = rng.standard_normal(100) * 1e3
    values[[5, 17]] = [np.inf, -np.inf]
    mask = rng.random(100) < 0.2
    mask[24:40] = False  # whole validity bytes with every bit set
    if pa.types.is_boolean(dtype):
        arr = pa.array(values > 0, mask=mask)
    elif pa.types.is_integer(dtype):
        arr = pa.array(np.nan_to_num(values, posinf=0, neginf=0).astype(np.int64), mask=mask)
    else:
        arr = pa.array(values, type=dtype, mask=mask)
    arr = arr.slice(offset, rows)  # a bit offset into the validity bitmap
    out = np.full(rows, 7.0, dtype=np.float32)
    fill_float32(out, arr)
    np.testing.assert_array_equal(out, column_as_float32(arr))
    assert np.isnan(out[~arr.is_valid().to_numpy(zero_copy_only=False)]).all()


def test_builder_reuses_its_buffers_in_turn_and_sizes_them_by_the_batch():
    batch = pa.record_batch(
        {"a": pa.array([1.0, None, 3.0], pa.float32()), "b": pa.array([4.0, 5.0, None])}
    )
    builder = FeatureMatrixBuilder(["b", "a"], buffers=3)
    matrices = [builder.build(batch) for _ in range(3)]
    assert len({m.__array_interface__["data"][0] for m in matrices}) == 3
    fourth = builder.build(batch.slice(0, 2))  # the first buffer again, a smaller batch
    assert fourth.__array_interface__["data"][0] == matrices[0].__array_interface__["data"][0]
    assert fourth.flags.f_contiguous and fourth.shape == (2, 2)
    np.testing.assert_array_equal(fourth, [[4.0, 1.0], [5.0, np.nan]])
    np.testing.assert_array_equal(matrices[1], [[4.0, 1.0], [5.0, np.nan], [np.nan, 3.0]])


def test_a_closed_builder_gives_its_buffers_to_the_next():
    """A task's builder gives its buffers back; the next task's builder takes them instead
    of fresh memory (which the OS zeroes again: most of a fresh process's feature stage)."""
    features._slabs.reset()  # (earlier tests' larger buffers would be kept before these)
    batch = pa.record_batch({"a": pa.array(np.arange(1000, dtype=np.float32))})
    first = FeatureMatrixBuilder(["a"], buffers=2)
    used = {first.build(batch).__array_interface__["data"][0] for _ in range(2)}
    first.close()
    second = FeatureMatrixBuilder(["a"], buffers=2)
    again = {second.build(batch).__array_interface__["data"][0] for _ in range(2)}
    assert again == used
    np.testing.assert_array_equal(second.build(batch)[:, 0], np.arange(1000))
    second.close()


def _spin(seconds: float) -> None:
    import time

    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_stage_clock_splits_the_cpu_of_wall_only_laps_by_their_wall_time():
    """Per-column laps read only the wall clock; the batch's last lap reads the thread's
    CPU clock and shares what was spent since among the stages lapped, by wall time."""
    import time

    from engine.task import StageClock

    clock = StageClock()
    own = time.thread_time()
    clock.start()
    for _ in range(3):  # like a batch's columns: features then stats, wall only
        _spin(0.02)
        clock.lap("features", cpu=False)
        _spin(0.01)
        clock.lap("stats", cpu=False)
    clock.lap("features")  # the batch's last lap: the CPU reading
    _spin(0.01)
    clock.lap("write")  # an ordinary lap
    spent = time.thread_time() - own
    assert sum(clock.cpu.values()) == pytest.approx(spent, rel=0.05)
    assert clock.cpu["features"] > clock.cpu["stats"] > 0  # 2:1 by wall, on a quiet machine
    assert clock.cpu["write"] == pytest.approx(0.01, rel=0.5)
    assert clock.wall["features"] > clock.wall["stats"] > 0
    assert clock.cpu["kernel"] == clock.cpu["read"] == 0.0
