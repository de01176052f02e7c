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
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kernels
from cluster import Executor, TaskFailed, make_executor
from engine import events
from engine.after_run import after_run
from engine.delta_sink import DeltaSink
from engine.errors import BadInputError, ExecutionError, LakescoreError, QualityCheckFailed
from engine.features import resolve_features
from engine.governance import plan_outputs
from engine.lake_options import LakeOptions
from engine.placement import execution_report
from engine.plan import ScoreTask, job_fingerprint, plan_tasks
from engine.progress import Progress
from engine.quality import (
    Profile,
    ProfileMerger,
    judge_run,
    merge_profiles,
    parse_checks,
    parse_drift,
    stage_quality,
)
from engine.quality.profiler import profile_spec
from engine.quality.reference import profile_edges, resolve_reference
from engine.quality.variant_drift import previous_run, resolve_variant_references, variant_edges
from engine.registry import resolve_model
from engine.source import open_source
from engine.spec import JobSpec
from engine.staging import check_sink, new_run_id
from engine.storage import Storage, is_uri
from engine.task import TaskResult, WorkerConfig
from engine.variant_stats import variants_record
from engine.variants import VariantPlan, variant_fields
from engine.worker_factory import WorkerFactory
from kernels.cache import RecentValues

log = logging.getLogger("lakescore.coordinator")

RUN_RECORD_VERSION = 1


@dataclass
class ScoreResult:
    """What a run did; ``status`` is ``ok``, ``warn`` or ``fail`` (a quality check failed;
    the run was committed) or ``failed``."""

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


#: The local executor's kernels, by (model sha256, backend, threads): a process that runs
#: another job on the same model (a backfill scoring one date after another) skips the
#: layout and the compiled-code cache's load (0.015-0.02 s of the reference model, before
#: any task can start). A Kernel is safe to share between threads and runs.
_driver_kernels: RecentValues[kernels.Kernel] = RecentValues(4)


def _driver_kernel(forest: kernels.Forest, backend: str, threads: int) -> kernels.Kernel:
    if not forest.sha256:  # not from a file: nothing to key it by
        return kernels.compile_model(forest, backend=backend, n_threads=threads)
    key = (forest.sha256, backend, threads)
    kernel = _driver_kernels.get(key)
    if kernel is None:
        kernel = _driver_kernels.put(
            key, kernels.compile_model(forest, backend=backend, n_threads=threads)
        )
    return kernel


def local_kernel_threads() -> int:
    """Threads per kernel call for the local executor: every core. Its tasks' calls share
    one pool of that many threads (:func:`kernels._threads.run_ranges`), so tasks scoring
    at once split the cores and a task scoring alone, such as the last of a run, gets them
    all. With an equal share per task fixed instead, the last task's kernel ran on one core
    while the other idled: 0.03-0.11 s of a 2.3 s reference run (``/proc/stat``)."""
    return kernels.default_threads()


def _executor_gpu_mode(backend: str) -> str:
    """GPU actors for ``auto`` where a cluster has GPUs, only them for ``cuda``."""
    return {"auto": "auto", "cuda": "only"}.get(backend, "never")


def _cpu_backend(backend: str) -> str:
    """The backend of a CPU worker when the job asks for ``backend``."""
    return "numba" if backend in ("auto", "cuda") else backend


def run_job(
    spec: JobSpec, *, executor: Executor | None = None, progress: bool = True
) -> ScoreResult:
    """Plan, execute and commit ``spec``. Raises :class:`LakescoreError` subclasses.

    Whatever the outcome, the after-run steps (metrics file, webhook) run once at the end.
    """
    outcome: dict[str, Any] = {}  # the run record as far as the run got
    try:
        result = _run_job(spec, executor, progress, outcome)
    except Exception as exc:
        if outcome.get("run_id"):
            events.run_failed(outcome, exc)
        after_run(spec, outcome or None, error=exc)
        raise
    after_run(spec, result.record)
    return result


