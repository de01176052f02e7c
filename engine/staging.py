"""The sink's staging area and the atomic commit of a run.

Layout (everything under ``_lakescore/`` is ignored by dataset readers)::

    <sink>/_lakescore/staging/<run_id>/job.json          fingerprint of the job
    <sink>/_lakescore/staging/<run_id>/lock              held by the running coordinator
    <sink>/_lakescore/staging/<run_id>/data/part-<task>.parquet
    <sink>/_lakescore/staging/<run_id>/tasks/<task>.json written after its part
    <sink>/_lakescore/staging/<run_id>/quality/<table>/<run_id>.parquet, profiles/...
    <sink>/<run_id>/part-<task>.parquet                  after the commit
    <sink>/_lakescore/<table>/<run_id>.parquet           runs, feature_stats, score_stats,
                                                         drift (engine.quality.tables)
    <sink>/_lakescore/profiles/<run_id>.json             the run's profile (sketches)
    <sink>/_lakescore/run_records/<run_id>.json          the run record

The commit point is one directory rename (``data/`` -> ``<sink>/<run_id>/``), atomic on a
local filesystem: readers see all of a run's rows or none. Everything after it (moving
the staged quality tables and profile into place, the run record, removing the staging
directory) is rolled forward by the next invocation if the process dies in between, so a
committed run is never committed twice and a failed or aborted run adds no quality rows.
Run records lived in ``_lakescore/runs/`` before that name became the ``runs`` Parquet
table; :meth:`Sink.read_run_record` still finds them there, and the next commit moves them
to ``run_records/``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

from engine._fsutil import atomic_write_json, fsync_dir, read_json
from engine.errors import BadInputError, ExecutionError
from engine.task import TaskResult, read_task_record

META_DIR = "_lakescore"


def new_run_id() -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{now}-{secrets.token_hex(3)}"


def check_sink(sink: Path) -> None:
    """The sink must be a directory or not exist yet (its parent is created on demand)."""
    if sink.exists() and not sink.is_dir():
        raise BadInputError(f"sink {sink} is a file, not a directory")
    for parent in sink.parents:
        if parent.exists():
            if not parent.is_dir():
                raise BadInputError(f"sink {sink}: {parent} is a file, not a directory")
            break


class Sink:
    """A Parquet sink directory: its committed runs, run records and staging areas."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.meta = self.root / META_DIR
        self.staging_root = self.meta / "staging"
        self.runs_dir = self.meta / "run_records"
        self._legacy_runs_dir = self.meta / "runs"  # records of sinks written before

    def committed_dir(self, run_id: str) -> Path:
        return self.root / run_id

    def run_record_path(self, run_id: str) -> Path:
        return self.runs_dir / f"{run_id}.json"

    def is_committed(self, run_id: str) -> bool:
        return self.committed_dir(run_id).is_dir()

    def read_run_record(self, run_id: str) -> dict[str, Any] | None:
        for path in (self.run_record_path(run_id), self._legacy_runs_dir / f"{run_id}.json"):
            if path.exists():
                return read_json(path)
        return None

    def migrate_legacy_records(self) -> None:
        """Move JSON run records out of ``runs/`` (now the ``runs`` Parquet table, which
        dataset readers could not read with JSON files in it) into ``run_records/``."""
        if not self._legacy_runs_dir.is_dir():
            return
        for legacy in sorted(self._legacy_runs_dir.glob("*.json")):
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            os.replace(legacy, self.runs_dir / legacy.name)

    def find_resumable(self, fingerprint: str) -> str | None:
        """The newest unfinished run of the same job, if any."""
        if not self.staging_root.is_dir():
            return None
        for run_dir in sorted(self.staging_root.iterdir(), reverse=True):
            job = run_dir / "job.json"
            if job.exists() and read_json(job).get("fingerprint") == fingerprint:
                return run_dir.name
        return None

    def missing_dirs(self) -> list[Path]:
        """The sink's directories that do not exist yet (a run creates them)."""
        candidates = [*self.root.parents, self.root, self.meta, self.staging_root]
        return [d for d in candidates if not d.exists()]

    def remove_empty_dirs(self, created: list[Path]) -> None:
        """Undo the creation of ``created`` directories that are still empty."""
        for d in sorted(created, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                d.rmdir()

    def staging(self, run_id: str) -> RunStaging:
        return RunStaging(self, run_id)


class RunStaging:
    """One run's staging directory. Use as a context manager: it holds the run's lock."""

    def __init__(self, sink: Sink, run_id: str) -> None:
        self.sink = sink
        self.run_id = run_id
        self.dir = sink.staging_root / run_id
        self.data_dir = self.dir / "data"
        self.tasks_dir = self.dir / "tasks"
        #: files staged to land under ``<sink>/_lakescore/`` at the same relative path
        self.quality_dir = self.dir / "quality"
        self._lock_fd: int | None = None

    def __enter__(self) -> RunStaging:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / "lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ExecutionError(
                f"run {self.run_id} is already running in another process"
            ) from None
        self._lock_fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def start(self, fingerprint: str, job: dict[str, Any]) -> None:
        """Record the job (first start) or check it is the same job (resume)."""
        job_path = self.dir / "job.json"
        if job_path.exists():
            recorded = read_json(job_path).get("fingerprint")
            if recorded != fingerprint:
                raise BadInputError(
                    f"run id {self.run_id} was started for a different job "
                    "(model, source files or columns changed); use a new run id"
                )
        else:
            atomic_write_json(job_path, {"fingerprint": fingerprint, "run_id": self.run_id, **job})
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.tasks_dir.mkdir(parents=True, exist_ok=True)

    def data_location(self) -> str:
        """Where workers write this run's parts (a directory, or a URI in a subclass)."""
        return str(self.data_dir)

    def finished_tasks(self) -> dict[str, TaskResult]:
        """Tasks whose record and part both exist (a part without record is redone)."""
        done: dict[str, TaskResult] = {}
        if not self.tasks_dir.is_dir():
            return done
        for record in self.tasks_dir.glob("*.json"):
            try:
                result = read_task_record(record)
            except (ValueError, TypeError, OSError):
                continue  # a torn record: redo the task
            parts = result.part_paths()
            if all((self.data_dir / p).exists() for p in parts) or self.sink.is_committed(
                self.run_id
            ):
                done[result.task_id] = result
        return done

    def commit(self, expected_parts: set[str], run_record: dict[str, Any]) -> None:
        """Publish the run: the rename is the commit point; the rest rolls forward."""
        target = self.sink.committed_dir(self.run_id)
        if not target.exists():
            present = {p.name for p in self.data_dir.glob("part-*.parquet")}
            missing = sorted(expected_parts - present)[:3]
            if missing:
                raise ExecutionError(f"run {self.run_id}: staged parts missing: {missing}")
            # Temporary files of killed writers, and parts of tasks an earlier attempt of
            # this run planned and this one did not (another task_rows, another version
            # of the planner): never published.
            for stray in self.data_dir.iterdir():
                if stray.name not in expected_parts:
                    stray.unlink()
            fsync_dir(self.data_dir)
            os.rename(self.data_dir, target)
            fsync_dir(self.sink.root)
        self.finish(run_record)

    def finish(self, run_record: dict[str, Any]) -> None:
        self.sink.migrate_legacy_records()
        if self.quality_dir.is_dir():
            for staged in sorted(p for p in self.quality_dir.rglob("*") if p.is_file()):
                target = self.sink.meta / staged.relative_to(self.quality_dir)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staged, target)
                fsync_dir(target.parent)
        atomic_write_json(self.sink.run_record_path(self.run_id), run_record)
        shutil.rmtree(self.dir, ignore_errors=True)

    def discard(self) -> None:
        """Remove this run's staging area (its parts were never published)."""
        shutil.rmtree(self.dir, ignore_errors=True)

    def record_failure(self, run_record: dict[str, Any]) -> None:
        """Keep the staging area for a resume; note the failure in the run record."""
        atomic_write_json(self.sink.run_record_path(self.run_id), run_record)
