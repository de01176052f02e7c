"""A dry run: what a job would read and how long it would take, without writing anything.

``lakescore assess`` and ``lakescore score --dry-run`` plan the job as a run would (model,
source footers, tasks), then report what a team needs before the job goes nightly: how
much data there is, whether its schema fits the model (and, for a missing feature, the
columns it was probably meant to be), what a sample of the data looks like against the
reference profile, how fresh it is, and an estimate of the run's duration measured on a
sample with the compiled kernel. The sink is only looked at, never created or written.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path
from typing import Any

import kernels
from cluster.ray_connection import machine_cpus
from engine.assess_reference import compare, load_reference
from engine.assess_sample import STAGES, Sample, read_sample
from engine.assess_schema import check_schema
from engine.errors import BadInputError
from engine.features import resolve_features
from engine.governance import plan_outputs
from engine.lake_options import LakeOptions
from engine.plan import job_fingerprint, plan_tasks
from engine.registry import resolve_model
from engine.source import SourceFile, list_source
from engine.spec import JobSpec
from engine.staging import Sink, check_sink
from engine.storage import Storage, _s3_error, check_bucket, is_uri, key, open_parquet, state_dir

log = logging.getLogger("lakescore.assess")

#: Seconds a run spends starting a local Ray before its first task (DESIGN's stack notes).
RAY_START_SECONDS = 3.0


def assess(
    spec: JobSpec,
    *,
    reference: str | None = None,
    sample_rows: int = 50_000,
    sample_row_groups: int = 8,
    with_sink: bool = False,
) -> dict[str, Any]:
    """The assessment of ``spec`` as a JSON-able dict; ``problems`` lists what would stop
    the job (bad input), ``warnings`` what deserves a look. Raises :class:`BadInputError`
    only when there is nothing to assess (the model or the source cannot be read)."""
    started = time.perf_counter()
    storage = Storage.of(spec.storage)
    # As a run: a path, an s3:// model (downloaded) or NAME@ALIAS (sha256 checked); a
    # Parquet or Delta source (the version the run would read), local or s3://.
    forest = resolve_model(spec.model, spec.registry, storage).load(trust_pickle=spec.trust_pickle)
    features = resolve_features(forest.feature_names, spec.columns)
    scan = list_source(
        spec.source,
        version=spec.source_version,
        timestamp=spec.source_timestamp,
        storage=storage,
    )
    files = scan.files
    tasks = plan_tasks(files, task_rows=spec.task_rows, storage=storage)
    schema = check_schema(files, features, spec.id_column)
    problems = schema.problems
    rows = sum(f.num_rows for f in files)
    if rows == 0:
        problems.append(f"source {spec.source}: no rows to score ({len(files)} file(s))")
    report: dict[str, Any] = {
        "model": {"path": spec.model, "sha256": forest.sha256, "features": len(features)},
        "source": {
            "path": spec.source,
            "files": len(files),
            "row_groups": sum(len(f.row_group_rows) for f in files),
            "rows": rows,
            "bytes": sum(f.size for f in files),
            "bytes_to_read": _bytes_to_read(files, [*features.values(), spec.id_column], storage),
            "tasks": len(tasks),
            **({"delta_version": scan.delta_version} if scan.delta_version is not None else {}),
        },
        "schema": schema.to_dict(),
        "freshness": freshness(files),
    }
    plan_seconds = time.perf_counter() - started
    kernel, compile_seconds = None, 0.0
    if schema.features_ok:
        kernel, compile_seconds = _compile(forest, spec.backend)
    sample = read_sample(files, features, kernel=kernel, id_column=spec.id_column,
                         max_row_groups=sample_row_groups, max_rows=sample_rows,
                         batch_rows=spec.batch_rows, storage=storage)  # fmt: skip
    report["sample"] = sample.to_dict()
    warnings: list[str] = []
    if reference is not None:
        profile, note = load_reference(reference)
        report["reference"] = {"path": reference, "compared": profile is not None, "note": note}
        if profile is not None:
            report["reference"].update(compare(sample, profile))
            warnings += report["reference"]["warnings"]
    if kernel is not None and sample.scored_rows:
        report["estimate"] = estimate(
            sample, rows, cluster=spec.cluster, workers=spec.workers, backend=kernel.backend,
            plan_seconds=plan_seconds, compile_seconds=compile_seconds,
        )  # fmt: skip
    else:
        report["estimate"] = {"note": "no estimate: the job cannot run as it is"}
    outputs_doc: dict[str, Any] = {}
    if not problems:  # kept columns and the id hash, checked as the run would check them
        try:
            outputs = plan_outputs(spec, files, forest)
            report["outputs"] = {"columns_written": outputs.written, **outputs.doc}
            outputs_doc = outputs.doc
        except BadInputError as exc:
            problems.append(str(exc))
    if with_sink:
        report["sink"] = _look_at_sink(spec, forest.sha256, files, features, outputs_doc)
    report["problems"] = problems
    report["warnings"] = warnings
    report["exit_code"] = BadInputError.exit_code if problems else 0
    return report


def freshness(files: list[SourceFile]) -> dict[str, Any]:
    """The newest hive partition value per key and the newest file's modification time."""
    values: dict[str, set[str]] = {}
    for f in files:
        for part in Path(f.relpath).parts[:-1]:
            key, sep, value = part.partition("=")
            if sep:
                values.setdefault(key, set()).add(value)
    partitions = {}
    for key, seen in values.items():
        newest = max(seen, key=_partition_order)
        entry: dict[str, Any] = {"newest": newest, "values": len(seen)}
        day = _as_date(newest)
        if day is not None:
            entry["age_days"] = (dt.datetime.now(dt.UTC).date() - day).days
        partitions[key] = entry
    out: dict[str, Any] = {"partitions": partitions}
    if files:
        newest_file = max(files, key=lambda f: f.mtime_ns)
        mtime = dt.datetime.fromtimestamp(newest_file.mtime_ns / 1e9, dt.UTC)
        out["newest_file"] = newest_file.relpath
        out["newest_file_time"] = mtime.isoformat(timespec="seconds")
        out["newest_file_age_hours"] = round(
            (dt.datetime.now(dt.UTC) - mtime).total_seconds() / 3600, 2
        )
    return out


