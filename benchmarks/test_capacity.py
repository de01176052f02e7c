"""The developers' twin of ``lakescore bench``: the same cases on the reference model.

- ``model-rows``: the kernel and XGBoost on rows generated from the model's own thresholds
  (``engine.bench.rows``: every leaf reached), 1 and 2 threads; the family table prints
  the ratio;
- ``batch-<rows>``: both contenders scoring the matrix in slices of 16k, 64k and 256k rows
  (2 threads), as ``lakescore bench`` sweeps batch sizes;
- compile time in a fresh process, cold (empty model and Numba caches) and cached, in
  ``extra_info`` (``--benchmark-json``) and pytest-benchmark's own table;
- ``capacity-e2e``: ``lakescore bench``'s end-to-end run (a temporary lake of the rows,
  local executor), with its stage shares and the plan for 500M rows in 2h in
  ``extra_info``; the "other contenders" table prints its share of the kernel's rows/s.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ROWS

import kernels
from engine.bench.backends import compile_times
from engine.bench.end_to_end import run_end_to_end
from engine.bench.plan import Measured, project
from engine.bench.rows import Rows, generate_rows

BATCHES = (16_384, 65_536, 262_144)


@pytest.fixture(scope="module")
def model_rows(reference_forest: kernels.Forest) -> Rows:
    return generate_rows(reference_forest, ROWS, seed=1)


@pytest.mark.parametrize("contender", ["lakescore", "native"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_model_rows(run_contender, checked_kernels, reference_booster, model_rows, n_threads,
                    contender):  # fmt: skip
    X = model_rows.X
    if contender == "lakescore":
        predict = checked_kernels[n_threads].predict
        np.testing.assert_allclose(
            predict(X[:10_000]), reference_booster.inplace_predict(X[:10_000]), atol=1e-5
        )
    else:
        reference_booster.set_param({"nthread": n_threads})
        predict = reference_booster.inplace_predict
    result = run_contender("capacity", f"model-rows:{contender}", n_threads, lambda: predict(X))
    assert result.shape == (X.shape[0],)


@pytest.mark.parametrize("contender", ["lakescore", "native"])
@pytest.mark.parametrize("batch", BATCHES)
def test_batch_sizes(run_contender, checked_kernels, reference_booster, bench_X, batch,
                     contender):  # fmt: skip
    if contender == "lakescore":
        predict = checked_kernels[2].predict
    else:
        reference_booster.set_param({"nthread": 2})
        predict = reference_booster.inplace_predict

    def score() -> int:
        for start in range(0, bench_X.shape[0], batch):
            predict(bench_X[start : start + batch])
        return bench_X.shape[0]

    assert run_contender("capacity", f"batch-{batch}:{contender}", 2, score) == bench_X.shape[0]


@pytest.mark.parametrize("cold", [True, False], ids=["cold", "cached"])
def test_compile_in_a_fresh_process(benchmark, reference_path, cold):
    benchmark.group = "compile (fresh process)"
    figures = benchmark.pedantic(
        lambda: compile_times(reference_path, "numba", cold=cold), rounds=1, iterations=1
    )
    assert figures["reason"] is None or not cold, figures["reason"]
    assert figures["cached_seconds"] is not None, figures["reason"]
    benchmark.extra_info.update(figures)


def test_capacity_end_to_end(run_contender, benchmark, checked_kernels, reference_path,
                             reference_forest, bench_X, tmp_path):  # fmt: skip
    checked_kernels[2].predict(bench_X[:1000])  # warm: the run times scoring, not compiling
    runs: list[dict] = []

    def score() -> dict:
        runs.append(run_end_to_end(reference_path, reference_forest, bench_X, rows=ROWS,
                                   workers=2, work_dir=tmp_path))  # fmt: skip
        return runs[-1]

    e2e = run_contender("capacity", "capacity-e2e", 2, score)
    assert e2e["rows"] == ROWS and e2e["status"] == "ok"
    best = max(runs, key=lambda r: r["rows_per_s"])
    m = Measured(best["rows_per_s"], best["cores"], best["nodes"], best["stage_seconds"],
                 rows=best["rows"])  # fmt: skip
    plan = project(500_000_000, 7200, 0.3, m)
    benchmark.extra_info.update(
        stage_share=best["stage_share"], bound_by=best["bound_by"],
        cores_needed_500M_2h=plan["cores_needed"], expected_seconds_here=plan["expected_seconds"],
    )  # fmt: skip
