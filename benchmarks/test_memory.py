"""Peak RSS of ``lakescore score`` is flat in dataset size (DESIGN: 10M rows within 1.5 GB).

Each size gets a lake of the benchmark's distribution (50 float32 features, 2% NaN, an
int64 id) in files of at most 1M rows with row groups of 65,536, written file by file so
this process never holds the dataset. ``lakescore score`` then runs in a subprocess under
``/usr/bin/time -v`` (local executor, 2 workers): its "Maximum resident set size" is the
figure, one row per size side by side (printed with ``-s`` and in ``extra_info``).

``LAKESCORE_BENCH_MEMORY_ROWS`` (default ``1000000,10000000``) picks the sizes; a smoke
run uses e.g. ``20000,200000``. The 10M lake takes about 2 GB of disk.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import N_FEATURES, make_features

SIZES = [
    int(n) for n in os.environ.get("LAKESCORE_BENCH_MEMORY_ROWS", "1000000,10000000").split(",")
]
FILE_ROWS = 1_000_000
LIMIT_MIB = 1536  # DESIGN: 10M rows within 1.5 GB
TIME = Path("/usr/bin/time")
_RSS: dict[int, float] = {}


def write_lake(root: Path, rows: int) -> None:
    for i, start in enumerate(range(0, rows, FILE_ROWS)):
        n = min(FILE_ROWS, rows - start)
        X = make_features(n, seed=100 + i)
        columns = {"customer_id": pa.array(np.arange(start, start + n, dtype=np.int64))}
        for j in range(N_FEATURES):
            columns[f"f{j}"] = pa.array(X[:, j], mask=np.isnan(X[:, j]))
        part = root / f"region=r{i}"
        part.mkdir(parents=True)
        pq.write_table(pa.table(columns), part / "part-0.parquet", row_group_size=65_536)


@pytest.mark.skipif(not TIME.exists(), reason="needs GNU time (/usr/bin/time -v)")
@pytest.mark.parametrize("rows", SIZES)
def test_peak_rss_of_lakescore_score(benchmark, rows, reference_path, tmp_path):
    lake, sink = tmp_path / "lake", tmp_path / "sink"
    write_lake(lake, rows)
    lakescore = Path(sys.executable).with_name("lakescore")
    cmd = [str(TIME), "-v", str(lakescore), "score", "--model", str(reference_path),
           "--source", str(lake), "--sink", str(sink), "--id-column", "customer_id"]  # fmt: skip
    done = benchmark.pedantic(
        lambda: subprocess.run(cmd, capture_output=True, text=True, check=False),
        rounds=1,
        iterations=1,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rss_mib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)[1]) / 1024
    _RSS[rows] = rss_mib
    benchmark.extra_info.update(rows=rows, peak_rss_mib=round(rss_mib, 1))
    shutil.rmtree(lake)
    print()
    print("| rows | lakescore score peak RSS (MiB) |")
    print("|---:|---:|")
    for n, rss in sorted(_RSS.items()):
        print(f"| {n:,} | {rss:,.0f} |")
    assert rss_mib <= LIMIT_MIB
