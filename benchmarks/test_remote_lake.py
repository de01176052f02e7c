"""Small files on object storage, as far away as S3: ``REMOTE_FILES`` objects of a few
rows on moto's S3 server, behind a proxy that holds every request back ``DELAY_S`` (a
round trip to S3 is tens of milliseconds; to moto on loopback about one). Contenders, 2
threads each, scores to a local sink:

* ``engine.score`` as it is: footers read 16 at a time when planning, a task's small
  objects fetched 8 at a time, no request for an object's size;
* ``engine.score`` one request at a time (both set to 1): what the round trips cost;
* the native pipeline: ``pyarrow.dataset`` on the same bucket (Arrow's own I/O threads),
  ``inplace_predict``, one Parquet file written.

The note of each row counts the requests of its last round. moto answers from one Python
process on the same 2 cores, so its CPU (about 9 ms a request here) bounds every
contender alike; S3 itself would not.

The moto server and the proxy are the tests' (``tests/jobs``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import N_FEATURES
from contenders import score_lake_natively

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "jobs"))
from latency_proxy import LatencyProxy
from s3_helpers import s3_endpoint, s3fs  # noqa: F401 (a fixture)

import engine
from engine import remote_source, task_input

REMOTE_FILES = 300
ROWS_PER_FILE = 100
REMOTE_ROWS = REMOTE_FILES * ROWS_PER_FILE
DELAY_S = 0.02
MODEL = f"remote small files ({REMOTE_FILES} objects, {DELAY_S * 1000:g} ms a request)"


@pytest.fixture(scope="module")
def remote(s3_endpoint: str, bench_X: np.ndarray) -> Iterator[tuple[str, LatencyProxy]]:  # noqa: F811
    """``s3://remote/lake`` (hive partitions by region), and the proxy every contender
    reaches it through."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "lakescore-bench")
        env.setenv("AWS_SECRET_ACCESS_KEY", "bench")
        env.setenv("AWS_REGION", "us-east-1")
        s3 = s3fs(s3_endpoint)
        s3.create_dir("remote")
        for i in range(REMOTE_FILES):
            rows = np.arange(i * ROWS_PER_FILE, (i + 1) * ROWS_PER_FILE)
            columns = {"customer_id": pa.array(rows.astype(np.int64))}
            for j in range(N_FEATURES):
                col = bench_X[rows, j]
                columns[f"f{j}"] = pa.array(col, mask=np.isnan(col))
            part = f"remote/lake/region=r{i % 4}/part-{i:05d}.parquet"
            with s3.open_output_stream(part) as out:
                pq.write_table(pa.table(columns), out)
        with LatencyProxy(int(s3_endpoint.rsplit(":", 1)[1]), DELAY_S) as proxy:
            env.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
            yield "s3://remote/lake", proxy


@pytest.mark.parametrize("at_once", [True, False], ids=["at-once", "one-at-a-time"])
def test_lakescore_remote_small_files(run_contender, reference_path, remote, tmp_path,
                                      checked_kernels, bench_X, monkeypatch, at_once):  # fmt: skip
    lake, proxy = remote
    if not at_once:
        monkeypatch.setattr(remote_source, "FOOTERS_AT_ONCE", 1)
        monkeypatch.setattr(task_input, "REMOTE_FILES_AT_ONCE", 1)
    sinks = iter(range(1_000_000))

    def score() -> engine.ScoreResult:
        proxy.reset()
        return engine.score(
            model=reference_path, source=lake, sink=tmp_path / f"sink-{next(sinks)}",
            id_column="customer_id", workers=2,
        )  # fmt: skip

    warm = score()
    contender = "lakescore" if at_once else "lakescore, one request at a time"
    result = run_contender(MODEL, contender, 2, score, rows=REMOTE_ROWS, note="")
    requests, _ = proxy.reset()
    run_contender.results[
        (MODEL, 2, contender)
    ].note = f"engine.score, {warm.tasks} tasks; requests: {dict(sorted(requests.items()))}"
    assert result.rows_scored == REMOTE_ROWS
    table = pq.read_table(Path(result.sink)).sort_by("customer_id")
    expected = checked_kernels[2].predict(bench_X[:REMOTE_ROWS])
    np.testing.assert_allclose(table["score"].to_numpy(), expected, atol=1e-6)


def test_native_remote_small_files(run_contender, reference_booster, remote, tmp_path):
    lake, proxy = remote
    reference_booster.set_param({"nthread": 2})
    out = tmp_path / "xgb-scores.parquet"
    filesystem = s3fs(proxy.endpoint)

    def score() -> int:
        proxy.reset()
        return score_lake_natively(
            reference_booster, lake.removeprefix("s3://"), out, N_FEATURES, filesystem
        )

    contender = "native"
    rows = run_contender(MODEL, contender, 2, score, rows=REMOTE_ROWS, note="")
    requests, _ = proxy.reset()
    run_contender.results[
        (MODEL, 2, contender)
    ].note = f"pyarrow.dataset + XGBoost; requests: {dict(sorted(requests.items()))}"
    assert rows == REMOTE_ROWS
