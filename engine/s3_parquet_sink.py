"""A Parquet sink on S3: staged parts, a commit manifest, copies, a run manifest last.

Object storage has no rename, so a run cannot appear in one step. What lakescore
guarantees instead:

* workers upload parts under ``<sink>/_lakescore/staging/<run_id>/data/`` (readers skip
  ``_lakescore/``); the run's staging records stay on the driver's disk
  (``$LAKESCORE_STATE_DIR/sinks/<hash>/``), as for a Delta sink on S3;
* the commit point is the commit manifest (``commit.json`` in the local staging area),
  written once every part is uploaded; the parts are then copied server-side to
  ``<sink>/<run_id>/part-<task>.parquet`` and ``<sink>/<run_id>/_manifest.json`` (the list of
  the run's files) is written **last**; a crash among the copies is finished by the next
  invocation of the job (roll forward; copies are idempotent, never duplicated);
* so a run is never lost or duplicated, but a reader listing the prefix *during* the
  copies sees part of it. A run is complete once its ``_manifest.json`` exists; readers
  that need all-or-nothing visibility should use ``--format delta``, atomic by its log.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from engine._fsutil import atomic_write_json, read_json
from engine.errors import ExecutionError
from engine.s3_staging import S3RunStaging, json_bytes, put_object
from engine.staging import Sink
from engine.storage import Storage, _s3_error, check_bucket, key, state_dir

log = logging.getLogger("lakescore.s3_parquet_sink")

MANIFEST = "_manifest.json"


class S3ParquetSink(Sink):
    def __init__(self, uri: str, storage: Storage) -> None:
        super().__init__(state_dir(uri))
        self.uri = uri.rstrip("/")
        self.storage = storage
        self.fs = storage.filesystem()

    def check(self) -> None:
        check_bucket(self.uri, self.storage, "sink")

    def _exists(self, uri: str) -> bool:
        from pyarrow import fs

        try:
            return self.fs.get_file_info(key(uri)).type == fs.FileType.File
        except OSError as exc:
            raise ExecutionError(f"sink {self.uri}: {_s3_error(exc)}") from None

    def is_committed(self, run_id: str) -> bool:
        if (self.staging_root / run_id / "commit.json").exists():
            return True  # past the commit point: rolled forward by the next invocation
        return self._exists(f"{self.uri}/{run_id}/{MANIFEST}")

    def read_run_record(self, run_id: str) -> dict[str, Any] | None:
        local = super().read_run_record(run_id)
        if local is not None:
            return local
        uri = f"{self.uri}/_lakescore/run_records/{run_id}.json"
        if not self._exists(uri):
            return None
        with self.fs.open_input_stream(key(uri)) as fh:
            return json.loads(fh.read())

    def remove_if_empty(self, uri: str) -> None:
        from pyarrow import fs

        try:
            selector = fs.FileSelector(key(uri), allow_not_found=True)
            if not self.fs.get_file_info(selector):
                self.fs.delete_dir(key(uri))
        except OSError:
            pass  # a marker left behind is harmless

    def put_json(self, uri: str, doc: Any) -> None:
        put_object(self.fs, uri, json_bytes(doc))

    def staging(self, run_id: str) -> S3ParquetRunStaging:
        return S3ParquetRunStaging(self, run_id)


class S3ParquetRunStaging(S3RunStaging):
    sink: S3ParquetSink

    def __init__(self, sink: S3ParquetSink, run_id: str) -> None:
        super().__init__(sink, run_id)
        self.data_uri = f"{sink.uri}/_lakescore/staging/{run_id}/data"
        self.target_uri = f"{sink.uri}/{run_id}"

    def commit(self, expected_parts: set[str], run_record: dict[str, Any]) -> None:
        manifest = self.dir / "commit.json"
        if not manifest.exists() and not self.sink.is_committed(self.run_id):
            self.check_parts(expected_parts)
            atomic_write_json(manifest, {"parts": sorted(expected_parts)})  # commit point
        if manifest.exists():
            parts = read_json(manifest)["parts"]
            try:
                for part in parts:  # server-side copies; redoing one is harmless
                    self.sink.fs.copy_file(
                        key(f"{self.data_uri}/{part}"), key(f"{self.target_uri}/{part}")
                    )
            except OSError as exc:
                raise ExecutionError(f"run {self.run_id}: copy failed: {_s3_error(exc)}") from None
            self.sink.put_json(f"{self.target_uri}/{MANIFEST}", {"run_id": self.run_id,
                                                                "files": parts})  # fmt: skip
        self.finish(run_record)

    def discard(self) -> None:
        self.remove_staged_objects()
        super().discard()
        # pyarrow leaves empty "directory" markers above what it wrote: remove the ones
        # that are empty now, so a run that wrote nothing leaves the bucket as it was
        for uri in (f"{self.sink.uri}/_lakescore/staging", f"{self.sink.uri}/_lakescore",
                    self.sink.uri):  # fmt: skip
            self.sink.remove_if_empty(uri)

    def remove_staged_objects(self) -> None:
        """Staged objects left behind are harmless (readers skip ``_lakescore/``)."""
        try:
            self.sink.fs.delete_dir(key(f"{self.sink.uri}/_lakescore/staging/{self.run_id}"))
        except OSError as exc:
            log.warning("run %s: staged parts not removed: %s", self.run_id, _s3_error(exc))
