"""A Delta table as the sink: a run's parts are added to the table in one Delta transaction.

Layout::

    <table>/_delta_log/...                                the Delta log (the commit point)
    <table>/<run_id>/part-<task>.parquet                  parts, written by the workers
    <table>/_lakescore/staging/<run_id>/{job.json,lock,tasks/}
    <table>/_lakescore/runs/<run_id>.json                 the run record

Workers write their parts straight into ``<table>/<run_id>/`` (named by task id, so a
retried task overwrites). Files the log does not name are invisible to every Delta reader,
so nothing a run wrote is seen until the commit: one transaction adding every part and
carrying the application transaction ``(appId=<run_id>, version=1)``. A run id whose
transaction the log already holds is committed; committing it again adds nothing.
Concurrent runs are blind appends, which Delta's optimistic concurrency retries without
conflict; two runs creating the table at once race for version 0, and the loser appends.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from engine.errors import BadInputError, ExecutionError
from engine.source import hive_partition, one_line
from engine.staging import RunStaging, Sink

log = logging.getLogger("lakescore.delta_sink")

DELTA_LOG = "_delta_log"
#: the version of every lakescore application transaction (one commit per run id)
TXN_VERSION = 1
COMMIT_ATTEMPTS = 5


def is_delta_table(path: Path) -> bool:
    return (path / DELTA_LOG).is_dir()


def plain_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with dictionary columns as their value type (what Delta stores)."""
    return pa.schema(
        [
            pa.field(f.name, f.type.value_type, f.nullable)
            if pa.types.is_dictionary(f.type)
            else f.remove_metadata()
            for f in schema
        ]
    )


def delta_schema(schema: pa.Schema) -> Any:
    """The Delta schema of ``schema``; a type Delta cannot hold is bad input."""
    from deltalake import Schema

    try:
        return Schema.from_arrow(plain_schema(schema))
    except Exception as exc:  # deltalake raises its own and Rust-side errors here
        raise BadInputError(
            f"sink: output schema cannot be a Delta schema ({one_line(exc)})"
        ) from None


