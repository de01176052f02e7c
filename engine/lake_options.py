"""The lake options of a job, parsed and checked once before anything is written:
``--filter``, ``--partition-by``, ``--overwrite-partition`` and the sink they imply."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from engine import filters
from engine.delta_sink import DeltaSink, is_delta_table
from engine.errors import BadInputError
from engine.partitioned_sink import PartitionedSink, recorded_partitioning
from engine.partitions import Overwrite, PartitionColumn, parse_overwrite, parse_partition_by
from engine.source import SourceFile
from engine.spec import JobSpec
from engine.staging import Sink
from engine.storage import Storage


@dataclass(frozen=True)
class LakeOptions:
    partition_by: tuple[PartitionColumn, ...]
    overwrite: Overwrite | None
    #: ``--filter`` and, for a backfill, the partition's values of source columns
    row_filter: filters.Expr | None

    @classmethod
    def of(cls, spec: JobSpec) -> LakeOptions:
        partition_by = parse_partition_by(spec.partition_by)
        overwrite = None
        if spec.overwrite_partition is not None:
            overwrite = parse_overwrite(spec.overwrite_partition, partition_by)
        tests = [filters.parse(spec.filter)] if spec.filter is not None else []
        if overwrite is not None and (extra := overwrite.source_filter(partition_by)):
            tests.append(extra)
        row_filter = None
        if tests:
            row_filter = tests[0] if len(tests) == 1 else filters.BoolOp("and", tuple(tests))
        if row_filter is not None and spec.id_column is None:
            raise BadInputError(
                "--filter/--overwrite-partition need --id-column (filtered rows have no "
                "stable row numbers to identify them by)"
            )
        return cls(partition_by, overwrite, row_filter)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.partition_by)

    def check_source(self, files: list[SourceFile], output: pa.Schema) -> None:
        """Partition columns taken from the source exist in every file; none is also an
        output column."""
        for c in self.partition_by:
            if output.names.count(c.name) > 1:
                raise BadInputError(f"--partition-by {c.name}: is an output column")
            if c.constant:
                continue
            for f in files:
                if c.name not in f.schema.names and c.name not in f.partition:
                    raise BadInputError(f"{f.path}: partition column {c.name!r} not found")

    def fingerprint(self) -> dict[str, Any]:
        """What these options add to the job's identity (nothing when unused)."""
        doc: dict[str, Any] = {}
        if self.row_filter is not None:
            doc["filter"] = str(self.row_filter)
        if self.partition_by:
            doc["partition_by"] = [[c.name, c.value] for c in self.partition_by]
        if self.overwrite is not None:
            doc["overwrite"] = self.overwrite.path
        return doc

    def output_schema(self, written: pa.Schema) -> pa.Schema:
        """The sink's schema: the columns a part holds (``plan_outputs``: ids, scores or
        variants' columns, kept columns, ``run_id``), then the partition columns."""
        fields = [pa.field(n, pa.string()) for n in self.names]
        return pa.schema([*written, *fields])

    def open_sink(self, path: Path | str, fmt: str, storage: Storage) -> Sink:
        """The sink of ``fmt`` at ``path``; a layout it cannot extend is bad input."""
        overwrite = self.overwrite.values if self.overwrite else None
        if isinstance(path, str):  # an s3:// URI
            if fmt != "delta":
                if self.partition_by:
                    raise BadInputError(
                        f"sink {path}: partitioned Parquet on object storage cannot be "
                        "replaced atomically: use --format delta"
                    )
                from engine.s3_parquet_sink import S3ParquetSink

                parquet = S3ParquetSink(path, storage)
                parquet.check()
                return parquet
            from engine.s3_delta_sink import S3DeltaSink

            return S3DeltaSink(path, storage, self.names, overwrite)
        if fmt == "delta":
            return DeltaSink(path, self.names, self.overwrite.values if self.overwrite else None)
        if is_delta_table(path):
            raise BadInputError(f"sink {path} is a Delta table: use --format delta")
        if self.partition_by:
            sink = PartitionedSink(path, self.names, self.overwrite)
            sink.check()
            return sink
        recorded = recorded_partitioning(path)
        if recorded:
            raise BadInputError(f"sink {path} is partitioned by {recorded}: pass --partition-by")
        return Sink(path)
