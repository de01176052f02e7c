"""The coordinator: plan a run, execute its tasks, commit the result, write the run record.

It runs on the driver and never touches score data; workers write parts, and only task
records (counts, timings, summaries) come back.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kernels
from cluster import Executor, TaskFailed, make_executor
from engine.delta_sink import DeltaSink
from engine.errors import BadInputError, ExecutionError, LakescoreError
from engine.features import resolve_features
from engine.lake_options import LakeOptions
from engine.plan import ScoreTask, job_fingerprint, plan_tasks
from engine.progress import Progress
from engine.source import open_source
from engine.spec import JobSpec
from engine.staging import check_sink, new_run_id
from engine.stats import ColumnSummary
from engine.storage import Storage, is_uri, local_copy
from engine.task import ScoringWorker, TaskResult, WorkerConfig

log = logging.getLogger("lakescore.coordinator")

RUN_RECORD_VERSION = 1


@dataclass
class ScoreResult:
    """What a run did; ``status`` is ``ok`` or ``failed``."""

    run_id: str
    sink: str
    status: str
    rows_scored: int
    tasks: int
    tasks_resumed: int
    seconds: float
    stats: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float:
        return self.rows_scored / self.seconds if self.seconds > 0 else 0.0


class WorkerFactory:
    """Builds a :class:`ScoringWorker` where it is called (a thread, an actor).

    In this process it reuses the kernel the driver already compiled; pickled (for a
    remote worker) it carries only the config, and the worker compiles its own.
    """

    def __init__(self, config: WorkerConfig, kernel: kernels.Kernel | None = None) -> None:
        self.config = config
        self._kernel = kernel

    def __call__(self) -> ScoringWorker:
        return ScoringWorker(self.config, kernel=self._kernel)

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config, "_kernel": None}


def run_job(
    spec: JobSpec, *, executor: Executor | None = None, progress: bool = True
) -> ScoreResult:
    """Plan, execute and commit ``spec``. Raises :class:`LakescoreError` subclasses."""
    started = time.perf_counter()
    started_at = dt.datetime.now(dt.UTC).isoformat()

    # Plan: every check that can fail on bad input runs before anything is written.
    storage = Storage.of(spec.storage)
    model_path = str(local_copy(spec.model, storage)) if is_uri(spec.model) else spec.model
    try:
        forest = kernels.load_model(model_path, trust_pickle=spec.trust_pickle)
    except kernels.KernelError as exc:
        raise BadInputError(str(exc)) from None
    features = resolve_features(forest.feature_names, spec.columns)
    lake = LakeOptions.of(spec)
    scan = open_source(
        spec.source,
        features,
        spec.id_column,
        version=spec.source_version,
        timestamp=spec.source_timestamp,
        filter=lake.row_filter,
        storage=storage,
    )
    files = scan.files
    sink_path = spec.sink if is_uri(spec.sink) else Path(spec.sink)
    if not is_uri(spec.sink):
        check_sink(Path(spec.sink))
    id_field = files[0].schema.field(spec.id_column) if spec.id_column else None
    output = lake.output_schema(forest, id_field)
    lake.check_source(files, output)
    sink = lake.open_sink(sink_path, spec.format, storage)
    if isinstance(sink, DeltaSink):  # an incompatible table is bad input, found before writing
        sink.check(output)
    tasks = plan_tasks(files, task_rows=spec.task_rows, filter=lake.row_filter, storage=storage)
    if not tasks:
        raise BadInputError(f"source {spec.source}: no row group can match --filter {spec.filter}")
    fingerprint = job_fingerprint(
        model_sha256=forest.sha256,
        source=spec.source if is_uri(spec.source) else str(Path(spec.source).resolve()),
        files=files,
        id_column=spec.id_column,
        features=features,
        extra=lake.fingerprint(),
    )
    run_id = spec.run_id or sink.find_resumable(fingerprint) or new_run_id()

    if sink.is_committed(run_id) and not (sink.staging_root / run_id).exists():
        record = sink.read_run_record(run_id) or {}
        if record.get("fingerprint", fingerprint) != fingerprint:
            raise BadInputError(
                f"run id {run_id} was committed for a different job "
                "(model, source files or columns changed); use a new run id"
            )
        log.info("run %s is already committed; nothing to do", run_id)
        return _result_from_record(run_id, sink_path, record, started)

    # Compile once on the driver too: a bad backend fails here, before staging exists.
    try:  # the forest is already loaded: compiling it must not read the file again
        kernel = kernels.compile_model(forest, backend=spec.backend)
    except kernels.KernelError as exc:
        raise BadInputError(str(exc)) from None
    job_doc = {
        "model": spec.model,
        "model_sha256": forest.sha256,
        "source": spec.source,
        "source_version": scan.delta_version,
        "sink": spec.sink,
        "id_column": spec.id_column,
        "features": features,
        "backend": kernel.backend,
        "cluster": spec.cluster,
        "format": spec.format,
    }
    with contextlib.ExitStack() as cleanup:
        if executor is None:  # an unknown --cluster is bad input: fail before staging exists
            try:
                executor = make_executor(spec.cluster, threads=spec.workers)
            except ValueError as exc:
                raise BadInputError(f"cluster: {exc}") from None
            cleanup.callback(executor.shutdown)  # whatever happens from here on
        created = sink.missing_dirs()
        with sink.staging(run_id) as staging:
            staging.start(fingerprint, job_doc)
            config = WorkerConfig(
                model_path=model_path,
                model_sha256=forest.sha256,
                backend=kernel.backend,
                feature_columns=tuple(features.values()),
                id_column=spec.id_column,
                run_id=run_id,
                data_dir=staging.data_location(),
                tasks_dir=str(staging.tasks_dir),
                batch_rows=spec.batch_rows,
                trust_pickle=spec.trust_pickle,
                partition_by=lake.partition_by,
                run_dir_in_partition=spec.format == "parquet" and bool(lake.partition_by),
                storage=storage,
            )
            finished = staging.finished_tasks()
            planned_ids = {t.task_id for t in tasks}
            finished = {k: v for k, v in finished.items() if k in planned_ids}
            pending = [t for t in tasks if t.task_id not in finished]
            log.info(
                "run %s: %d task(s), %d already done, %d row(s), backend %s",
                run_id,
                len(tasks),
                len(finished),
                sum(t.num_rows for t in tasks),
                kernel.backend,
            )
            results = dict(finished)
            bar = Progress(sum(t.num_rows for t in pending), enabled=progress)
            record_base = {
                "version": RUN_RECORD_VERSION,
                "run_id": run_id,
                "started_at": started_at,
                "host": platform.node(),
                "executor": executor.name,
                "kernel_version": 1,
                "fingerprint": fingerprint,
                **job_doc,
            }
            try:
                if not sink.is_committed(run_id):
                    for result in executor.execute(WorkerFactory(config, kernel), pending):
                        results[result.task_id] = result
                        bar.update(result.rows)
            except TaskFailed as exc:
                cause = exc.cause
                if isinstance(cause, BadInputError):
                    # Bad data found while reading: a resume cannot help (fixing the file
                    # changes the job), so leave the sink exactly as it was before the run.
                    staging.discard()
                    sink.remove_empty_dirs(created)
                    raise cause from None
                staging.record_failure(
                    _record(record_base, tasks, results, started, "failed", error=str(cause))
                )
                if isinstance(cause, LakescoreError):
                    raise cause from None
                raise ExecutionError(f"task {exc.task.task_id} failed: {cause}") from cause
            finally:
                bar.close()
            record = _record(record_base, tasks, results, started, "ok", resumed=len(finished))
            parts = {p for t in tasks for p in results[t.task_id].part_paths()}
            staging.commit(parts, record)
    log.info("run %s committed: %d rows in %.2f s", run_id, record["rows"], record["seconds"])
    return _result_from_record(run_id, sink_path, record, started)


def _record(
    base: dict[str, Any],
    tasks: list[ScoreTask],
    results: dict[str, TaskResult],
    started: float,
    status: str,
    error: str | None = None,
    resumed: int = 0,
) -> dict[str, Any]:
    stats: dict[str, ColumnSummary] = {}
    stage_seconds: dict[str, float] = {}
    for r in results.values():
        for name, summary in r.stats.items():
            stats[name] = stats.get(name, ColumnSummary()).merge(ColumnSummary.from_dict(summary))
        for stage, s in r.seconds.items():
            stage_seconds[stage] = stage_seconds.get(stage, 0.0) + s
    seconds = time.perf_counter() - started
    rows = sum(r.rows for r in results.values())
    record = {
        **base,
        "status": status,
        "finished_at": dt.datetime.now(dt.UTC).isoformat(),
        "rows": rows,
        "tasks": len(tasks),
        "tasks_done": len(results),
        "seconds": round(seconds, 3),
        "rows_per_second": round(rows / seconds, 1) if seconds > 0 else None,
        "stage_seconds": {k: round(v, 3) for k, v in sorted(stage_seconds.items())},
        "stats": {name: summary.to_dict() for name, summary in sorted(stats.items())},
        "tasks_resumed": resumed,
    }
    if error is not None:
        record["error"] = error
    return record


def _result_from_record(
    run_id: str, sink: Path | str, record: dict[str, Any], started: float
) -> ScoreResult:
    return ScoreResult(
        run_id=run_id,
        sink=str(sink),
        status=str(record.get("status", "ok")),
        rows_scored=int(record.get("rows", 0)),
        tasks=int(record.get("tasks", 0)),
        tasks_resumed=int(record.get("tasks_resumed", 0)),
        seconds=float(record.get("seconds", time.perf_counter() - started)),
        stats=dict(record.get("stats", {})),
        record=record,
    )
