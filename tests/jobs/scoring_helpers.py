"""Helpers of the engine tests: a small model, small lakes, the CLI in a subprocess.

Everything is generated from fixed seeds. The model's features carry names, and the lake
holds them with the types a real lake has (float32 and float64 with nulls, integers,
booleans), hive-partitioned by region, several files, several row groups per file.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

ID = "customer_id"
FEATURES = ("spend_30d", "visits_90d", "age", "tenure_months", "has_app", "discount_share")
REGIONS = ("north", "south", "east")
FILES_PER_REGION = 2
ROWS_PER_FILE = 500
ROW_GROUP_ROWS = 128
MODEL_SEED = 1234
LAKE_SEED = 4321


def customer_columns(n: int, rng: np.random.Generator, first_id: int = 0) -> dict[str, pa.Array]:
    """``n`` customers as Arrow arrays: the model's features plus the id and a string."""
    age = rng.normal(42, 12, n).astype(np.float64)
    spend = rng.gamma(2.0, 40.0, n).astype(np.float32)
    share = rng.beta(2, 5, n).astype(np.float32)
    return {
        ID: pa.array(np.arange(first_id, first_id + n, dtype=np.int64)),
        "spend_30d": pa.array(spend, mask=rng.random(n) < 0.05),
        "visits_90d": pa.array(rng.poisson(6, n).astype(np.int32)),
        "age": pa.array(age, mask=rng.random(n) < 0.08),
        "tenure_months": pa.array(rng.integers(0, 240, n).astype(np.int16)),
        "has_app": pa.array(rng.random(n) < 0.4),
        "discount_share": pa.array(share, mask=rng.random(n) < 0.03),
        "nickname": pa.array([f"c{i}" for i in range(first_id, first_id + n)]),
    }


def feature_matrix(table: pa.Table, columns: dict[str, str] | None = None) -> np.ndarray:
    """The model's float32 feature matrix from a source table (nulls as NaN): the oracle's
    input, built independently of the engine."""
    columns = columns or {}
    out = np.empty((table.num_rows, len(FEATURES)), dtype=np.float32)
    for j, feature in enumerate(FEATURES):
        col = table.column(columns.get(feature, feature)).combine_chunks()
        col = pc.cast(col, pa.float64())
        out[:, j] = col.to_numpy(zero_copy_only=False).astype(np.float32)
    return out


def train_model(path: Path) -> None:
    import xgboost as xgb

    rng = np.random.default_rng(MODEL_SEED)
    table = pa.table(customer_columns(4000, rng))
    X = feature_matrix(table)
    z = (
        -1.0
        + 0.01 * np.nan_to_num(X[:, 0], nan=50.0)
        - 0.2 * X[:, 1]
        + 0.03 * np.nan_to_num(X[:, 2], nan=60.0)
        - 0.5 * X[:, 4]
        + 2.0 * np.nan_to_num(X[:, 5], nan=0.5)
    )
    y = (rng.random(len(z)) < 1 / (1 + np.exp(-z))).astype(np.float32)
    dtrain = xgb.DMatrix(X, label=y, feature_names=list(FEATURES), missing=np.nan)
    params = {
        "objective": "binary:logistic",
        "max_depth": 4,
        "eta": 0.3,
        "tree_method": "hist",
        "seed": MODEL_SEED,
        "nthread": 1,
    }
    booster = xgb.train(params, dtrain, num_boost_round=20)
    booster.save_model(path)


def write_lake(
    root: Path,
    *,
    regions: tuple[str, ...] = REGIONS,
    files_per_region: int = FILES_PER_REGION,
    rows_per_file: int = ROWS_PER_FILE,
    row_group_rows: int = ROW_GROUP_ROWS,
    seed: int = LAKE_SEED,
) -> Path:
    """A hive-partitioned lake ``root/region=<r>/part-<i>.parquet`` with unique ids."""
    rng = np.random.default_rng(seed)
    first_id = 0
    for region in regions:
        part = root / f"region={region}"
        part.mkdir(parents=True, exist_ok=True)
        for i in range(files_per_region):
            table = pa.table(customer_columns(rows_per_file, rng, first_id))
            pq.write_table(table, part / f"part-{i}.parquet", row_group_size=row_group_rows)
            first_id += rows_per_file
    return root


