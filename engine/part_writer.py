"""The part files of one task: one file, or one per output partition the task's rows hit.

Every part is written aside (a hidden temporary name) and renamed into place only when
the task finished, so a killed task leaves no part that looks finished. Part names carry
the task id, so a retried task overwrites its own parts.

Layout under the run's data directory, relative paths (``TaskResult.parts``):

* unpartitioned: ``part-<task>.parquet`` (always written, even without rows);
* partitioned: ``<col>=<v>/.../[<run_id>/]part-<task>.parquet``, one per partition with
  rows (the Parquet sink puts the run id under the partition, the Delta sink above it).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from engine._fsutil import temp_path_for
from engine.partitions import PartitionColumn, hive_path
from engine.storage import Storage, fs_and_path, is_uri


class PartWriters:
    def __init__(
        self,
        data_dir: str,
        task_id: str,
        *,
        partition_by: tuple[PartitionColumn, ...],
        source_partition: dict[str, str | None],
        run_dir: str | None,
        open_writer: Callable[[Any, pa.Schema], pq.ParquetWriter],
        storage: Storage | None = None,
    ) -> None:
        #: on object storage a part is uploaded straight to its name: an object appears
        #: whole when its upload completes (there is no rename to wait for)
        self.remote = is_uri(data_dir)
        self.data_dir = data_dir.rstrip("/") if self.remote else Path(data_dir)
        self.storage = storage
        self.name = f"part-{task_id}.parquet"
        self.partition_by = partition_by
        self.source_partition = source_partition
        self.run_dir = run_dir
        self.open_writer = open_writer
        self._writers: dict[str, tuple[Any, pq.ParquetWriter, Any]] = {}

    def data_columns(self) -> list[str]:
        """Source columns the partition values are read from (not the source's partitions)."""
        return [
            c.name
            for c in self.partition_by
            if not c.constant and c.name not in self.source_partition
        ]

    def write(self, table: pa.Table, source: pa.RecordBatch) -> None:
        """Write ``table`` (the output rows of ``source``, row for row)."""
        if not self.partition_by:
            self._writer("", table.schema).write_table(table)
            return
        keys = self._keys(source)
        if len(keys) == 1:
            self._writer(next(iter(keys)), table.schema).write_table(table)
            return
        for key, mask in keys.items():
            self._writer(key, table.schema).write_table(table.filter(pa.array(mask)))

    def _keys(self, source: pa.RecordBatch) -> dict[str, np.ndarray]:
        """The relative partition directory of every row, as masks by directory."""
        n = source.num_rows
        labels = np.zeros(n, dtype=np.int64)
        per_column: list[list[str | None]] = []
        for c in self.partition_by:
            if c.constant or c.name in self.source_partition:
                value = c.value if c.constant else self.source_partition[c.name]
                per_column.append([value])
                continue
            import pyarrow.compute as pc  # only for columns that partition the output

            text = pc.cast(source.column(c.name), pa.string())
            encoded = text.dictionary_encode()
            values = encoded.dictionary.to_pylist()
            codes = encoded.indices.fill_null(len(values)).to_numpy(zero_copy_only=False)
            per_column.append([*values, None])
            labels = labels * (len(values) + 1) + codes
        keys: dict[str, np.ndarray] = {}
        for label in np.unique(labels):
            combo, rest = [], int(label)
            for values in reversed(per_column):
                combo.append(values[rest % len(values)])
                rest //= len(values)
            path = hive_path(
                tuple(zip([c.name for c in self.partition_by], reversed(combo), strict=True))
            )
            keys[path] = labels == label
        return keys

    def _relpath(self, key: str) -> str:
        return "/".join(p for p in (key, self.run_dir or "", self.name) if p)

    def _writer(self, key: str, schema: pa.Schema) -> pq.ParquetWriter:
        if key not in self._writers:
            rel = self._relpath(key)
            if self.remote:
                filesystem, where = fs_and_path(f"{self.data_dir}/{rel}", self.storage)
                stream = filesystem.open_output_stream(where)
                self._writers[key] = (rel, self.open_writer(stream, schema), stream)
            else:
                final = self.data_dir / rel
                final.parent.mkdir(parents=True, exist_ok=True)
                tmp = temp_path_for(final)
                self._writers[key] = (tmp, self.open_writer(tmp, schema), None)
        return self._writers[key][1]

    def finish(self, empty_schema: Callable[[], pa.Schema]) -> list[str]:
        """Close, fsync and rename every part into place; their paths under ``data_dir``."""
        if not self.partition_by and not self._writers:  # an unpartitioned task always has one
            self._writer("", empty_schema())
        parts = []
        for key, (where, writer, stream) in sorted(self._writers.items()):
            writer.close()
            if stream is not None:
                stream.close()  # completes the upload: the object appears whole
            else:
                with open(where, "rb") as fh:
                    os.fsync(fh.fileno())
                os.replace(where, where.with_name(self.name))
            parts.append(self._relpath(key))
        self._writers.clear()
        return parts

    def abort(self) -> None:
        """Drop unfinished parts. An upload cannot be cancelled through pyarrow: it ends as
        an object that no task record names, so no commit ever lists it; the task's retry
        overwrites it."""
        for where, writer, stream in self._writers.values():
            writer.close()
            if stream is not None:
                stream.close()
            else:
                where.unlink(missing_ok=True)
        self._writers.clear()
