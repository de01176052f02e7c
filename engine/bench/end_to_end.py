"""One short lake -> sink run of the model through the real engine, on a temporary lake.

The lake holds the benchmark rows (repeated to the requested count) as nullable float32
columns named by the model's features plus an id, in several Parquet files so every
worker has tasks. The run is a normal ``run_job``: plan, read, features, kernel, write,
statistics and the atomic commit, so its rate includes all of them. Stage timings come
from the run record (``stage_seconds``, summed over tasks).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import kernels
from engine.bench.machine import peak_rss_mib, usable_cores
from engine.bench.plan import bounding_stage, stage_shares
from engine.errors import BadInputError

log = logging.getLogger("lakescore.bench")

ROW_GROUP_ROWS = 65_536
#: Files of fewer rows than this are not worth a task of their own.
MIN_FILE_ROWS = 16_384


def write_lake(
    X: np.ndarray, feature_names: tuple[str, ...], root: Path, *, rows: int, files: int
) -> str:
    """Write ``rows`` rows (``X`` repeated) into ``files`` Parquet files; returns the id
    column's name (one no feature uses)."""
    id_column = "bench_row_id"
    while id_column in feature_names:
        id_column = "_" + id_column
    files = max(1, min(files, rows // MIN_FILE_ROWS))
    root.mkdir(parents=True, exist_ok=True)
    for i, ids in enumerate(np.array_split(np.arange(rows, dtype=np.int64), files)):
        block = X[ids % X.shape[0]]
        columns: dict[str, pa.Array] = {id_column: pa.array(ids)}
        for j, name in enumerate(feature_names):
            col = block[:, j]
            columns[name] = pa.array(col, mask=np.isnan(col))
        pq.write_table(
            pa.table(columns), root / f"part-{i:03d}.parquet", row_group_size=ROW_GROUP_ROWS
        )
    return id_column


def run_end_to_end(
    model: Path,
    forest: kernels.Forest,
    X: np.ndarray,
    *,
    rows: int,
    cluster: str = "local",
    backend: str = "auto",
    workers: int = 2,
    trust_pickle: bool = False,
    work_dir: Path | None = None,
) -> dict[str, Any]:
    """Score a temporary lake of ``rows`` rows into a temporary sink; the run's figures."""
    from cluster import make_executor
    from engine.coordinator import run_job
    from engine.spec import JobSpec

    cores = usable_cores()
    with tempfile.TemporaryDirectory(prefix="lakescore-bench-", dir=work_dir) as tmp:
        lake = Path(tmp) / "lake"
        id_column = write_lake(X, forest.feature_names, lake, rows=rows, files=2 * cores)
        spec = JobSpec(
            model=str(model),
            source=str(lake),
            sink=str(Path(tmp) / "sink"),
            id_column=id_column,
            backend=backend,
            cluster=cluster,
            workers=workers,
            trust_pickle=trust_pickle,
        )
        try:
            executor = make_executor(cluster, threads=workers)
        except ValueError as exc:
            raise BadInputError(f"--cluster {cluster}: {exc}") from None
        try:
            result = run_job(spec, executor=executor, progress=False)
            nodes, used = _resources(executor, cluster, cores)
        finally:
            executor.shutdown()
    record = result.record
    stages = {k: float(v) for k, v in record.get("stage_seconds", {}).items()}
    seconds = float(record.get("seconds", result.seconds))
    rate = result.rows_scored / seconds if seconds > 0 else 0.0
    return {
        "executor": record.get("executor", cluster),
        "cluster": cluster,
        "backend": record.get("backend", backend),
        "workers": workers,
        "rows": result.rows_scored,
        "tasks": result.tasks,
        "seconds": seconds,
        "rows_per_s": rate,
        "nodes": nodes,
        "cores": used,
        "rows_per_s_per_node": rate / nodes,
        "rows_per_s_per_core": rate / used,
        "stage_seconds": stages,
        "stage_share": stage_shares(stages),
        "bound_by": bounding_stage(stages),
        "status": result.status,
        "peak_rss_mib": peak_rss_mib(),
    }


def _resources(executor: Any, cluster: str, cores: int) -> tuple[int, int]:
    """(nodes, cores) the run used: this machine for ``local``; for Ray, the nodes alive
    and the CPUs of the actor pool (asked while still connected)."""
    if cluster == "local":
        return 1, cores
    from cluster.ray_connection import import_ray

    ray = import_ray()
    extra = executor.stats.extra
    used = round(extra.get("actors", 0) * extra.get("cpus_per_actor", 0))
    nodes = 1
    if ray.is_initialized():
        alive = [n for n in ray.nodes() if n.get("Alive") and n["Resources"].get("CPU", 0) > 0]
        nodes = max(1, len(alive))
        used = used or int(ray.cluster_resources().get("CPU", cores))
    return nodes, max(1, used)


def check_cluster(spec: str) -> None:
    """Refuse a ``--cluster`` value that cannot work before anything is measured: an
    unknown form, a missing ``ray`` package, or an address that does not answer."""
    from cluster import make_executor

    if spec == "local":
        raise BadInputError("--cluster local: the local run is always made; name a Ray cluster")
    try:
        executor = make_executor(spec)  # connects to an address; "ray" starts on first use
    except ValueError as exc:
        raise BadInputError(f"--cluster {spec}: {exc}") from None
    executor.shutdown()