def read_source(path: Path) -> pa.Table:
    """Every row of a source (file or hive directory), files in sorted order."""
    if path.is_file():
        return pq.read_table(path)
    files = sorted(p for p in path.rglob("*.parquet") if not p.name.startswith(("_", ".")))
    return pa.concat_tables(pq.read_table(f) for f in files)


def read_sink(sink: Path) -> pa.Table:
    """The sink as a dataset reader sees it."""
    return ds.dataset(sink).to_table()


def oracle_scores(model: Path, table: pa.Table, columns: dict[str, str] | None = None):
    """``xgboost.Booster.inplace_predict`` on the rows of ``table``."""
    import xgboost as xgb

    booster = xgb.Booster(model_file=str(model))
    return booster.inplace_predict(feature_matrix(table, columns), missing=np.nan)


def snapshot(path: Path) -> dict[str, bytes | None] | None:
    """Every entry under ``path`` with its bytes (None for directories); None if absent."""
    if not path.exists():
        return None
    if path.is_file():
        return {".": path.read_bytes()}
    tree: dict[str, bytes | None] = {".": None}
    for p in sorted(path.rglob("*")):
        rel = p.relative_to(path).as_posix()
        tree[rel] = p.read_bytes() if p.is_file() else None
    return tree


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def lakescore_command() -> list[str]:
    script = Path(sys.executable).with_name("lakescore")
    return [str(script)] if script.exists() else [sys.executable, "-m", "engine.cli"]


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_cli(
    *args: str | Path, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*lakescore_command(), *map(str, args)],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(),
    )


def popen_cli(*args: str | Path, cwd: Path | None = None, log: Path) -> subprocess.Popen[bytes]:
    """Start ``lakescore ARGS`` in the background; stdout and stderr go to ``log``."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            [*lakescore_command(), *map(str, args)],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=cli_env(),
        )


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a failed command printed on stderr (asserts there is exactly one)."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    assert lines[0].startswith("lakescore: error: "), lines[0]
    return lines[0]


def run_ids(sink: Path) -> set[str]:
    """Committed run directories of a sink."""
    if not sink.is_dir():
        return set()
    return {p.name for p in sink.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))}


def run_record(sink: Path, run_id: str) -> dict[str, object]:
    return json.loads((sink / "_lakescore" / "run_records" / f"{run_id}.json").read_text())


def quality_table(sink: Path, name: str) -> pa.Table:
    """One of the sink's quality tables (runs, feature_stats, score_stats, drift), every
    run's rows; an empty table when the run added none."""
    path = sink / "_lakescore" / name
    if not path.is_dir():
        return pa.table({})
    return ds.dataset(path, format="parquet").to_table()


def scores_by_id(table: pa.Table, id_column: str = ID) -> dict[int, float]:
    ids = table.column(id_column).to_pylist()
    scores = table.column("score").to_numpy()
    by_id = dict(zip(ids, scores.tolist(), strict=True))
    assert len(by_id) == len(ids), "duplicate ids"
    return by_id


def assert_scored_exactly(
    scored: pa.Table, model: Path, source: pa.Table, atol: float = 1e-6
) -> None:
    """Every row of ``source`` is in ``scored`` once, by id, with the native library's
    score (``oracle_scores``) to within ``atol``."""
    got = scores_by_id(scored)
    expected = dict(zip(source.column(ID).to_pylist(), oracle_scores(model, source), strict=True))
    assert got.keys() == expected.keys()
    ids = list(expected)
    np.testing.assert_allclose([got[i] for i in ids], [expected[i] for i in ids], rtol=0, atol=atol)


def only_run(table: pa.Table, run_id: str) -> pa.Table:
    run = pc.cast(table.column("run_id"), pa.string())
    return table.filter(pc.equal(run, run_id))


class CountingTasks:
    """An iterator of tasks that records how far ahead of the results it was pulled."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.pulled = 0

    def __iter__(self) -> Iterator[int]:
        for i in range(self.n):
            self.pulled += 1
            yield i


def corrupt_first_page(path: Path) -> None:
    """Flip the bytes of a Parquet file's first page header: its footer still reads, its
    data does not decode (bad data found only while scoring)."""
    data = bytearray(path.read_bytes())
    data[4:68] = bytes(b ^ 0x5A for b in data[4:68])
    path.write_bytes(bytes(data))
