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
* the run record is written there and uploaded to ``<table>/_lakescore/run_records/<run_id>.json``,
  after the run's quality tables (:mod:`engine.s3_staging`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from engine.delta_sink import DeltaRunStaging, DeltaSink
from engine.errors import BadInputError
from engine.s3_staging import S3RunStaging
from engine.source import one_line
from engine.storage import Storage, _s3_error, check_bucket, key, state_dir


class S3DeltaSink(DeltaSink):
    def __init__(
        self,
        uri: str,
        storage: Storage,
        partition_by: tuple[str, ...] = (),
        overwrite: tuple[tuple[str, str], ...] | None = None,
    ) -> None:
        super().__init__(state_dir(uri), partition_by, overwrite)
        self.table_uri = self.uri = uri.rstrip("/")
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


class S3DeltaRunStaging(S3RunStaging, DeltaRunStaging):
    sink: S3DeltaSink

    def __init__(self, sink: S3DeltaSink, run_id: str) -> None:
        super().__init__(sink, run_id)
        self.data_dir = sink.root / "unused" / run_id  # parts live in the bucket
        self.data_uri = f"{sink.table_uri}/{run_id}"

    def commit(self, expected_parts: set[str], run_record: dict[str, Any]) -> None:
        if not self.sink.is_committed(self.run_id):
            self.check_parts(expected_parts)
            uris = [f"{self.data_uri}/{p}" for p in sorted(expected_parts)]
            self.sink.commit_parts(self.run_id, uris)
        self.finish(run_record)

    def discard(self) -> None:
        if not self.sink.is_committed(self.run_id):
            self.sink.fs.delete_dir_contents(key(self.data_uri), missing_dir_ok=True)
        super().discard()
