"""Per-variant statistics: rows, score distribution and drift per variant in the run record
and the quality tables; each variant's reference (registry, previous run, none); the
``variant`` column of old table files reading as null; assignment under repartitioning."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from datasketches import kll_floats_sketch
from scoring_helpers import ID, read_sink, read_source
from test_engine_quality import shifted_lake
from variant_helpers import variants_job

from engine.coordinator import run_job
from engine.errors import BadInputError
from engine.quality.profile_job import build_profile
from engine.quality.tables import STATS_SCHEMA, read_table, stats_table
from engine.registry import Registry
from engine.spec import load_job_file
from engine.stats import ColumnProfile
from engine.task import TaskResult

VARIANTS = ("champion", "challenger")


def sink_scores_by_variant(sink: Path, run_id: str) -> dict[str, np.ndarray]:
    table = read_sink(sink)
    table = table.filter(pc.equal(pc.cast(table.column("run_id"), pa.string()), run_id))
    variant = pc.cast(table.column("variant"), pa.string()).to_numpy(zero_copy_only=False)
    score = table.column("score").to_numpy()
    return {name: score[variant == name] for name in VARIANTS}


def rows_of(table: pa.Table, run_id: str) -> list[dict]:
    return [r for r in table.to_pylist() if r["run_id"] == run_id]


def test_per_variant_rows_scores_and_drift_in_the_record_and_tables(
    registry_root: Path, lake: Path, tmp_path: Path
) -> None:
    job = load_job_file(variants_job(tmp_path, lake, registry_root, weights=(0.7, 0.3)))
    sink = tmp_path / "scores"
    first = run_job(job, progress=False)
    truth = sink_scores_by_variant(sink, first.run_id)
    for name in VARIANTS:
        doc = first.record["variants"][name]
        scores = truth[name]
        assert doc["rows"] == scores.size > 0
        assert doc["score"]["count"] == scores.size
        assert doc["score"]["mean"] == pytest.approx(float(scores.mean()), rel=1e-6)
        assert doc["score"]["min"] == float(scores.min())
        assert doc["score"]["max"] == float(scores.max())
        # a sink's first run: no reference for either variant, and the record says so
        assert (doc["reference_source"], doc["reference"], doc["drift"]) == ("none", None, None)
    (check,) = [c for c in first.record["checks"] if c["name"] == "variant_drift"]
    assert check["status"] == "ok" and "champion: no reference" in check["detail"]

    stats = read_table(sink / "_lakescore", "score_stats")
    whole = [r for r in stats.to_pylist() if r["variant"] is None]
    assert [r["column"] for r in whole] == ["score"] and whole[0]["rows"] == 3000
    per_variant = {r["variant"]: r for r in stats.to_pylist() if r["variant"] is not None}
    assert set(per_variant) == set(VARIANTS)
    for name, row in per_variant.items():
        assert row["column"] == "score" and row["rows"] == truth[name].size
        assert row["mean"] == pytest.approx(float(truth[name].mean()), rel=1e-6)
        # the sketch in the table rebuilds the variant's quantiles within its rank error
        sketch = kll_floats_sketch.deserialize(row["kll"])
        rank = float(np.mean(truth[name] <= sketch.get_quantile(0.5)))
        assert abs(rank - 0.5) < 0.05

    second = run_job(job, progress=False)
    reference = f"run:{first.run_id}"
    for name in VARIANTS:
        doc = second.record["variants"][name]
        assert (doc["reference_source"], doc["reference"]) == ("previous_run", reference)
        assert doc["drift_status"] == "ok" and doc["drift"]["psi"] < 0.01  # the same rows
    drift = rows_of(read_table(sink / "_lakescore", "drift"), second.run_id)
    by_variant = {r["variant"]: r for r in drift if r["variant"] is not None}
    assert set(by_variant) == set(VARIANTS)
    assert {r["reference"] for r in by_variant.values()} == {reference}
    assert {r["column"] for r in by_variant.values()} == {"score"}
    assert {r["column"] for r in drift if r["variant"] is None} >= {"score", "age"}
    # the workers counted each variant's score on its own reference's bins (exact PSI)
    stats = rows_of(read_table(sink / "_lakescore", "score_stats"), second.run_id)
    for row in (r for r in stats if r["variant"] is not None):
        edges = by_variant[row["variant"]]["bin_edges"]
        assert row["hist_edges"][1:-1] == pytest.approx(edges)
        assert sum(row["hist_counts"]) == row["count"]
    profile = json.loads((sink / "_lakescore" / "profiles" / f"{second.run_id}.json").read_text())
    assert set(profile["variants"]) == set(VARIANTS)


def registered_with_reference(
    root: Path, champion: Path, challenger: Path, reference_lake: Path
) -> Registry:
    """churn@1 (champion, no reference) and churn@2 (challenger) registered with the
    profile of the challenger's scores on ``reference_lake``."""
    profile = root / "challenger-profile.json"
    build_profile(model=str(challenger), source=str(reference_lake)).save(profile)
    registry = Registry(str(root / "reg"))
    registry.register(champion, "churn")
    registry.register(challenger, "churn", reference=profile)
    registry.set_alias("churn", 1, "champion")
    return registry


