"""Arrow record batches -> the float32 feature matrix a kernel scores."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import numpy as np
import pyarrow as pa

from engine._native import fill_masked

#: Arrow types whose values buffer is read directly (one pass, no Arrow temporaries).
_DIRECT = {pa.float32(): np.float32, pa.float64(): np.float64}


def resolve_features(feature_names: tuple[str, ...], mapping: dict[str, str]) -> dict[str, str]:
    """Model feature -> source column, in the model's feature order.

    A feature maps to the column of the same name unless ``mapping`` says otherwise.
    """
    unknown = sorted(set(mapping) - set(feature_names))
    if unknown:
        from engine.errors import BadInputError

        raise BadInputError(f"columns: {unknown[0]!r} is not a feature of the model")
    return {name: mapping.get(name, name) for name in feature_names}


class _SlabPool:
    """Float32 buffers given back by finished builders, for the next ones.

    A builder per task allocated its buffers afresh (13 MB each for 64k rows x 50
    features): numpy asks the OS for huge pages at that size and glibc hands large blocks
    back on free, so each task's buffers were zeroed pages again. In a fresh process (a
    CLI run, a new Ray actor) that was most of the 0.4-0.6 CPU s the feature stage took
    above its warm 0.12 s per 1M rows. At most ``MAX_SLABS`` are kept.
    """

    MAX_SLABS = 8

    def __init__(self) -> None:
        self._free: list[np.ndarray] = []
        self._lock = threading.Lock()

    def take(self, size: int) -> np.ndarray:
        """A buffer of at least ``size`` floats: the smallest that fits, or a new one."""
        with self._lock:
            fits = [k for k, slab in enumerate(self._free) if slab.size >= size]
            if fits:
                return self._free.pop(min(fits, key=lambda k: self._free[k].size))
        return np.empty(size, dtype=np.float32)

    def give(self, slabs: list[np.ndarray]) -> None:
        with self._lock:
            self._free.extend(slab for slab in slabs if slab.size)
            self._free.sort(key=lambda slab: slab.size)
            del self._free[: max(0, len(self._free) - self.MAX_SLABS)]  # the smallest go

    def reset(self) -> None:  # in a forked child: the lock may be held by a dead thread
        self._free = []
        self._lock = threading.Lock()


_slabs = _SlabPool()
os.register_at_fork(after_in_child=_slabs.reset)


class FeatureMatrixBuilder:
    """Fills reused feature-major float32 buffers with one batch's features.

    Each Arrow column is copied once, straight from its values buffer (nulls become NaN,
    the models' missing value, in the same pass), into its own row of the buffer; the
    kernel gets the transposed view (an F-contiguous ``(n_rows, n_features)`` matrix) and
    reads it column-wise, so no row-major matrix is ever built. Other numeric types
    (integers, booleans, decimals) are cast to float32 by Arrow, as the native libraries
    cast them.

    Parameters
    ----------
    columns
        The source columns in the model's feature order.
    buffers
        Buffers used in turn: a matrix stays valid until ``buffers`` further builds (a
        read-ahead stage ``depth`` batches ahead of the kernel needs ``depth + 2``). Each
        is taken once, at the largest batch seen, so memory is bounded by the batch size,
        never the task or the dataset; :meth:`close` gives them back for the next builder
        (the process keeps a few, see :class:`_SlabPool`).
    """

    def __init__(self, columns: list[str], *, buffers: int = 1) -> None:
        if buffers < 1:
            raise ValueError("buffers must be >= 1")
        self.columns = columns
        self._slots = [np.empty(0, dtype=np.float32) for _ in range(buffers)]
        self._turn = 0
        #: the feature-major matrix of the last build
        self._buffer = np.empty((len(columns), 0), dtype=np.float32)

    def build(
        self, batch: pa.RecordBatch, each: Callable[[int, np.ndarray, int], None] | None = None
    ) -> np.ndarray:
        """The batch's (rows, features) matrix; ``each(j, column, nulls)`` is called with
        every feature column right after it is filled (while it is in cache)."""
        n, width = batch.num_rows, len(self.columns)
        k = self._turn
        self._turn = (k + 1) % len(self._slots)
        if self._slots[k].size < width * n:
            _slabs.give([self._slots[k]])
            self._slots[k] = _slabs.take(width * n)
        # A prefix of the slot, reshaped: C-contiguous whatever the batch's size, so the
        # transposed view stays F-contiguous and the kernel never copies it.
        buffer = self._slots[k][: width * n].reshape(width, n)
        for j, name in enumerate(self.columns):
            column = batch.column(name)
            fill_float32(buffer[j], column)
            if each is not None:
                each(j, buffer[j], column.null_count)
        self._buffer = buffer
        return buffer.T

    def close(self) -> None:
        """Give the buffers back: no matrix this builder returned may be used after."""
        _slabs.give(self._slots)
        self._slots = [np.empty(0, dtype=np.float32) for _ in self._slots]
        self._buffer = np.empty((len(self.columns), 0), dtype=np.float32)


def fill_float32(out: np.ndarray, arr: pa.Array | pa.ChunkedArray) -> None:
    """Write one Arrow column into ``out`` (float32, its length) with nulls as NaN."""
    if isinstance(arr, pa.ChunkedArray):
        start = 0
        for chunk in arr.chunks:
            fill_float32(out[start : start + len(chunk)], chunk)
            start += len(chunk)
        return
    n = len(arr)
    dtype = _DIRECT.get(arr.type)
    if dtype is None or n == 0:
        out[:] = column_as_float32(arr)
        return
    validity, data = arr.buffers()
    if validity is None or arr.null_count == 0:
        values = np.frombuffer(data, dtype=dtype, count=arr.offset + n)[arr.offset :]
        out[:] = values  # numpy casts float64 to float32 as Arrow does (nearest)
        return
    # one branch-free pass: no filled temporary, no second pass over the column
    skip = arr.offset * np.dtype(dtype).itemsize
    sizes = (data.size - skip, validity.size)
    fill_masked(out, data.address + skip, dtype, validity.address, arr.offset, sizes)


def column_as_float32(arr: pa.Array) -> np.ndarray:
    """One Arrow column as float32 numpy, nulls as NaN (zero-copy when already float32)."""
    import pyarrow.compute as pc  # here: a worker filling from Arrow buffers never loads it

    if arr.type != pa.float32():
        arr = pc.cast(arr, pa.float32(), safe=False)
    if arr.null_count:
        arr = pc.fill_null(arr, np.float32("nan"))
    return arr.to_numpy(zero_copy_only=False)
