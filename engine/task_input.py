"""A task's input: the record batches of its files, in order, each with where its rows
come from (for the locator columns), batches of small files joined up to ``batch_rows``
rows. Read errors name the file."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa

from engine import filters
from engine.errors import BadInputError
from engine.filters import Expr
from engine.plan import Fragment, ScoreTask
from engine.source import one_line
from engine.storage import Storage, fs_and_path, is_uri, key, open_parquet

#: Where a batch's rows come from, run by run: the file (relative to the source), the
#: file's row number of the run's first row (exact without a filter, which drops rows)
#: and the run's rows.
Origin = tuple[tuple[str, int, int], ...]

#: Small files of one task fetched from object storage at once. Each costs round trips
#: (tens of milliseconds on S3) before its rows decode: through the same 20 ms proxy as
#: :mod:`engine.remote_source`'s figures, a task of 75 objects of 100 rows read in 6.1 s
#: one after another (a size request and a new client each), 1.2-1.5 s eight at a time.
REMOTE_FILES_AT_ONCE = 8


def read_batches(
    task: ScoreTask, columns: list[str], batch_rows: int, storage: Storage | None = None
) -> Iterator[tuple[pa.RecordBatch, Origin]]:
    """Record batches of the task's files, in order, each with its origin, never more
    than ``batch_rows`` rows.

    Batches of small files are put together into batches of ``batch_rows`` rows (slices,
    so no batch is larger): every batch costs the same fixed work (a kernel launch, a
    statistics pass per column, an output row group), which for a task of a thousand
    200-row files came to 9 ms a file.
    """
    pending: list[pa.RecordBatch] = []
    origins: list[tuple[str, int, int]] = []
    rows = 0
    for batch, relpath, start in _file_batches(task, columns, batch_rows, storage):
        if not pending and batch.num_rows == batch_rows:
            yield batch, ((relpath, start, batch_rows),)  # a large file's batch: no copy
            continue
        while batch.num_rows:
            take = min(batch.num_rows, batch_rows - rows)
            pending.append(batch.slice(0, take))
            origins.append((relpath, start, take))
            rows += take
            batch, start = batch.slice(take), start + take
            if rows == batch_rows:
                yield _joined(pending), tuple(origins)
                pending, origins, rows = [], [], 0
    if pending:
        yield _joined(pending), tuple(origins)


def _joined(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    return batches[0] if len(batches) == 1 else pa.concat_batches(batches)


def _file_batches(
    task: ScoreTask, columns: list[str], batch_rows: int, storage: Storage | None
) -> Iterator[tuple[pa.RecordBatch, str, int]]:
    """Each file's record batches as Arrow reads them, with the file (relative to the
    source) and the file's row number of the batch's first row; read errors, and a file
    that holds other than the rows its footer says, name the file.

    With a filter, Arrow's scanner reads them: it skips row groups whose statistics rule
    the filter out and drops the rows that fail it. Small files on object storage are
    fetched :data:`REMOTE_FILES_AT_ONCE` at a time, ahead of the batches read (see there).
    """
    remote = is_uri(task.fragments[0].path)
    # One client per task on object storage: its connections are reused.
    filesystem = (storage or Storage.of(None)).filesystem() if remote else None

    def batches_of(fragment: Fragment) -> Iterator[pa.RecordBatch]:
        return _batches(task.filter, fragment, columns, batch_rows, storage, filesystem)

    pool, fetched = None, []
    if remote and len(task.fragments) > 1:
        pool = ThreadPoolExecutor(REMOTE_FILES_AT_ONCE, thread_name_prefix="lakescore-fetch")
        # A task's small files hold at most task_rows rows in all: fetching every one
        # ahead holds no more than the task's own batches.
        fetched = [pool.submit(lambda f=f: list(batches_of(f))) for f in task.fragments]
    try:
        for i, fragment in enumerate(task.fragments):
            row = fragment.first_row
            try:
                for batch in fetched[i].result() if fetched else batches_of(fragment):
                    if batch.num_rows:
                        yield batch, fragment.relpath, row
                    row += batch.num_rows
            except (pa.ArrowException, OSError) as exc:
                raise BadInputError(
                    f"{fragment.path}: cannot read Parquet data ({one_line(exc)})"
                ) from None
            read = row - fragment.first_row
            if task.filter is None and read != fragment.num_rows:
                raise BadInputError(
                    f"{fragment.path}: footer says {fragment.num_rows} rows, read {read}"
                )
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _batches(
    expr: Expr | None, fragment: Fragment, columns: list[str], batch_rows: int,
    storage: Storage | None, filesystem: Any = None,
) -> Iterator[pa.RecordBatch]:  # fmt: skip
    """The fragment's record batches: Arrow's scanner with a filter or on object storage,
    else the Parquet reader (decoded in this, the read-ahead, thread: Arrow's own threads
    cost 0.3-0.4 CPU-s per 1M rows more on 2 cores and compete with the kernel's)."""
    if expr is not None or is_uri(fragment.path):
        return _scanned_batches(expr, fragment, columns, batch_rows, storage, filesystem)
    return open_parquet(fragment.path, storage).iter_batches(
        batch_size=batch_rows, row_groups=list(fragment.row_groups), columns=columns,
        use_threads=False,
    )  # fmt: skip


def _scanned_batches(
    expr: Expr | None, fragment: Fragment, columns: list[str], batch_rows: int,
    storage: Storage | None, filesystem: Any = None,
) -> Iterator[pa.RecordBatch]:  # fmt: skip
    """Arrow's scanner over the fragment's row groups: with a known size, an object is
    read without a request for its size; with ``expr``, only the rows that pass it.
    ``filesystem``: the object store's client to read with (by default a new one)."""
    import pyarrow.dataset as ds

    if filesystem is None:
        filesystem, where = fs_and_path(fragment.path, storage)
    else:
        where = key(fragment.path)
    piece = ds.ParquetFileFormat().make_fragment(
        where, filesystem=filesystem, file_size=fragment.size or None,
        row_groups=list(fragment.row_groups),
    )  # fmt: skip
    return piece.to_batches(
        columns=columns,
        filter=None if expr is None else filters.to_arrow(expr),
        batch_size=batch_rows,
        use_threads=False,
    )
