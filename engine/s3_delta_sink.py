"""A Delta table on S3 (or an S3-compatible store) as the sink.

The commit is the same as on a local disk, and as atomic: one Delta transaction adds every
part of the run (delta-rs writes the log entry with a put-if-absent, so two writers never
both win a version, and the loser retries). What object storage lacks is a lock and a
rename, so:

* workers write each part straight to ``s3://.../<table>/<run_id>/[<col>=<v>/]part-<task>.parquet``
  (an object appears whole when its upload completes, or not at all; a retried task
  overwrites its own object), invisible to Delta readers until the log names it;
* the run's staging records (job fingerprint, lock, task records) stay on the driver's
  disk, under ``$LAKESCORE_STATE_DIR`` (default ``~/.cache/lakescore``)``/sinks/<hash of the
  table URI>/``: a killed run resumes when the same job is run again from that machine; run
  elsewhere, it is scored again under a new run id (the first run's parts were never in the
  log, so no row is duplicated);
* the run record is written there and copied to ``<table>/_lakescore/run_records/<run_id>.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from engine.delta_sink import DeltaRunStaging, DeltaSink
from engine.errors import BadInputError, ExecutionError
from engine.source import one_line
from engine.storage import Storage, _s3_error, check_bucket, key, state_dir
from engine.task import TaskResult


class S3DeltaSink(DeltaSink):
    def __init__(
        self,
        uri: str,
        storage: Storage,
        partition_by: tuple[str, ...] = (),
        overwrite: tuple[tuple[str, str], ...] | None = None,
    ) -> None:
        super().__init__(state_dir(uri), partition_by, overwrite)
        self.table_uri = uri.rstrip("/")
        self.storage = storage
        self.storage_options = storage.delta_options()
        self.fs = storage.filesystem()

    def __repr__(self) -> str:
        return f"S3DeltaSink({self.table_uri!r})"

    def table_exists(self) -> bool:
        from deltalake import DeltaTable

        try:
            return DeltaTable.is_deltatable(self.table_uri, storage_options=self.storage_options)
        except Exception as exc:
            raise BadInputError(f"sink {self.table_uri}: {one_line(exc)}") from None

    def check(self, output: Any) -> None:
        check_bucket(self.table_uri, self.storage, "sink")
        super().check(output)

    def top_level_names(self) -> list[str]:
        from pyarrow import fs

        try:
            infos = self.fs.get_file_info(
                fs.FileSelector(key(self.table_uri), allow_not_found=True)
            )
        except OSError as exc:
            raise BadInputError(f"sink {self.table_uri}: {_s3_error(exc)}") from None
        names = [i.base_name for i in infos]
        return [n for n in names if not n.startswith(("_", "."))]

    def part_info(self, part: Path | str) -> tuple[str, int, int, Any]:
        uri = str(part)
        info = self.fs.get_file_info(key(uri))
        with self.fs.open_input_file(key(uri)) as fh:
            meta = pq.ParquetFile(fh).metadata
        relpath = uri[len(self.table_uri) + 1 :]
        return relpath, int(info.size), (info.mtime_ns or 0) // 10**6, meta

    def staging(self, run_id: str) -> S3DeltaRunStaging:
        return S3DeltaRunStaging(self, run_id)

    def upload_run_record(self, run_id: str, record: dict[str, Any]) -> None:
        path = f"{key(self.table_uri)}/_lakescore/run_records/{run_id}.json"
        with self.fs.open_output_stream(path) as out:
            out.write((json.dumps(record, indent=2, sort_keys=True) + "\n").encode())


class S3DeltaRunStaging(DeltaRunStaging):
    sink: S3DeltaSink

    def __init__(self, sink: S3DeltaSink, run_id: str) -> None:
        super().__init__(sink, run_id)
        self.data_dir = sink.root / "unused" / run_id  # parts live in the bucket
        self.data_uri = f"{sink.table_uri}/{run_id}"

    def data_location(self) -> str:
        return self.data_uri

    def _objects(self) -> set[str]:
        from pyarrow import fs

        selector = fs.FileSelector(key(self.data_uri), recursive=True, allow_not_found=True)
        try:
            infos = self.sink.fs.get_file_info(selector)
        except OSError as exc:
            raise ExecutionError(f"sink {self.data_uri}: {_s3_error(exc)}") from None
        root = key(self.data_uri) + "/"
        return {i.path[len(root) :] for i in infos if i.type == fs.FileType.File}

    def finished_tasks(self) -> dict[str, TaskResult]:
        records = self._records()
        if self.sink.is_committed(self.run_id):
            return records
        present = self._objects()
        return {k: r for k, r in records.items() if set(r.part_paths()) <= present}

    def _records(self) -> dict[str, TaskResult]:
        from engine.task import read_task_record

        out: dict[str, TaskResult] = {}
        if self.tasks_dir.is_dir():
            for path in self.tasks_dir.glob("*.json"):
                try:
                    result = read_task_record(path)
                except (ValueError, TypeError, OSError):
                    continue
                out[result.task_id] = result
        return out

    def commit(self, expected_parts: set[str], run_record: dict[str, Any]) -> None:
        if not self.sink.is_committed(self.run_id):
            present = self._objects()
            if not expected_parts <= present:
                missing = sorted(expected_parts - present)[:3]
                raise ExecutionError(f"run {self.run_id}: staged parts missing: {missing}")
            uris = [f"{self.data_uri}/{p}" for p in sorted(expected_parts)]
            self.sink.commit_parts(self.run_id, uris)
        self.finish(run_record)

    def finish(self, run_record: dict[str, Any]) -> None:
        self.sink.upload_run_record(self.run_id, run_record)
        super().finish(run_record)

    def record_failure(self, run_record: dict[str, Any]) -> None:
        super().record_failure(run_record)
        self.sink.upload_run_record(self.run_id, run_record)

    def discard(self) -> None:
        if not self.sink.is_committed(self.run_id):
            self.sink.fs.delete_dir_contents(key(self.data_uri), missing_dir_ok=True)
        super().discard()