def _run_job(
    spec: JobSpec, executor: Executor | None, progress: bool, outcome: dict[str, Any]
) -> ScoreResult:
    started = time.perf_counter()
    started_at = dt.datetime.now(dt.UTC).isoformat()

    # Plan: every check that can fail on bad input runs before anything is written.
    storage = Storage.of(spec.storage)
    # A registry model (NAME@VERSION / NAME@ALIAS) is checked against its stored sha256;
    # an s3:// model is downloaded once and loaded from that local copy.
    variants = None
    if spec.variants is not None:
        variants = VariantPlan(
            spec.variants, spec.registry, spec.id_column, spec.trust_pickle, storage=storage
        )
        model, forest = variants.resolved[0], variants.forests[0]
    else:
        model = resolve_model(spec.model, spec.registry, storage)
        forest = model.load(trust_pickle=spec.trust_pickle)
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
    scores = variant_fields(variants.config()) if variants else None  # variants' columns
    outputs = plan_outputs(spec, files, forest, scores)  # kept columns, id hash: checked here
    sink_path = spec.sink if is_uri(spec.sink) else Path(spec.sink)
    if not is_uri(spec.sink):
        check_sink(Path(spec.sink))
    output = lake.output_schema(outputs.schema)
    lake.check_source(files, output)
    sink = lake.open_sink(sink_path, spec.format, storage)
    if isinstance(sink, DeltaSink):  # an incompatible table is bad input, found before writing
        sink.check(output)
    tasks = plan_tasks(files, task_rows=spec.task_rows, filter=lake.row_filter, storage=storage)
    if not tasks:
        raise BadInputError(f"source {spec.source}: no row group can match --filter {spec.filter}")
    fingerprint = job_fingerprint(
        model_sha256=variants.fingerprint if variants else forest.sha256,
        source=spec.source if is_uri(spec.source) else str(Path(spec.source).resolve()),
        files=files,
        id_column=spec.id_column,
        features=features,
        outputs=outputs.doc,
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

    # Quality: a bad reference or limit is bad input, found before anything is written.
    drift_config, checks_config = parse_drift(spec.drift), parse_checks(spec.checks)
    reference_name, reference = resolve_reference(spec.reference, sink.runs_dir, sink.meta)
    variant_refs = None  # each variant's own reference: registry, previous run, or none
    if variants is not None:
        previous = previous_run(reference_name, reference, sink.runs_dir, sink.meta)
        variant_refs = resolve_variant_references(variants.registered_references(), previous)
    profiling = profile_spec(
        features,
        files[0].schema,
        profile_edges(reference),
        variant_edges(variant_refs) if variant_refs else None,
    )

    # Compile once on the driver too: a bad backend fails here, before staging exists.
    # These kernels serve the local executor (remote workers build their own).
    threads = local_kernel_threads()
    variant_kernels = variants.compile(spec.backend, threads) if variants else None
    try:  # the forest is already loaded: compiling it must not read the file again
        kernel = (
            variant_kernels[0] if variant_kernels else _driver_kernel(forest, spec.backend, threads)
        )
    except kernels.KernelError as exc:
        raise BadInputError(str(exc)) from None
    job_doc = {
        "model": spec.model,
        "model_sha256": forest.sha256,
        **({"registry_model": model.record(forest.sha256)} if model.name else {}),
        **({"variant_plan": variants.record()} if variants else {}),
        "source": spec.source,
        "source_version": scan.delta_version,
        "sink": spec.sink,
        "id_column": spec.id_column,
        "features": features,
        "backend": kernel.backend,
        "cluster": spec.cluster,
        "format": spec.format,
        **outputs.doc,
        "columns_written": outputs.written,
    }
    with contextlib.ExitStack() as cleanup:
        if executor is None:  # an unknown --cluster is bad input: fail before staging exists
            try:
                executor = make_executor(
                    spec.cluster,
                    threads=spec.workers,
                    actor_cpus=spec.actor_cpus,
                    gpu=_executor_gpu_mode(spec.backend),
                    task_retries=spec.task_retries,
                )
            except ValueError as exc:
                raise BadInputError(f"cluster: {exc}") from None
            cleanup.callback(executor.shutdown)  # whatever happens from here on
        created = sink.missing_dirs()
        with sink.staging(run_id) as staging:
            staging.start(fingerprint, job_doc)
            config = WorkerConfig(
                model_path=model.path,
                model_sha256=forest.sha256,
                backend=kernel.backend,
                feature_columns=tuple(features.values()),
                id_column=spec.id_column,
                run_id=run_id,
                data_dir=staging.data_location(),
                tasks_dir=str(staging.tasks_dir),
                batch_rows=spec.batch_rows,
                trust_pickle=spec.trust_pickle,
                variants=variants.config() if variants else None,
                profile=profiling,
                outputs=outputs.columns,
                partition_by=lake.partition_by,
                run_dir_in_partition=spec.format == "parquet" and bool(lake.partition_by),
                storage=storage,
            )
            finished = staging.finished_tasks()
            planned_ids = {t.task_id for t in tasks}
            finished = {k: v for k, v in finished.items() if k in planned_ids}
            pending = [t for t in tasks if t.task_id not in finished]
            events.run_planned(
                run_id,
                tasks=len(tasks),
                done=len(finished),
                rows=sum(t.num_rows for t in tasks),
                backend=kernel.backend,
                executor=executor.name,
                seconds=time.perf_counter() - started,
            )
            results = dict(finished)
            merger = ProfileMerger()  # each task's profile merged as it finishes
            for r in finished.values():
                merger.add(r.profile)
            bar = Progress(
                sum(t.num_rows for t in tasks),
                tasks=len(tasks),
                done_rows=sum(r.rows for r in finished.values()),
                done_tasks=len(finished),
                enabled=progress,
            )
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
                    factory = WorkerFactory(
                        config, kernel, variant_kernels, cpu_backend=_cpu_backend(spec.backend)
                    )
                    for result in executor.execute(factory, pending):
                        results[result.task_id] = result
                        merger.add(result.profile)
                        bar.update(result.rows, retried=executor.stats.tasks_retried)
                        events.task_finished(run_id, result)
            except TaskFailed as exc:
                cause = exc.cause
                if isinstance(cause, BadInputError):
                    # Bad data found while reading: a resume cannot help (fixing the file
                    # changes the job), so leave the sink exactly as it was before the run.
                    staging.discard()
                    sink.remove_empty_dirs(created)
                    raise cause from None
                failed = _record(record_base, tasks, results, started, "failed", error=str(cause))
                failed |= execution_report(executor.stats, results.values())
                outcome.update(failed)
                staging.record_failure(failed)
                if isinstance(cause, LakescoreError):
                    raise cause from None
                raise ExecutionError(f"task {exc.task.task_id} failed: {cause}") from cause
            finally:
                bar.close()
            quality_started = time.perf_counter(), time.thread_time()
            profile = merger.profile
            record = _record(
                record_base, tasks, results, started, "ok", resumed=len(finished), profile=profile
            )
            record |= execution_report(executor.stats, results.values())
            judgement = judge_run(
                profile,
                reference,
                reference_name,
                drift_config=drift_config,
                checks_config=checks_config,
                rows=record["rows"],
                seconds=time.perf_counter() - started,
                variant_references=variant_refs,
            )
            record.update(
                status=judgement.status,
                reference=reference_name,
                checks=judgement.checks,
                drift_status=judgement.drift_status,
                drift=[d.to_dict() for d in judgement.drift],
            )
            if variants is not None:  # rows, score distribution and drift per variant
                record["variants"] = variants_record(
                    job_doc["variant_plan"],
                    profile.variants,
                    judgement.variant_references,
                    judgement.variant_drift,
                )
            abort = checks_config.on_fail == "abort" and not sink.is_committed(run_id)
            if judgement.status == "fail" and abort:  # (past the commit point: roll forward)
                staging.discard()  # the sink stays exactly as it was before the run
                sink.remove_empty_dirs(created)
                failed = "; ".join(f"{c['name']}: {c['detail']}" for c in judgement.failed)
                raise QualityCheckFailed(
                    f"run {run_id} aborted (on_fail = abort), nothing committed: {failed}",
                    result=_result_from_record(run_id, sink_path, record, started),
                )
            # Staged tables land in <sink>/_lakescore/ on commit (a Delta table's too:
            # Delta readers skip "_" folders); an s3:// sink uploads them there.
            stage_quality(staging.quality_dir, record, profile, judgement, features)
            # The driver's share of the statistics' cost (merge, drift, checks, tables).
            quality_wall = time.perf_counter() - quality_started[0] + merger.seconds
            quality_cpu = time.thread_time() - quality_started[1] + merger.cpu_seconds
            record["quality_seconds"] = round(quality_wall, 3)
            record["quality_cpu_seconds"] = round(quality_cpu, 3)
            parts = {p for t in tasks for p in results[t.task_id].part_paths()}
            staging.commit(parts, record)
            outcome.update(record)
    events.run_committed(record)
    return _result_from_record(run_id, sink_path, record, started)


def _record(
    base: dict[str, Any],
    tasks: list[ScoreTask],
    results: dict[str, TaskResult],
    started: float,
    status: str,
    error: str | None = None,
    resumed: int = 0,
    profile: Profile | None = None,
) -> dict[str, Any]:
    scores = profile.scores if profile is not None else {}
    stage_seconds: dict[str, float] = {}
    stage_cpu_seconds: dict[str, float] = {}
    for r in results.values():
        for stage, s in r.seconds.items():
            stage_seconds[stage] = stage_seconds.get(stage, 0.0) + s
        for stage, s in r.cpu_seconds.items():
            stage_cpu_seconds[stage] = stage_cpu_seconds.get(stage, 0.0) + s
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
        # CPU of the thread that ran each stage (the kernel's: of the kernels' pool)
        "stage_cpu_seconds": {k: round(v, 3) for k, v in sorted(stage_cpu_seconds.items())},
        "tasks_by_backend": dict(Counter(r.backend for r in results.values() if r.backend)),
        "stats": {
            name: p.moments.to_dict() for name, p in sorted(scores.items()) if p.kind != "string"
        },
        "tasks_resumed": resumed,
    }
    if "variant_plan" in base and profile is None:  # a failed run: its finished tasks'
        # rows and scores per variant (a judged run gets its drift too, after judging)
        parts = ({"variants": r.profile.get("variants", {})} for r in results.values())
        record["variants"] = variants_record(base["variant_plan"], merge_profiles(parts).variants)
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
