"""``lakescore profile``: the profile of a data set and of the model's scores on it.

The same tasks, workers and statistics as a scoring run (so a reference and a run are
measured identically), but nothing is written to a sink: the workers profile the rows
they score and the merged profile is saved as one JSON file. The source is read as a run
reads it: Parquet or the latest version of a Delta table, local or ``s3://``.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from pathlib import Path

import kernels
from cluster import TaskFailed, make_executor
from engine.errors import BadInputError, ExecutionError, LakescoreError
from engine.features import resolve_features
from engine.plan import plan_tasks
from engine.quality.profiler import profile_spec
from engine.quality.reference import Profile, merge_profiles
from engine.registry import resolve_model
from engine.source import open_source
from engine.storage import Storage, is_uri
from engine.task import ScoringWorker, WorkerConfig

log = logging.getLogger("lakescore.quality")


def build_profile(
    *,
    model: str,
    source: str,
    columns: dict[str, str] | None = None,
    batch_rows: int = 65_536,
    task_rows: int = 262_144,
    workers: int = 2,
    trust_pickle: bool = False,
) -> Profile:
    """Profile ``source``'s features and ``model``'s scores on it (no histogram edges:
    a reference has no reference)."""
    storage = Storage.of(None)  # s3:// sources and models: the endpoint of the environment
    resolved = resolve_model(model, None, storage)  # a path, s3:// (downloaded), NAME@ALIAS
    forest = resolved.load(trust_pickle=trust_pickle)
    try:
        kernel = kernels.compile_model(forest, backend="numba")
    except kernels.KernelError as exc:
        raise BadInputError(str(exc)) from None
    features = resolve_features(forest.feature_names, columns or {})
    scan = open_source(source, features, None, storage=storage)  # Parquet or Delta
    files = scan.files
    tasks = plan_tasks(files, task_rows=task_rows, storage=storage)
    with tempfile.TemporaryDirectory(prefix="lakescore-profile-") as scratch:
        config = WorkerConfig(
            model_path=resolved.path,
            model_sha256=forest.sha256,
            backend=kernel.backend,
            feature_columns=tuple(features.values()),
            id_column=None,
            run_id="profile",
            data_dir=scratch,
            tasks_dir=scratch,
            batch_rows=batch_rows,
            trust_pickle=trust_pickle,
            profile=profile_spec(features, files[0].schema),
            write=False,
            storage=storage,
        )
        worker = ScoringWorker(config, kernel=kernel)
        executor = make_executor("local", threads=workers)
        try:
            parts = [r.profile for r in executor.execute(lambda: worker, tasks)]
        except TaskFailed as exc:
            if isinstance(exc.cause, LakescoreError):
                raise exc.cause from None
            raise ExecutionError(f"task {exc.task.task_id} failed: {exc.cause}") from exc.cause
        finally:
            executor.shutdown()
    profile = merge_profiles(parts)
    profile.meta.update(
        created_at=dt.datetime.now(dt.UTC).isoformat(),
        model=model if "://" in model or resolved.name else str(Path(model).resolve()),
        model_sha256=forest.sha256,
        source=source if is_uri(source) else str(Path(source).resolve()),
        source_version=scan.delta_version,  # a Delta source: the version profiled
        features_columns=features,
    )
    log.info("profiled %d row(s) of %s", profile.rows, source)
    return profile
