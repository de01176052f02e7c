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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from engine._fsutil import temp_path_for
from engine.partitions import PartitionColumn, hive_path


class PartWriters:
    def __init__(
        self,
        data_dir: Path,
        task_id: str,
        *,
        partition_by: tuple[PartitionColumn, ...],
        source_partition: dict[str, str | None],
        run_dir: str | None,
        open_writer: Callable[[Path, pa.Schema], pq.ParquetWriter],
    ) -> None:
        self.data_dir = data_dir
        self.name = f"part-{task_id}.parquet"
        self.partition_by = partition_by
        self.source_partition = source_partition
        self.run_dir = run_dir
        self.open_writer = open_writer
        self._writers: dict[str, tuple[Path, pq.ParquetWriter]] = {}

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

    def _writer(self, key: str, schema: pa.Schema) -> pq.ParquetWriter:
        if key not in self._writers:
            final = self.data_dir / key / (self.run_dir or "") / self.name
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = temp_path_for(final)
            self._writers[key] = (tmp, self.open_writer(tmp, schema))
        return self._writers[key][1]

    def finish(self, empty_schema: Callable[[], pa.Schema]) -> list[str]:
        """Close, fsync and rename every part into place; their paths under ``data_dir``."""
        if not self.partition_by and not self._writers:  # an unpartitioned task always has one
            self._writer("", empty_schema())
        parts = []
        for _, (tmp, writer) in sorted(self._writers.items()):
            writer.close()
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            final = tmp.with_name(self.name)
            os.replace(tmp, final)
            parts.append(final.relative_to(self.data_dir).as_posix())
        self._writers.clear()
        return parts

    def abort(self) -> None:
        for tmp, writer in self._writers.values():
            writer.close()
            tmp.unlink(missing_ok=True)
        self._writers.clear()
