"""End to end: a Parquet lake -> committed scores, against the kernel alone on the same rows.

The lake holds the benchmark rows (``ROWS`` x 50 float32, 2% NaN) plus a ``customer_id``,
hive-partitioned into 8 files. Contenders, each with 2 threads:

- ``lakescore score``: ``engine.score`` with the local executor (plan, read, features,
  kernel, write, stats, commit); every round writes a new run into a fresh sink;
- ``native``: the plain single-process pipeline (read the table, stack the columns,
  ``inplace_predict``, write one Parquet file).

Ray contenders (2 CPUs each):

- ``lakescore-ray``: ``engine.score(cluster="ray")`` on a 2-CPU Ray started once for the
  module (as on a standing cluster: the actors, their kernels and the run are timed, Ray's
  own start is not). Compare with ``lakescore-e2e`` (local executor): DESIGN allows Ray
  10% overhead;
- ``raydata+xgboost``: ``ray.data.read_parquet -> map_batches(XGBoost) -> write_parquet``,
  the way a Ray user would write it. It runs as one scoring actor of ``num_cpus=1`` (with
  XGBoost on 2 threads) so the read tasks keep a CPU: two actors of ``num_cpus=1`` starve
  the reads on 2 CPUs and hang (DESIGN's stack notes). lakescore's target: >= 3x.

DESIGN target for ``lakescore score``: >= 0.85 of the Numba kernel's own rows/s on the
same matrix (the ``xgboost-reference`` rows of the table, 2 threads).
"""

from __future__ import annotations

import logging
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import pytest
from conftest import N_FEATURES, ROUNDS
from contenders import score_lake_natively

import engine


@pytest.mark.parametrize("layout", ["C", "F"])
def test_kernel_alone(run_contender, checked_kernels, bench_X, layout):
    """The share's denominator, in the same run: the 2-thread kernel on the whole matrix,
    row-major (``C``, as the kernel benchmark) and feature-major (``F``, the engine's
    layout); the share uses the faster."""
    kernel = checked_kernels[2]
    X = bench_X if layout == "C" else np.asfortranarray(bench_X)
    kernel.predict(X[:1000])  # this layout's specialisation, compiled or loaded
    name = "kernel alone" if layout == "C" else "kernel alone, F"
    note = "Kernel.predict, " + ("row-major" if layout == "C" else "feature-major")
    run_contender("end-to-end", name, 2, lambda: kernel.predict(X), note=note)


def test_lakescore_end_to_end(run_contender, checked_kernels, reference_path, reference_lake,
                              tmp_path, bench_X):  # fmt: skip
    kernel_result = checked_kernels[2].predict(bench_X[:1000])  # warm, and a check below
    sinks = iter(range(1_000_000))

    def score() -> engine.ScoreResult:
        sink = tmp_path / f"sink-{next(sinks)}"
        return engine.score(
            model=reference_path, source=reference_lake, sink=sink, id_column="customer_id",
            workers=2,
        )  # fmt: skip

    result = run_contender("end-to-end", "lakescore score", 2, score, note="engine.score, local")
    assert result.rows_scored == bench_X.shape[0]
    table = (
        ds.dataset(Path(result.sink))
        .to_table(filter=ds.field("customer_id") < 1000, columns=["customer_id", "score"])
        .sort_by("customer_id")
    )
    np.testing.assert_allclose(table["score"].to_numpy(), kernel_result, atol=1e-6)


