"""Quality end to end: tables in the lake, references, drift gating the status, checks,
``on_fail = "abort"`` leaving the sink untouched, exit code 1 from the CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from scoring_helpers import FEATURES, ID, quality_table, run_ids, run_record, snapshot

from engine import score
from engine.errors import QualityCheckFailed
from engine.quality.profile_job import build_profile

TABLES = ("runs", "feature_stats", "score_stats", "drift")


def shifted_lake(lake: Path, dest: Path, column: str, delta: float) -> Path:
    """A copy of ``lake`` whose ``column`` is moved by ``delta`` (same files, same nulls)."""
    shutil.copytree(lake, dest)
    for path in sorted(dest.rglob("*.parquet")):
        table = pq.read_table(path)
        col = table.column(column)
        moved = pc.add(col, pa.scalar(delta, col.type))
        table = table.set_column(table.schema.get_field_index(column), column, moved)
        pq.write_table(table, path, row_group_size=128)
    return dest


def test_first_run_has_no_reference_and_the_next_run_no_drift(model_file, lake, tmp_path):
    sink = tmp_path / "scores"
    first = score(model_file, lake, sink, id_column=ID)
    assert first.status == "ok"
    assert first.record["reference"] is None
    assert first.record["drift_status"] == {}
    (drift_check,) = [c for c in first.record["checks"] if c["name"] == "drift"]
    assert "no reference" in drift_check["detail"]
    assert first.record["stage_seconds"]["stats"] > 0
    cpu = first.record["stage_cpu_seconds"]  # CPU of each stage's own thread
    assert set(cpu) == {"read", "features", "kernel", "write", "stats"}
    assert cpu["stats"] > 0 and all(v >= 0 for v in cpu.values())
    assert cpu["stats"] <= first.record["stage_seconds"]["stats"] + 0.01  # CPU within wall
    assert first.record["quality_cpu_seconds"] >= 0

    second = score(model_file, lake, sink, id_column=ID)
    assert second.record["reference"] == f"run:{first.run_id}"
    assert second.record["drift_status"] == {name: "ok" for name in (*FEATURES, "score")}
    assert second.status == "ok"

    # Each table grew by one set of rows per run, readable by every engine as one table.
    for name in TABLES:
        directory = sink / "_lakescore" / name
        arrow = quality_table(sink, name)
        frame = pl.read_parquet(directory)
        count = duckdb.sql(f"select count(*) from read_parquet('{directory}/*.parquet')")
        assert arrow.num_rows == frame.height == count.fetchall()[0][0], name
    runs = pl.read_parquet(sink / "_lakescore" / "runs").sort("finished_at")
    assert runs["run_id"].to_list() == [first.run_id, second.run_id]
    assert runs["status"].to_list() == ["ok", "ok"]
    assert runs["rows"].to_list() == [3000, 3000]
    features = pl.read_parquet(sink / "_lakescore" / "feature_stats")
    assert features.height == 2 * len(FEATURES)
    assert set(features["rows"].to_list()) == {3000}
    assert pl.read_parquet(sink / "_lakescore" / "drift")["run_id"].unique().to_list() == [
        second.run_id
    ]
    # The lake's own nulls: spend_30d and age have Arrow nulls, not NaN.
    age = features.filter(pl.col("column") == "age").row(0, named=True)
    assert age["nulls"] > 0 and age["nan"] == 0
    assert (sink / "_lakescore" / "profiles" / f"{second.run_id}.json").exists()


def test_a_shifted_feature_fails_drift_and_the_spec_can_relax_it(model_file, lake, tmp_path):
    reference = tmp_path / "train.json"
    build_profile(model=str(model_file), source=str(lake)).save(reference)
    moved = shifted_lake(lake, tmp_path / "moved", "age", 25.0)

    result = score(model_file, moved, tmp_path / "s1", id_column=ID, reference=str(reference))
    assert result.status == "fail"  # committed (on_fail = commit), status fail
    assert run_ids(tmp_path / "s1") == {result.run_id}
    assert result.record["drift_status"]["age"] == "fail"
    assert result.record["drift_status"]["spend_30d"] == "ok"
    (age,) = [d for d in result.record["drift"] if d["column"] == "age"]
    assert age["psi"] > 0.25 and age["out_of_range_share"] > 0.05
    # The PSI bins travel with the drift rows, so a report can plot run against reference.
    assert len(age["shares"]) == len(age["reference_shares"]) == len(age["bin_edges"]) + 1
    assert sum(age["shares"]) == pytest.approx(1) == sum(age["reference_shares"])
    drift = quality_table(tmp_path / "s1", "drift").to_pylist()
    assert {r["column"]: r["status"] for r in drift}["age"] == "fail"
    assert quality_table(tmp_path / "s1", "runs").column("status").to_pylist() == ["fail"]

    relaxed = score(
        model_file, moved, tmp_path / "s2", id_column=ID, reference=str(reference),
        drift={"columns": {name: {"psi_warn": 100, "psi_fail": 100, "js_warn": 1}
                           for name in ("age", "score")}},  # age moves the score too
    )  # fmt: skip
    assert relaxed.record["drift_status"]["age"] == "ok"
    assert relaxed.status == "ok"


def test_abort_leaves_the_sink_untouched(model_file, lake, tmp_path):
    sink = tmp_path / "scores"
    score(model_file, lake, sink, id_column=ID)
    before = snapshot(sink)
    with pytest.raises(QualityCheckFailed, match="min_rows") as info:
        score(
            model_file, lake, sink, id_column=ID,
            checks={"min_rows": 10_000, "on_fail": "abort"},
        )  # fmt: skip
    assert snapshot(sink) == before
    assert info.value.exit_code == 1
    assert info.value.result.status == "fail"

    fresh = tmp_path / "fresh" / "scores"
    with pytest.raises(QualityCheckFailed):
        score(model_file, lake, fresh, id_column=ID, checks={"min_rows": 10**9, "on_fail": "abort"})
    assert not (tmp_path / "fresh").exists()


def test_nan_scores_and_duration_checks(model_file, lake, tmp_path):
    result = score(
        model_file, lake, tmp_path / "s", id_column=ID,
        checks={"max_nan_score_share": 0.0, "max_seconds": 3600, "min_rows": 3000},
    )  # fmt: skip
    statuses = {c["name"]: c["status"] for c in result.record["checks"]}
    assert statuses == {
        "min_rows": "ok", "max_nan_score_share": "ok", "max_seconds": "ok", "drift": "ok"
    }  # fmt: skip
    slow = score(model_file, lake, tmp_path / "t", id_column=ID, checks={"max_seconds": 0})
    assert slow.status == "fail"
    assert run_record(tmp_path / "t", slow.run_id)["status"] == "fail"


@pytest.mark.slow
def test_cli_exit_code_1_on_a_failed_check_and_profile_command(cli, model_file, lake, tmp_path):
    reference = tmp_path / "ref.json"
    made = cli("profile", "--source", lake, "--model", model_file, "-o", reference)
    assert made.returncode == 0, made.stderr
    job = tmp_path / "job.toml"
    job.write_text(
        f'model = "{model_file}"\nsource = "{lake}"\nsink = "scores"\nid_column = "{ID}"\n'
        f'reference = "{reference}"\n\n[checks]\nmin_rows = 5000\n'
    )
    result = cli("run", job)
    assert result.returncode == 1, result.stderr
    assert "check failed: min_rows" in result.stderr
    (run_id,) = run_ids(tmp_path / "scores")  # committed: on_fail defaults to commit
    record = run_record(tmp_path / "scores", run_id)
    assert record["status"] == "fail"
    assert record["reference"] == str(reference)
    assert set(record["drift_status"].values()) == {"ok"}

    bad = cli("score", "--model", model_file, "--source", lake, "--sink", tmp_path / "x",
              "--reference", tmp_path / "missing.json")  # fmt: skip
    assert bad.returncode == 2
    assert "missing.json" in bad.stderr
    assert np.isfinite(record["seconds"])


def test_job_file_quality_tables_are_checked_before_anything_runs(tmp_path):
    from engine.errors import BadInputError
    from engine.spec import load_job_file

    job = tmp_path / "job.toml"
    job.write_text(
        'model = "m.json"\nsource = "lake"\nsink = "out"\nreference = "ref/train.json"\n'
        "[drift]\npsi_fail = 0.5\n[drift.columns.age]\npsi_warn = 0.3\n"
        '[checks]\nmin_rows = 10\non_fail = "abort"\n'
    )
    spec = load_job_file(job)
    assert spec.reference == str(tmp_path / "ref" / "train.json")
    assert spec.drift["columns"]["age"] == {"psi_warn": 0.3}
    assert spec.checks == {"min_rows": 10, "on_fail": "abort"}

    job.write_text('model = "m.json"\nsource = "lake"\nsink = "out"\n[checks]\nmin_row = 10\n')
    with pytest.raises(BadInputError, match=r"job\.toml: checks: unknown key 'min_row'"):
        load_job_file(job)


def test_legacy_run_records_move_out_of_the_runs_table(model_file, lake, tmp_path):
    """A sink written before the quality tables kept JSON records in ``_lakescore/runs/``:
    they are still found, and the next commit moves them beside the new records."""
    sink = tmp_path / "scores"
    first = score(model_file, lake, sink, id_column=ID)
    meta = sink / "_lakescore"
    shutil.rmtree(meta / "runs")
    (meta / "runs").mkdir()
    (meta / "run_records" / f"{first.run_id}.json").rename(meta / "runs" / f"{first.run_id}.json")
    again = score(model_file, lake, sink, id_column=ID, run_id=first.run_id)
    assert again.status == "ok" and again.rows_scored == 3000  # found: already committed
    second = score(model_file, lake, sink, id_column=ID)
    assert sorted(p.name for p in (meta / "runs").iterdir()) == [f"{second.run_id}.parquet"]
    assert run_record(sink, first.run_id)["rows"] == 3000
    assert quality_table(sink, "runs").column("run_id").to_pylist() == [second.run_id]