class DeltaSink(Sink):
    """A Delta table directory, with lakescore's run records and staging under it."""

    format = "delta"

    def __init__(
        self,
        root: str | Path,
        partition_by: tuple[str, ...] = (),
        overwrite: tuple[tuple[str, str], ...] | None = None,
    ) -> None:
        super().__init__(root)
        self.partition_by = partition_by
        #: the partition a backfill replaces (removed in the transaction that adds the run)
        self.overwrite = overwrite
        self._committed: set[str] = set()
        #: where the table is (a local path, or an ``s3://`` URI in a subclass)
        self.table_uri = str(self.root)
        self.storage_options: dict[str, str] | None = None

    def table_exists(self) -> bool:
        return is_delta_table(self.root)

    def committed_dir(self, run_id: str) -> Path:
        return self.root / run_id

    def table(self) -> Any | None:
        from deltalake import DeltaTable

        if not self.table_exists():
            return None
        try:
            return DeltaTable(self.table_uri, storage_options=self.storage_options)
        except Exception as exc:
            raise BadInputError(
                f"sink {self.table_uri}: not a readable Delta table ({one_line(exc)})"
            ) from None

    def is_committed(self, run_id: str) -> bool:
        if run_id in self._committed:
            return True
        table = self.table()
        if table is not None and table.transaction_version(run_id) is not None:
            self._committed.add(run_id)  # a committed run stays committed
            return True
        return False

    def check(self, output: pa.Schema) -> None:
        """Before anything is written: the sink is a Delta table (or nothing yet) whose
        schema is exactly the run's output schema."""
        if not self.table_exists():
            staged = set(self.staging_runs())  # parts of a table's first, unfinished run
            data = [n for n in self.top_level_names() if n not in staged]
            if data:
                raise BadInputError(
                    f"sink {self.table_uri}: not a Delta table (no {DELTA_LOG}/) "
                    f"but holds {data[0]}"
                )
        wanted = delta_schema(output)
        table = self.table()
        if table is None:
            return
        have = table.schema()
        if _describe(have) != _describe(wanted):
            raise BadInputError(
                f"sink {self.table_uri}: Delta table schema {_describe(have)} differs from the "
                f"run's output {_describe(wanted)}"
            )
        partitioned = list(table.metadata().partition_columns)
        if partitioned != list(self.partition_by):
            raise BadInputError(
                f"sink {self.table_uri}: Delta table is partitioned by {partitioned}, "
                f"not {list(self.partition_by)}"
            )

    def top_level_names(self) -> list[str]:
        """Names of the data entries at the top of the sink (not ``_``/``.`` ones)."""
        if not self.root.is_dir():
            return []
        return [p.name for p in self.root.iterdir() if not p.name.startswith(("_", "."))]

    def staging_runs(self) -> list[str]:
        if not self.staging_root.is_dir():
            return []
        return [p.name for p in self.staging_root.iterdir()]

    def staging(self, run_id: str) -> DeltaRunStaging:
        return DeltaRunStaging(self, run_id)

    def commit_parts(self, run_id: str, parts: list[Path] | list[str]) -> None:
        """Add ``parts`` (files under the table root) in one transaction tagged ``run_id``."""
        from deltalake import DeltaTable
        from deltalake.transaction import (
            CommitProperties,
            Transaction,
            create_table_with_add_actions,
        )

        adds, schema = self._add_actions(parts)
        props = CommitProperties(app_transactions=[Transaction(run_id, TXN_VERSION)])
        partition_by = list(self.partition_by) or None
        mode = "overwrite" if self.overwrite is not None else "append"
        replace = [(c, "=", v) for c, v in self.overwrite] if self.overwrite else None
        for attempt in range(COMMIT_ATTEMPTS):
            if self.is_committed(run_id):
                return
            try:
                if not self.table_exists():
                    create_table_with_add_actions(
                        self.table_uri,
                        schema,
                        adds,
                        mode="append",
                        partition_by=partition_by,
                        storage_options=self.storage_options,
                        commit_properties=props,
                    )
                else:
                    table = DeltaTable(self.table_uri, storage_options=self.storage_options)
                    table.create_write_transaction(
                        adds,
                        mode=mode,
                        schema=schema,
                        partition_by=partition_by,
                        partition_filters=replace,
                        commit_properties=props,
                    )
                self._committed.add(run_id)
                return
            except Exception as exc:  # a lost race for version 0: the table exists now
                log.warning("run %s: Delta commit attempt %d failed: %s", run_id, attempt + 1, exc)
                last = exc
        raise ExecutionError(f"run {run_id}: Delta commit failed: {one_line(last)}")

    def part_info(self, part: Path | str) -> tuple[str, int, int, Any]:
        """``(path under the table, size, mtime in ms, Parquet metadata)`` of a part."""
        path = Path(part)
        stat = path.stat()
        meta = pq.read_metadata(path)
        return path.relative_to(self.root).as_posix(), stat.st_size, stat.st_mtime_ns // 10**6, meta

    def _add_actions(self, parts: list[Path] | list[str]) -> tuple[list[Any], Any]:
        from deltalake.transaction import AddAction

        adds = []
        schema: pa.Schema | None = None
        for part in sorted(parts, key=str):
            relpath, size, mtime_ms, meta = self.part_info(part)
            schema = schema or meta.schema.to_arrow_schema()
            adds.append(
                AddAction(
                    relpath,
                    size,
                    hive_partition(relpath),
                    mtime_ms,
                    True,
                    json.dumps({"numRecords": meta.num_rows}),
                )
            )
        if schema is None:
            raise ExecutionError(f"sink {self.table_uri}: a run without parts cannot be committed")
        columns = [pa.field(name, pa.string()) for name in self.partition_by]
        return adds, delta_schema(pa.schema([*plain_schema(schema), *columns]))


class DeltaRunStaging(RunStaging):
    """One run on a Delta sink: parts go to ``<table>/<run_id>/``, the rest to staging."""

    def __init__(self, sink: DeltaSink, run_id: str) -> None:
        super().__init__(sink, run_id)
        self.sink: DeltaSink = sink
        self.data_dir = sink.root / run_id

    def commit(self, expected_parts: set[str], run_record: dict[str, Any]) -> None:
        """The Delta transaction is the commit point; the rest rolls forward."""
        if not self.sink.is_committed(self.run_id):
            present = {
                p.relative_to(self.data_dir).as_posix()
                for p in self.data_dir.rglob("part-*.parquet")
            }
            if not expected_parts <= present:
                missing = sorted(expected_parts - present)[:3]
                raise ExecutionError(f"run {self.run_id}: staged parts missing: {missing}")
            for stray in self.data_dir.rglob(".*.tmp"):  # temporary files of killed writers
                stray.unlink()
            for stale in present - expected_parts:  # of tasks an earlier attempt planned
                (self.data_dir / stale).unlink()
            self.sink.commit_parts(self.run_id, [self.data_dir / p for p in expected_parts])
        self.finish(run_record)

    def discard(self) -> None:
        """Remove the staging area and the run's parts (the log never named them)."""
        if not self.sink.is_committed(self.run_id):
            shutil.rmtree(self.data_dir, ignore_errors=True)
        super().discard()


def _describe(schema: Any) -> str:
    fields = pa.schema(schema.to_arrow())
    return "(" + ", ".join(f"{f.name}: {f.type}" for f in fields) + ")"