def test_share_in_alternating_rounds(benchmark, checked_kernels, reference_path, reference_lake,
                                     tmp_path, bench_X, capsys):  # fmt: skip
    """The share again, robust to a shared machine whose speed drifts by 20-30% over a
    minute (seen here): ``ROUNDS`` pairs, each the kernel alone (the faster of its two
    layouts) right before one ``engine.score`` run, and the share taken per pair. Prints
    the median pair's share and every pair's, in wall and in CPU seconds.

    It also prints what bounds the share: the run's CPU outside its kernel stage (reading,
    features, statistics, writing, the driver), and the share a run would reach were
    that work its only cost (kernel CPU alone / (kernel CPU alone + that work)), with no
    idle core and a kernel as fast as alone; and the kernel stage's CPU against the kernel
    alone's (above 1: the kernel ran slower beside the other stages)."""
    kernel = checked_kernels[2]
    layouts = (bench_X, np.asfortranarray(bench_X))
    sinks = iter(range(1_000_000))
    pairs: list[tuple[float, float, float, float]] = []  # kernel wall, CPU; e2e wall, CPU
    run_kernel_cpu: list[float] = []  # the run's kernel stage CPU, per pair

    def timed(fn) -> tuple[float, float]:
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        return time.perf_counter() - start, time.process_time() - start_cpu

    def score() -> None:
        result = engine.score(
            model=reference_path, source=reference_lake, sink=tmp_path / f"s{next(sinks)}",
            id_column="customer_id", workers=2,
        )  # fmt: skip
        run_kernel_cpu.append(result.record["stage_cpu_seconds"]["kernel"])

    def alternate() -> None:
        for X in layouts:
            kernel.predict(X[:1000])
        score()  # warm: the first run loads the kernel and imports the pipeline's modules
        run_kernel_cpu.clear()
        for _ in range(max(ROUNDS, 3)):
            alone = min((timed(lambda X=X: kernel.predict(X)) for X in layouts), key=min)
            pairs.append((*alone, *timed(score)))

    benchmark.pedantic(alternate, rounds=1, iterations=1)
    wall = sorted(k / e for k, _, e, _ in pairs)
    cpu = sorted(k / e for _, k, _, e in pairs)
    other = [e - run_k for (_, _, _, e), run_k in zip(pairs, run_kernel_cpu, strict=True)]
    bound = [k / (k + o) for (_, k, _, _), o in zip(pairs, other, strict=True)]
    slower = [run_k / k for (_, k, _, _), run_k in zip(pairs, run_kernel_cpu, strict=True)]
    kernel_s, run_s = (statistics.median(p[i] for p in pairs) for i in (0, 2))
    with capsys.disabled():
        print(
            f"\nshare of the kernel alone in {len(pairs)} alternating pairs: median "
            f"{wall[len(wall) // 2]:.2f} wall ({', '.join(f'{x:.2f}' for x in wall)}), "
            f"{cpu[len(cpu) // 2]:.2f} CPU ({', '.join(f'{x:.2f}' for x in cpu)}); "
            f"median seconds: kernel alone {kernel_s:.2f}, end to end {run_s:.2f}"
        )
        print(
            f"what bounds it, medians: CPU outside the kernel {statistics.median(other):.2f} s "
            f"per run, so at best a share of {statistics.median(bound):.3f}; the run's kernel "
            f"CPU / the kernel alone's {statistics.median(slower):.3f}"
        )


def test_pyarrow_xgboost_pipeline(run_contender, reference_booster, reference_lake, tmp_path):
    reference_booster.set_param({"nthread": 2})
    out = tmp_path / "xgb-scores.parquet"

    def score() -> int:
        return score_lake_natively(reference_booster, reference_lake, out, N_FEATURES)

    note = "pyarrow read + XGBoost inplace_predict + write"
    assert run_contender("end-to-end", "native", 2, score, note=note) > 0


# --- on Ray ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A 2-CPU Ray for the module's Ray contenders (its start is not timed)."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    # Actors cannot import this benchmark module: ship its classes by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield
    ray.shutdown()


def test_lakescore_on_ray(run_contender, reference_path, reference_lake, tmp_path, bench_X,
                          local_ray):  # fmt: skip
    sinks = iter(range(1_000_000))

    def score() -> engine.ScoreResult:
        return engine.score(
            model=reference_path, source=reference_lake, sink=tmp_path / f"s{next(sinks)}",
            id_column="customer_id", cluster="ray",
        )  # fmt: skip

    result = run_contender("end-to-end", "lakescore score, ray", 2, score, note="engine.score, Ray")
    assert result.rows_scored == bench_X.shape[0]
    assert result.record["executor"] == "ray"


class _XGBoostScorer:
    """A Ray Data callable class: loads the booster once per actor."""

    def __init__(self, model_path: str, features: list[str]) -> None:
        import xgboost as xgb

        self.booster = xgb.Booster(model_file=model_path)
        self.booster.set_param({"nthread": 2})
        self.features = features

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        X = np.column_stack([batch[f].astype(np.float32) for f in self.features])
        return {"customer_id": batch["customer_id"], "score": self.booster.inplace_predict(X)}


def test_ray_data_xgboost_pipeline(run_contender, reference_path, reference_lake, tmp_path,
                                   local_ray):  # fmt: skip
    import ray

    features = [f"f{j}" for j in range(N_FEATURES)]
    outputs = iter(range(1_000_000))

    def score() -> int:
        out = tmp_path / f"out-{next(outputs)}"
        ds = ray.data.read_parquet(str(reference_lake), columns=["customer_id", *features])
        ds = ds.map_batches(
            _XGBoostScorer,
            fn_constructor_args=(str(reference_path), features),
            batch_format="numpy",
            batch_size=65_536,
            concurrency=1,
            num_cpus=1,
        )
        ds.write_parquet(str(out))
        return sum(1 for _ in Path(out).glob("*.parquet"))

    note = "Ray Data read_parquet + map_batches(XGBoost) + write_parquet"
    assert run_contender("end-to-end", "ray data", 2, score, note=note) > 0
