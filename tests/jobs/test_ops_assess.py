"""``lakescore assess`` and ``score --dry-run``: plan and report, never write.

The lakes are the engine tests' small hive lake (6 files x 4 row groups, 3,000 rows) and
copies of it with a renamed or mistyped column.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from scoring_helpers import FEATURES, ID, snapshot, write_lake

from engine import JobSpec
from engine.assess import assess, estimate, freshness
from engine.assess_sample import ColumnSample, Sample
from engine.assess_schema import near_misses
from engine.source import list_parquet_files, read_footer


def rename_column(lake: Path, old: str, new: str, only: str | None = None) -> None:
    for path in sorted(lake.rglob("*.parquet")):
        if only is None or only in str(path):
            table = pq.read_table(path)
            names = [new if c == old else c for c in table.column_names]
            pq.write_table(table.rename_columns(names), path, row_group_size=128)


def spec(model: Path, lake: Path, **kw) -> JobSpec:
    return JobSpec(model=str(model), source=str(lake), sink=kw.pop("sink", ""), **kw)


@pytest.mark.parametrize(
    ("missing", "columns", "expected"),
    [
        ("spend_30d", ["Spend_30D", "visits"], ["Spend_30D"]),
        ("spend_30d", ["spend 30d", "spend-30d", "x"], ["spend 30d", "spend-30d"]),
        ("tenure_months", ["tenure_month", "age"], ["tenure_month"]),
        ("has_app", ["customer_id", "age"], []),
    ],
)
def test_near_misses(missing: str, columns: list[str], expected: list[str]) -> None:
    assert near_misses(missing, columns) == expected


def test_dry_run_on_a_renamed_column_names_the_near_miss_and_exits_2(
    cli, model_file: Path, copy_lake, tmp_path: Path
) -> None:
    lake = copy_lake()
    rename_column(lake, "spend_30d", "Spend_30D")
    before = snapshot(lake)
    sink = tmp_path / "new" / "scores"
    proc = cli("score", "--dry-run", "--model", model_file, "--source", lake, "--sink", sink,
               "--id-column", ID)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.splitlines()[-1]
    assert last.startswith("lakescore: error: feature column 'spend_30d' not found")
    assert "near misses: 'Spend_30D'" in last
    assert "spend_30d" in proc.stdout and "missing" in proc.stdout  # the table printed
    assert not sink.parent.exists()
    assert snapshot(lake) == before


def test_assess_json_reports_the_source(
    cli, model_file: Path, lake: Path, lake_table: pa.Table, committed_sink_copy: Path
) -> None:
    before = snapshot(committed_sink_copy)
    proc = cli("assess", "--model", model_file, "--source", lake, "--id-column", ID,
               "--sink", committed_sink_copy, "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    files = sorted(p for p in lake.rglob("*.parquet"))
    assert r["source"] | {"path": None} == {
        "path": None,
        "files": 6,
        "row_groups": 24,
        "rows": 3000,
        "bytes": sum(p.stat().st_size for p in files),
        "bytes_to_read": r["source"]["bytes_to_read"],
        "tasks": 3,  # a region's two small files share a task
    }
    assert 0 < r["source"]["bytes_to_read"] < r["source"]["bytes"]  # nickname is not read
    assert r["schema"]["ok"] and r["schema"]["extra_columns"] == ["nickname"]
    assert r["problems"] == [] and r["exit_code"] == 0
    # 3,000 rows < the 50,000-row sample: every row was read, so the figures are exact.
    assert r["sample"]["rows"] == 3000
    for name in FEATURES:
        col = pc.cast(lake_table.column(name), pa.float64())
        got = r["sample"]["columns"][name]
        assert got["null_rate"] == pytest.approx(col.null_count / 3000, abs=1e-6)
        assert got["min"] == pytest.approx(pc.min(col).as_py())
        assert got["max"] == pytest.approx(pc.max(col).as_py())
    assert r["freshness"]["partitions"]["region"] == {"newest": "south", "values": 3}
    newest = max(files, key=lambda p: p.stat().st_mtime_ns)
    assert r["freshness"]["newest_file"] == newest.relative_to(lake).as_posix()
    est = r["estimate"]
    assert est["executor"] == "local" and est["backend"] == "numba"
    assert est["sample_rows"] == 3000 and est["seconds"] > 0
    assert "estimate" in est["note"]
    assert r["sink"] == {
        "path": str(committed_sink_copy),
        "exists": True,
        "committed_runs": 1,
        "resumable_run": None,
    }
    assert snapshot(committed_sink_copy) == before


@pytest.fixture
def committed_sink_copy(engine_data: Path, kernel_warm: None, tmp_path: Path) -> Path:
    import shutil

    sink = tmp_path / "scores"
    shutil.copytree(engine_data / "warm-sink", sink)
    return sink


def test_assess_table_and_run_dry_run(cli, model_file: Path, lake: Path, tmp_path: Path) -> None:
    job = tmp_path / "job.toml"
    job.write_text(f'model = "{model_file}"\nsource = "{lake}"\nsink = "scores"\n')
    proc = cli("run", job, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    for word in ("3,000 rows", "spend_30d", "freshness", "estimate    about", "would be created"):
        assert word in proc.stdout
    assert not (tmp_path / "scores").exists()


def test_mistyped_and_partly_missing_columns(model_file: Path, copy_lake) -> None:
    lake = copy_lake()
    path = lake / "region=east" / "part-0.parquet"
    table = pq.read_table(path)
    i = table.column_names.index("age")
    table = table.set_column(i, "age", pc.cast(table.column("age"), pa.string()))
    pq.write_table(table, path, row_group_size=128)
    rename_column(lake, "visits_90d", "visits-90d", only="region=north")
    r = assess(spec(model_file, lake, id_column=ID))
    by_column = {c["column"]: c for c in r["schema"]["columns"]}
    assert by_column["age"]["status"] == "mistyped"
    assert set(by_column["age"]["types"]) == {"double", "string"}
    assert by_column["age"]["bad_type"] == "string"
    assert any(f"{path}: feature column 'age' has type string" in p for p in r["problems"])
    assert by_column["visits_90d"]["status"] == "partial"
    assert by_column["visits_90d"]["files_missing"] == 2
    assert by_column["visits_90d"]["near_misses"] == ["visits-90d"]
    assert r["exit_code"] == 2 and len(r["problems"]) == 2
    assert "estimate" in r and r["estimate"].get("seconds") is None
    # The sample still reads what it can: age from the files where it is numeric.
    assert 0 < r["sample"]["columns"]["age"]["rows"] < r["sample"]["rows"]


def test_reference_profiles(model_file: Path, lake: Path, lake_table: pa.Table, tmp_path: Path):
    ref = tmp_path / "ref.json"
    ref.write_text(json.dumps({"features": {
        "spend_30d": {"null_rate": 0.0, "min": 0.0, "max": 1e9},  # nulls jumped 5 points
        "age": {"count": 100, "nan": 0, "min": 30.0, "max": 50.0},  # out of range both ways
        "has_app": {"null_rate": 0.0, "min": 0, "max": 1},  # as it was
    }}))  # fmt: skip
    r = assess(spec(model_file, lake), reference=str(ref))
    assert r["reference"]["compared"] is True
    cols = r["reference"]["columns"]
    assert cols["has_app"]["flags"] == []
    assert any("null rate" in f for f in cols["spend_30d"]["flags"])
    assert any("min" in f for f in cols["age"]["flags"])
    assert any("max" in f for f in cols["age"]["flags"])
    assert "visits_90d" not in cols  # not in the profile: nothing to compare
    assert any(w.startswith("age: ") for w in r["warnings"])
    assert r["exit_code"] == 0  # warnings do not stop a job

    table = tmp_path / "ref.parquet"
    pq.write_table(
        pa.table({"column": ["age"], "null_rate": [0.0], "min": [0.0], "max": [1.0]}), table
    )
    r = assess(spec(model_file, lake), reference=str(table))
    assert r["reference"]["columns"]["age"]["flags"]

    junk = tmp_path / "ref.bin"
    junk.write_bytes(b"\x00not a profile")
    r = assess(spec(model_file, lake), reference=str(junk))
    assert r["reference"]["compared"] is False and "skipped" in r["reference"]["note"]
    assert r["exit_code"] == 0


def test_freshness_reads_date_partitions(tmp_path: Path) -> None:
    import datetime as dt

    for day in ("2026-11-09", "2026-11-24", "2026-11-10"):
        write_lake(tmp_path / "lake" / f"date={day}", regions=("north",), rows_per_file=10)
    root, paths = list_parquet_files(str(tmp_path / "lake"))
    fresh = freshness([read_footer(p, root) for p in paths])
    assert fresh["partitions"]["date"]["newest"] == "2026-11-24"
    expected = (dt.datetime.now(dt.UTC).date() - dt.date(2026, 11, 24)).days
    assert fresh["partitions"]["date"]["age_days"] == expected
    assert fresh["partitions"]["region"]["newest"] == "north"


def test_estimate_arithmetic(monkeypatch) -> None:
    monkeypatch.setattr("engine.assess.machine_cpus", lambda: 4)
    sample = Sample(rows=1000, scored_rows=1000, columns={"a": ColumnSample()})
    sample.seconds = {"read": 0.002, "features": 0.001, "kernel": 0.004, "write": 0.001}
    common = dict(rows=1_000_000, workers=2, backend="numba", plan_seconds=1, compile_seconds=2)
    local = estimate(sample, cluster="local", **common)
    # IO: 4 us/row on 2 threads; kernel: 4 us/row on 4 cores; plus 3 s fixed.
    assert local["seconds"] == pytest.approx(1e6 * (4e-6 / 2 + 4e-6 / 4) + 3)
    assert local["cpu_seconds"] == pytest.approx(8.0)
    assert local["seconds_per_million_rows"]["kernel"] == pytest.approx(4.0)
    ray = estimate(sample, cluster="ray", **common)
    assert ray["seconds"] == pytest.approx(8.0 / 4 + 3.0 + 3)
    remote = estimate(sample, cluster="ray://head:10001", **common)
    assert remote["seconds"] is None and "divide by the cluster's CPUs" in remote["note"]
    assert np.isfinite(remote["cpu_seconds"])
