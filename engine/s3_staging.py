"""What the two S3 sinks share (:mod:`engine.s3_delta_sink`, :mod:`engine.s3_parquet_sink`).

Object storage has no lock and no rename, so a run on an ``s3://`` sink is split in two:

* its parts are objects in the bucket, under the run's ``data_uri`` (each appears whole
  when its upload completes, or not at all; a retried task overwrites its own);
* its staging records (job fingerprint, lock, task records, the staged quality files)
  stay on the driver's disk, in the sink's state folder (:func:`engine.storage.state_dir`).

A task is finished when its record is on disk and all of its parts are in the bucket.
Once the run is committed, :meth:`S3RunStaging.finish` uploads the run's quality tables
and profile to ``<sink>/_lakescore/`` and then its run record (see :meth:`upload_quality`
for the order and what a reader may rely on); a crash in between is finished by the
next invocation, which finds the run committed and the staged files still on disk.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from engine.errors import ExecutionError
from engine.staging import META_DIR, RunStaging
from engine.storage import _s3_error, key
from engine.task import TaskResult, read_task_record

log = logging.getLogger("lakescore.s3_staging")

#: the table whose row marks a run's quality rows as complete: uploaded after the others
RUNS_TABLE = "runs"


def put_object(filesystem: Any, uri: str, data: bytes) -> None:
    """One object, whole: S3 makes it visible only when its upload completes."""
    with filesystem.open_output_stream(key(uri)) as out:
        out.write(data)


def json_bytes(doc: Any) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


class S3RunStaging(RunStaging):
    """A run on an S3 sink; subclasses set ``data_uri`` (where workers upload parts)."""

    sink: Any  # an S3 sink: has ``uri`` (no trailing slash), ``fs`` and ``is_committed``
    data_uri: str

    def data_location(self) -> str:
        return self.data_uri

    def _objects(self) -> set[str]:
        """Paths (relative to ``data_uri``) of the parts uploaded so far."""
        from pyarrow import fs

        selector = fs.FileSelector(key(self.data_uri), recursive=True, allow_not_found=True)
        try:
            infos = self.sink.fs.get_file_info(selector)
        except OSError as exc:
            raise ExecutionError(f"sink {self.data_uri}: {_s3_error(exc)}") from None
        root = key(self.data_uri) + "/"
        return {i.path[len(root) :] for i in infos if i.type == fs.FileType.File}

    def _records(self) -> dict[str, TaskResult]:
        out: dict[str, TaskResult] = {}
        if self.tasks_dir.is_dir():
            for path in self.tasks_dir.glob("*.json"):
                try:
                    result = read_task_record(path)
                except (ValueError, TypeError, OSError):
                    continue  # a torn record: redo the task
                out[result.task_id] = result
        return out

    def finished_tasks(self) -> dict[str, TaskResult]:
        """Tasks whose record is on disk and whose parts are all in the bucket."""
        records = self._records()
        if self.sink.is_committed(self.run_id):
            return records
        present = self._objects()
        return {k: r for k, r in records.items() if set(r.part_paths()) <= present}

    def check_parts(self, expected_parts: set[str]) -> None:
        """Before the commit point: every part the tasks reported is in the bucket."""
        present = self._objects()
        if not expected_parts <= present:
            missing = sorted(expected_parts - present)[:3]
            raise ExecutionError(f"run {self.run_id}: staged parts missing: {missing}")

    def meta_uri(self, rel: str) -> str:
        return f"{self.sink.uri}/{META_DIR}/{rel}"

    def upload_quality(self) -> None:
        """Upload the run's staged quality files to ``<sink>/_lakescore/<same path>``.

        Each file is one object (one PUT), so it appears whole or not at all. The
        ``runs`` table's file goes last: a run listed in ``runs`` has all of its rows in
        ``feature_stats``, ``score_stats`` and ``drift`` and its profile, so readers that
        join on the ``runs`` table see each run's rows all or nothing. Rerunning after a
        crash uploads the same files again (same names, same bytes).
        """
        if not self.quality_dir.is_dir():
            return
        staged = sorted(p for p in self.quality_dir.rglob("*") if p.is_file())
        staged.sort(key=lambda p: p.relative_to(self.quality_dir).parts[0] == RUNS_TABLE)
        for path in staged:
            rel = path.relative_to(self.quality_dir).as_posix()
            try:
                put_object(self.sink.fs, self.meta_uri(rel), Path(path).read_bytes())
            except OSError as exc:
                raise ExecutionError(
                    f"run {self.run_id}: quality file {rel} not uploaded: {_s3_error(exc)}"
                ) from None

    def upload_record(self, run_record: dict[str, Any]) -> None:
        put_object(
            self.sink.fs, self.meta_uri(f"run_records/{self.run_id}.json"), json_bytes(run_record)
        )

    def remove_staged_objects(self) -> None:
        """Objects of the run the commit no longer needs (none unless a sink stages some)."""

    def finish(self, run_record: dict[str, Any]) -> None:
        """After the commit point: quality files, the record, staged objects, local state
        (the local staging folder goes last: while it exists, a rerun rolls forward)."""
        self.upload_quality()
        self.upload_record(run_record)
        self.remove_staged_objects()
        super().finish(run_record)

    def record_failure(self, run_record: dict[str, Any]) -> None:
        super().record_failure(run_record)
        self.upload_record(run_record)