def test_a_registered_reference_judges_its_variant_and_can_fail_the_run(
    model_file: Path, challenger_file: Path, lake: Path, tmp_path: Path
) -> None:
    same = registered_with_reference(tmp_path / "a", model_file, challenger_file, lake)
    result = run_job(
        load_job_file(variants_job(tmp_path / "a", lake, Path(same.root))), progress=False
    )
    challenger, champion = (
        result.record["variants"]["challenger"],
        result.record["variants"]["champion"],
    )
    assert (challenger["reference_source"], challenger["reference"]) == (
        "registry",
        "registry:churn@2",
    )
    assert challenger["drift_status"] == "ok"
    assert champion["reference_source"] == "none"
    assert result.status == "ok"

    # The challenger's reference was made on other data: its variant's scores drift.
    moved = shifted_lake(lake, tmp_path / "moved", "discount_share", 0.6)
    other = registered_with_reference(tmp_path / "b", model_file, challenger_file, moved)
    result = run_job(
        load_job_file(variants_job(tmp_path / "b", lake, Path(other.root))), progress=False
    )
    (check,) = [c for c in result.record["checks"] if c["name"] == "variant_drift"]
    assert check["status"] == "fail" and "challenger: fail" in check["detail"]
    assert result.record["variants"]["challenger"]["drift"]["psi"] > 0.25
    drift = read_table(tmp_path / "b" / "scores" / "_lakescore", "drift").to_pylist()
    (row,) = [r for r in drift if r["variant"] == "challenger"]
    assert row["status"] == "fail" and row["reference"] == "registry:churn@2"
    # the whole run had no reference (a first run): the variant's drift alone failed it
    assert result.record["reference"] is None and result.status == "fail"


def test_a_changed_registered_reference_is_refused(
    model_file: Path, challenger_file: Path, lake: Path, tmp_path: Path
) -> None:
    registry = registered_with_reference(tmp_path, model_file, challenger_file, lake)
    stored = tmp_path / "reg" / "churn" / registry.version("churn", 2)["reference"]["file"]
    stored.write_text(stored.read_text().replace('"rows"', '"rows" ', 1))
    with pytest.raises(BadInputError, match=r"churn@2: the registered reference .* sha256"):
        run_job(load_job_file(variants_job(tmp_path, lake, tmp_path / "reg")), progress=False)
    assert not (tmp_path / "scores").exists()


