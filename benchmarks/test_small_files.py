"""Many small files: the same rows as one file and as ``SMALL_FILES`` files of a few rows,
scored by ``engine.score`` (small files grouped into tasks, the default), by
``engine.score`` with a task per file (``task_rows=1``: how runs were planned before
grouping), and by the native pipeline (``pyarrow.dataset`` read on Arrow's threads,
``inplace_predict``, one Parquet file written). 2 threads each.

Every task pays a part file, a task record and its statistics, and every batch a kernel
launch and a statistics pass; Arrow pays about 1.5 ms to open and decode each file of 51
columns whatever its rows, for every contender alike.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from conftest import N_FEATURES, ROWS
from contenders import score_lake_natively

import engine

SMALL_FILES = 1000
#: a fifth of the benchmark rows (200,000 of 1M): a task per file takes ~17 s here
SMALL_ROWS = max(SMALL_FILES, ROWS // 5) // SMALL_FILES * SMALL_FILES
MODEL = f"small files ({SMALL_ROWS:,} rows)"


def _table(bench_X: np.ndarray, rows: np.ndarray) -> pa.Table:
    columns = {"customer_id": pa.array(rows.astype(np.int64))}
    for j in range(N_FEATURES):
        col = bench_X[rows, j]
        columns[f"f{j}"] = pa.array(col, mask=np.isnan(col))
    return pa.table(columns)


@pytest.fixture(scope="module")
def lakes(tmp_path_factory: pytest.TempPathFactory, bench_X: np.ndarray) -> dict[str, Path]:
    """``one``: the rows in one file (row groups of 65,536); ``many``: the same rows in
    ``SMALL_FILES`` files."""
    root = tmp_path_factory.mktemp("small-files")
    table = _table(bench_X, np.arange(SMALL_ROWS))
    (root / "one").mkdir()
    pq.write_table(table, root / "one" / "part-0.parquet", row_group_size=65_536)
    per_file = SMALL_ROWS // SMALL_FILES
    (root / "many").mkdir()
    for i in range(SMALL_FILES):
        pq.write_table(table.slice(i * per_file, per_file), root / "many" / f"part-{i:05d}.parquet")
    return {"one": root / "one", "many": root / "many"}


@pytest.mark.parametrize(
    ("contender", "lake", "task_rows"),
    [
        ("lakescore, 1 file", "one", None),
        (f"lakescore, {SMALL_FILES:,} files", "many", None),
        (f"lakescore, {SMALL_FILES:,} files, a task each", "many", 1),
    ],
)
def test_lakescore_small_files(run_contender, reference_path, lakes, tmp_path, checked_kernels,
                               bench_X, contender, lake, task_rows):  # fmt: skip
    sinks = iter(range(1_000_000))
    options = {} if task_rows is None else {"task_rows": task_rows}

    def score() -> engine.ScoreResult:
        return engine.score(
            model=reference_path, source=lakes[lake], sink=tmp_path / f"sink-{next(sinks)}",
            id_column="customer_id", workers=2, **options,
        )  # fmt: skip

    warm = score()  # the kernel and the modules loaded before the timed rounds
    note = f"engine.score, {warm.tasks} tasks"
    result = run_contender(MODEL, contender, 2, score, rows=SMALL_ROWS, note=note)
    assert result.rows_scored == SMALL_ROWS
    table = ds.dataset(Path(result.sink)).to_table(
        filter=ds.field("customer_id") < 1000, columns=["customer_id", "score"]
    )
    table = table.sort_by("customer_id")
    expected = checked_kernels[2].predict(bench_X[:1000])
    np.testing.assert_allclose(table["score"].to_numpy(), expected, atol=1e-6)


def test_native_small_files(run_contender, reference_booster, lakes, tmp_path):
    reference_booster.set_param({"nthread": 2})
    out = tmp_path / "xgb-scores.parquet"

    def score() -> int:
        return score_lake_natively(reference_booster, lakes["many"], out, N_FEATURES)

    note = "pyarrow.dataset read + XGBoost inplace_predict + write"
    assert run_contender(MODEL, f"native, {SMALL_FILES:,} files", 2, score, rows=SMALL_ROWS,
                         note=note) == SMALL_ROWS  # fmt: skip
