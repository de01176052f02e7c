"""The data side of an assessment: a few row groups read, measured and timed.

The sample is spread evenly over the source's row groups (the first and the last file
included), read with only the columns the job needs. It gives null rates and ranges per
column, and, timed stage by stage with the job's own code (Arrow read, feature matrix,
compiled kernel, Parquet encoding into memory), the per-row costs the duration estimate
extrapolates from. Nothing is written anywhere.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import kernels
from engine.errors import BadInputError
from engine.features import FeatureMatrixBuilder
from engine.outputs import score_batch
from engine.source import SourceFile, is_numeric, one_line
from engine.storage import Storage, open_parquet

STAGES = ("read", "features", "kernel", "write")
MAX_ROW_GROUPS = 256


@dataclass
class ColumnSample:
    rows: int = 0
    nulls: int = 0  # nulls and NaN: what reaches the model as missing
    min: float = math.inf
    max: float = -math.inf

    @property
    def null_rate(self) -> float:
        return self.nulls / self.rows if self.rows else math.nan

    def add(self, arr: pa.ChunkedArray) -> None:
        values = pc.cast(arr, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
        finite = values[np.isfinite(values)]
        self.rows += len(values)
        self.nulls += int(np.isnan(values).sum())
        if finite.size:
            self.min = min(self.min, float(finite.min()))
            self.max = max(self.max, float(finite.max()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "null_rate": None if not self.rows else round(self.null_rate, 6),
            "min": self.min if math.isfinite(self.min) else None,
            "max": self.max if math.isfinite(self.max) else None,
        }


@dataclass
class Sample:
    row_groups: int = 0
    rows: int = 0
    columns: dict[str, ColumnSample] = field(default_factory=dict)
    #: seconds spent per stage on the rows that were scored (``scored_rows``)
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    scored_rows: int = 0

    def per_row(self) -> dict[str, float]:
        return (
            {k: v / self.scored_rows for k, v in self.seconds.items()} if self.scored_rows else {}
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "row_groups": self.row_groups,
            "rows": self.rows,
            "columns": {name: c.to_dict() for name, c in self.columns.items()},
        }


def pick_row_groups(files: list[SourceFile], count: int) -> list[tuple[SourceFile, int]]:
    """``count`` row groups spread evenly over the source, in source order."""
    every = [(f, rg) for f in files for rg, n in enumerate(f.row_group_rows) if n]
    if len(every) <= count:
        return every
    step = (len(every) - 1) / max(count - 1, 1)
    return [every[round(i * step)] for i in range(count)]


def read_sample(
    files: list[SourceFile],
    features: dict[str, str],
    *,
    kernel: kernels.Kernel | None,
    id_column: str | None = None,
    max_row_groups: int,
    max_rows: int,
    batch_rows: int,
    storage: Storage | None = None,
) -> Sample:
    """Null rates and ranges of the feature columns present, from at least
    ``max_row_groups`` row groups; with ``kernel`` (every feature present and numeric), the
    stage timings of scoring about ``max_rows`` of those rows."""
    sample = Sample()
    feature_columns = list(dict.fromkeys(features.values()))
    builder = FeatureMatrixBuilder(feature_columns) if kernel is not None else None
    groups = sum(len(f.row_group_rows) for f in files)
    rows_per_group = max(sum(f.num_rows for f in files) / max(groups, 1), 1.0)
    # Enough row groups for max_rows (small row groups need more), but a bounded read.
    count = min(max(max_row_groups, math.ceil(max_rows / rows_per_group)), MAX_ROW_GROUPS)
    for f, rg in pick_row_groups(files, count):
        columns = [c for c in feature_columns if c in f.schema.names and _numeric(f, c)]
        ids = [id_column] if id_column in f.schema.names and id_column not in columns else []
        t0 = time.perf_counter()
        try:
            table = open_parquet(f.path, storage).read_row_groups([rg], columns=columns + ids)
        except (pa.ArrowException, OSError) as exc:
            raise BadInputError(f"{f.path}: cannot read Parquet data ({one_line(exc)})") from None
        read_seconds = time.perf_counter() - t0
        sample.row_groups += 1
        sample.rows += table.num_rows
        for name in columns:
            sample.columns.setdefault(name, ColumnSample()).add(table.column(name))
        if builder is not None and kernel is not None and sample.scored_rows < max_rows:
            sample.seconds["read"] += read_seconds
            _score(sample, table, builder, kernel, batch_rows, id_column if ids else None)
        if sample.rows >= max_rows and sample.row_groups >= 2:
            break
    return sample


def _numeric(f: SourceFile, column: str) -> bool:
    return is_numeric(f.schema.field(column).type)


def _score(
    sample: Sample,
    table: pa.Table,
    builder: FeatureMatrixBuilder,
    kernel: kernels.Kernel,
    batch_rows: int,
    id_column: str | None,
) -> None:
    for batch in table.to_batches(max_chunksize=batch_rows):
        t1 = time.perf_counter()
        X = builder.build(batch)
        t2 = time.perf_counter()
        scores = score_batch(kernel, X)
        t3 = time.perf_counter()
        # The job's part writer's encoding, into memory: the write cost without a file.
        out = pa.table({name: pa.array(v) for name, v in scores.items()})
        if id_column is not None:
            out = out.append_column(id_column, batch.column(id_column))
        sink = pa.BufferOutputStream()
        pq.write_table(out, sink, compression="snappy", use_dictionary=False)
        t4 = time.perf_counter()
        sample.seconds["features"] += t2 - t1
        sample.seconds["kernel"] += t3 - t2
        sample.seconds["write"] += t4 - t3
        sample.scored_rows += batch.num_rows