def estimate(
    sample: Sample,
    rows: int,
    *,
    cluster: str,
    workers: int,
    backend: str,
    plan_seconds: float,
    compile_seconds: float,
) -> dict[str, Any]:
    """Extrapolate the sample's per-row stage costs to ``rows`` on the chosen executor.

    The CPU kernel was timed on one thread, so the per-row figures are CPU-seconds. The
    local executor reads, converts and writes on ``workers`` threads and runs the kernel
    on every core; Ray actors each take one CPU for a whole task. Stages are added, not
    overlapped, so a real run is usually somewhat faster. The compile time is as measured
    here: a run after this one finds the kernel in the cache.
    """
    fixed_seconds = plan_seconds + compile_seconds
    per_row = sample.per_row()
    cpus = machine_cpus()
    io = sum(per_row[s] for s in STAGES if s != "kernel")
    kern = per_row["kernel"]
    cpu_kernel = backend == "numba"
    out: dict[str, Any] = {
        "executor": cluster,
        "backend": backend,
        "sample_rows": sample.scored_rows,
        "seconds_per_million_rows": {s: round(per_row[s] * 1e6, 3) for s in STAGES},
        "cpu_seconds": round(rows * (io + kern), 2),
        "plan_seconds": round(plan_seconds, 2),
        "compile_seconds": round(compile_seconds, 2),
    }
    if cluster == "local":
        seconds = rows * (io / min(workers, cpus) + (kern / cpus if cpu_kernel else kern))
        how = f"{min(workers, cpus)} IO thread(s), kernel on {cpus if cpu_kernel else 1} core(s)"
    elif cluster == "ray":
        seconds = rows * (io + kern) / cpus + RAY_START_SECONDS
        how = f"a local Ray of {cpus} one-CPU actor(s)"
    else:
        out["seconds"] = None
        out["note"] = (
            f"an estimate from {sample.scored_rows:,} rows measured here: the run needs about "
            f"{out['cpu_seconds']:,.0f} CPU-seconds; divide by the cluster's CPUs"
        )
        return out
    out["seconds"] = round(seconds + fixed_seconds, 2)
    out["note"] = f"an estimate from {sample.scored_rows:,} rows measured on this machine ({how})"
    return out


