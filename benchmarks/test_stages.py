"""Each stage of a task alone, one thread, on the end-to-end reference lake.

The same code the worker runs (engine/task.py): Parquet decode of the needed columns
(``read``), the feature-major matrix (``features``), the Numba kernel on that matrix
(``kernel``, 1 thread: the per-core rate), the quality profile of features and scores
(``stats``) and the part writer's encoding (``write``). Each is reported as rows/s and as
its time over the kernel's (``extra_info["share_of_kernel"]``, and the table printed with
``-s``): the sum of the other stages' shares is what the end-to-end run pays on top of
the kernel when the stages overlap perfectly. Thread CPU seconds are recorded beside the
wall seconds (``cpu_s``): on a shared machine they are the figure to compare.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import N_FEATURES, ROUNDS

import kernels
from engine.features import FeatureMatrixBuilder
from engine.quality.profiler import TaskProfiler, profile_spec
from engine.task import RUN_ID_COLUMN, _part_writer

FEATURES = [f"f{j}" for j in range(N_FEATURES)]
BATCH_ROWS = 65_536
_STAGES: dict[str, tuple[float, float]] = {}  # stage -> (best wall s, its thread CPU s)


def _best(fn) -> tuple[float, float]:
    best = (float("inf"), float("inf"))
    for _ in range(ROUNDS):
        w, c = time.perf_counter(), time.thread_time()
        fn()
        best = min(best, (time.perf_counter() - w, time.thread_time() - c))
    return best


@pytest.fixture(scope="module")
def lake_batches(reference_lake: Path) -> list[pa.RecordBatch]:
    return list(_decode(reference_lake))


def _decode(lake: Path):
    for path in sorted(lake.glob("*/*.parquet")):
        yield from pq.ParquetFile(path).iter_batches(
            batch_size=BATCH_ROWS, columns=[*FEATURES, "customer_id"], use_threads=False
        )


def test_stages_alone(benchmark, reference_lake, reference_forest, lake_batches, tmp_path):
    rows = sum(b.num_rows for b in lake_batches)
    kernel = kernels.compile_model(reference_forest, backend="numba", n_threads=1)
    builder = FeatureMatrixBuilder(FEATURES)
    kernel.predict(builder.build(lake_batches[0]))  # warm the feature-major specialisation
    scores = [kernel.predict(builder.build(b)) for b in lake_batches[:1]] * len(lake_batches)
    scores = [s[: b.num_rows] for s, b in zip(scores, lake_batches, strict=True)]

    def read() -> None:
        for _ in _decode(reference_lake):
            pass

    def features() -> None:
        for b in lake_batches:
            builder.build(b)

    def kernel_stage() -> None:
        for b in lake_batches:
            kernel.predict(builder.build(b))

    spec = profile_spec(dict(zip(FEATURES, FEATURES, strict=True)), lake_batches[0].schema)

    def stats() -> None:
        profiler = TaskProfiler(spec)
        for b, s in zip(lake_batches, scores, strict=True):
            profiler.add_features(builder.build(b), [b.column(c) for c in FEATURES])
            profiler.add_scores({"score": s})
        profiler.result()

    run_ids = pa.array(["run"])

    def write() -> None:
        writer = None
        for b, s in zip(lake_batches, scores, strict=True):
            run = pa.DictionaryArray.from_arrays(pa.array(np.zeros(len(s), np.int32)), run_ids)
            table = pa.table({"customer_id": b.column("customer_id"), "score": s,
                              RUN_ID_COLUMN: run})  # fmt: skip
            writer = writer or _part_writer(tmp_path / "part.parquet", table.schema)
            writer.write_table(table)
        writer.close()

    stats()  # Numba's profile pass, compiled or loaded from its cache
    for name, fn in (("read", read), ("kernel", kernel_stage), ("features", features),
                     ("stats", stats), ("write", write)):  # fmt: skip
        _STAGES[name] = _best(fn)
    # features and stats rebuild the matrix: count it once, in features
    for name in ("stats", "kernel"):
        _STAGES[name] = tuple(
            x - f for x, f in zip(_STAGES[name], _STAGES["features"], strict=True)
        )
    kernel_wall, kernel_cpu = _STAGES["kernel"]
    table = {
        name: {
            "rows_per_s": round(rows / wall),
            "rows_per_cpu_s": round(rows / cpu),
            "share_of_kernel": round(wall / kernel_wall, 4),
            "cpu_share_of_kernel": round(cpu / kernel_cpu, 4),
            "cpu_s": round(cpu, 4),
        }
        for name, (wall, cpu) in _STAGES.items()
    }
    benchmark.extra_info.update(rows=rows, stages=table)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)  # the figures are above
    print()
    print("| stage (1 thread) | rows/s | rows per CPU-s | share of kernel | CPU share |")
    print("|---|---:|---:|---:|---:|")
    for name, t in table.items():
        print(
            f"| {name} | {t['rows_per_s']:,} | {t['rows_per_cpu_s']:,} | "
            f"{t['share_of_kernel']:.3f} | {t['cpu_share_of_kernel']:.3f} |"
        )