def test_old_table_files_without_variant_read_as_null(tmp_path: Path) -> None:
    meta = tmp_path / "_lakescore"
    profile = ColumnProfile.from_dict({"kind": "continuous", "rows": 2})
    (meta / "score_stats").mkdir(parents=True)
    old = stats_table("r1", {"score": profile}, None).drop_columns(["variant"])
    assert old.schema.names == STATS_SCHEMA.names[:-1]  # the schema before the column
    pq.write_table(old, meta / "score_stats" / "r1.parquet")
    new = stats_table("r2", {"score": profile}, None, variant="champion")
    pq.write_table(new, meta / "score_stats" / "r2.parquet")
    table = read_table(meta, "score_stats")
    assert table.schema == STATS_SCHEMA
    runs, variants = table.column("run_id").to_pylist(), table.column("variant").to_pylist()
    got = sorted(zip(runs, variants, strict=True))
    assert got == [("r1", None), ("r2", "champion")]
    assert read_table(meta, "drift").num_rows == 0


def test_task_records_of_other_versions_still_load() -> None:
    doc = TaskResult("t", 3, "p").to_json() | {"variants": {"a": {"rows": 3}}}
    assert TaskResult.from_json(doc).rows == 3


def repartitioned(lake: Path, dest: Path) -> Path:
    """The same rows in another layout: shuffled, hive-partitioned by ``bucket`` (id & 3),
    one file per bucket, row groups of 300."""
    table = read_source(lake)
    order = np.random.default_rng(5).permutation(table.num_rows)
    table = table.take(pa.array(order))
    bucket = pc.cast(pc.bit_wise_and(table.column(ID), 3), pa.int64()).to_numpy()
    for b in np.unique(bucket):
        part = dest / f"bucket={b}"
        part.mkdir(parents=True)
        pq.write_table(table.filter(pa.array(bucket == b)), part / "p.parquet", row_group_size=300)
    return dest


def test_assignment_and_variant_stats_do_not_depend_on_partitioning(
    registry_root: Path, lake: Path, tmp_path: Path
) -> None:
    other = repartitioned(lake, tmp_path / "other-lake")
    a = run_job(load_job_file(variants_job(tmp_path / "a", lake, registry_root)), progress=False)
    b = run_job(load_job_file(variants_job(tmp_path / "b", other, registry_root)), progress=False)

    def variant_by_id(sink: Path) -> dict[int, str]:
        t = read_sink(sink)
        names = pc.cast(t.column("variant"), pa.string()).to_pylist()
        return dict(zip(t.column(ID).to_pylist(), names, strict=True))

    assert variant_by_id(tmp_path / "a" / "scores") == variant_by_id(tmp_path / "b" / "scores")
    n = a.rows_scored
    for name, weight in zip(VARIANTS, (0.8, 0.2), strict=True):
        left, right = a.record["variants"][name], b.record["variants"][name]
        assert left["rows"] == right["rows"]
        assert left["score"]["mean"] == pytest.approx(right["score"]["mean"], rel=1e-9)
        assert (left["score"]["min"], left["score"]["max"]) == (
            right["score"]["min"],
            right["score"]["max"],
        )
        sigma = (weight * (1 - weight) / n) ** 0.5  # binomial: the share is within 5 sigma
        assert abs(left["share"] - weight) < 5 * sigma, (name, left["share"])


def test_documented_readers_read_old_and_new_files(
    registry_root: Path, lake: Path, tmp_path: Path
) -> None:
    """The documented readers (Polars with the schema, DuckDB by name) read a sink whose
    score_stats mixes files with and without ``variant``."""
    import duckdb
    import polars as pl

    run_job(load_job_file(variants_job(tmp_path, lake, registry_root)), progress=False)
    directory = tmp_path / "scores" / "_lakescore" / "score_stats"
    (new,) = directory.glob("*.parquet")
    pq.write_table(pq.read_table(new).drop_columns(["variant"]), directory / "0-old.parquet")
    frame = pl.read_parquet(
        directory, schema=pl.from_arrow(STATS_SCHEMA.empty_table()).schema, missing_columns="insert"
    )
    assert frame.height == 6 and frame["variant"].null_count() == 4
    sql = f"select count(*) from read_parquet('{directory}/*.parquet', union_by_name=true) " \
          "where variant is null"  # fmt: skip
    assert duckdb.sql(sql).fetchall()[0][0] == 4