def _compile(forest: kernels.Forest, backend: str) -> tuple[kernels.Kernel | None, float]:
    """The kernel timed on one CPU thread (per-CPU costs), and its compile time."""
    import numpy as np

    start = time.perf_counter()
    try:
        kernel = kernels.compile_model(forest, backend=backend, n_threads=1)
        kernel.predict(np.zeros((1, forest.num_features), dtype=np.float32))
    except kernels.KernelError as exc:
        raise BadInputError(str(exc)) from None
    return kernel, time.perf_counter() - start


def _bytes_to_read(
    files: list[SourceFile], columns: list[str | None], storage: Storage | None = None
) -> int:
    """Compressed bytes of the column chunks the job reads (the footers say)."""
    wanted = {c for c in columns if c}
    total = 0
    for f in files:
        meta = open_parquet(f.path, storage).metadata
        for rg in range(meta.num_row_groups):
            group = meta.row_group(rg)
            for i in range(group.num_columns):
                chunk = group.column(i)
                if chunk.path_in_schema.split(".")[0] in wanted:
                    total += chunk.total_compressed_size
    return total


def _look_at_sink(
    spec: JobSpec,
    model_sha256: str,
    files: list[SourceFile],
    features: dict[str, str],
    outputs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What a run would find in the sink: nothing is created or locked."""
    if is_uri(spec.sink):
        return _look_at_s3_sink(spec, model_sha256, files, features, outputs)
    path = Path(spec.sink)
    check_sink(path)
    sink = Sink(path)
    fingerprint = job_fingerprint(
        model_sha256=model_sha256,
        source=str(Path(spec.source).resolve()),
        files=files,
        id_column=spec.id_column,
        features=features,
        outputs=outputs,
        extra=LakeOptions.of(spec).fingerprint(),  # --filter/--partition-by: as a run does
    )
    committed = 0
    if path.is_dir():
        committed = sum(
            1 for p in path.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))
        )
    return {
        "path": spec.sink,
        "exists": path.exists(),
        "committed_runs": committed,
        "resumable_run": sink.find_resumable(fingerprint),
    }


def _look_at_s3_sink(
    spec: JobSpec,
    model_sha256: str,
    files: list[SourceFile],
    features: dict[str, str],
    outputs: dict[str, Any] | None,
) -> dict[str, Any]:
    """An ``s3://`` sink: its bucket answers, its runs (one prefix each) are counted, and a
    resumable run is looked for in its local state folder, as a run would."""
    from pyarrow import fs

    storage = Storage.of(spec.storage)
    check_bucket(spec.sink, storage, "sink")
    try:
        selector = fs.FileSelector(key(spec.sink), allow_not_found=True)
        infos = storage.filesystem().get_file_info(selector)
    except OSError as exc:
        raise BadInputError(f"sink {spec.sink}: {_s3_error(exc)}") from None
    runs = [i for i in infos if i.type == fs.FileType.Directory]
    fingerprint = job_fingerprint(
        model_sha256=model_sha256,
        source=spec.source if is_uri(spec.source) else str(Path(spec.source).resolve()),
        files=files,
        id_column=spec.id_column,
        features=features,
        outputs=outputs,
        extra=LakeOptions.of(spec).fingerprint(),
    )
    return {
        "path": spec.sink,
        "exists": bool(infos),
        "committed_runs": sum(not i.base_name.startswith(("_", ".")) for i in runs),
        "resumable_run": Sink(state_dir(spec.sink)).find_resumable(fingerprint),
    }


def _partition_order(value: str) -> tuple[int, Any]:
    """Numbers by value, dates by date, anything else as text."""
    try:
        return (2, float(value))
    except ValueError:
        pass
    day = _as_date(value)
    if day is not None:
        return (1, day.toordinal())
    return (0, value)


def _as_date(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None
