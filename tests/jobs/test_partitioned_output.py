"""Partitioned output (hive layout, Delta partition columns) and partition backfills:
exactly the named partition is replaced, atomically, every other byte left alone."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest
from deltalake import DeltaTable
from scoring_helpers import ID, REGIONS, error_line, scores_by_id, snapshot

import engine.partitioned_sink
from engine import score

DAY1, DAY2 = "score_date=2026-11-01", "score_date=2026-11-02"
BY_DAY_REGION = ["score_date=2026-11-01", "region"]


def hive(sink: Path) -> pa.Table:
    return ds.dataset(sink, partitioning="hive").to_table()


def runs_in(table: pa.Table) -> set[str]:
    return set(pc.cast(table.column("run_id"), pa.string()).to_pylist())


def by_day(day: str) -> list[str]:
    return [f"score_date={day}", "region"]


def test_hive_layout_read_by_arrow_polars_duckdb(
    model_file: Path, lake: Path, lake_table: pa.Table, tmp_path: Path
) -> None:
    sink = tmp_path / "scores"
    result = score(model_file, lake, sink, id_column=ID, partition_by=BY_DAY_REGION,
                   task_rows=300)  # fmt: skip
    leaves = sorted(p.relative_to(sink).as_posix() for p in sink.glob("score_date=*/*/*"))
    assert leaves == [f"{DAY1}/region={r}/{result.run_id}" for r in ("east", "north", "south")]
    table = hive(sink)
    assert table.num_rows == 3000
    assert "region" in table.schema.names and "score_date" in table.schema.names
    # partition columns live in the paths only, as Spark writes them
    part = next(sink.glob("*/*/*/part-*.parquet"))
    assert "region" not in ds.dataset(part).schema.names
    # every row landed in its own region's directory
    source_region = {i: REGIONS[i // 1000] for i in lake_table.column(ID).to_pylist()}
    got = dict(zip(table.column(ID).to_pylist(), table.column("region").to_pylist(), strict=True))
    assert got == source_region
    # "*=*/": the partitions, not the quality tables under _lakescore/
    polars = pl.scan_parquet(f"{sink}/*=*/**/*.parquet", hive_partitioning=True).collect()
    assert polars.height == 3000 and polars[ID].n_unique() == 3000
    assert set(polars["region"].unique()) == {"north", "south", "east"}
    rows = duckdb.sql(
        f"select region, count(*) from read_parquet('{sink}/*=*/**/*.parquet', "
        "hive_partitioning=true) group by region order by region"
    ).fetchall()
    assert rows == [("east", 1000), ("north", 1000), ("south", 1000)]


def test_backfill_replaces_one_partition_and_nothing_else(
    cli, model_file: Path, lake: Path, tmp_path: Path
) -> None:
    sink = tmp_path / "scores"
    first = score(model_file, lake, sink, id_column=ID, partition_by=by_day("2026-11-01"))
    score(model_file, lake, sink, id_column=ID, partition_by=by_day("2026-11-02"))
    untouched = snapshot(sink / DAY2)
    args = ["score", "--model", model_file, "--source", lake, "--sink", sink, "--id-column", ID,
            "--partition-by", "score_date=2026-11-01", "--partition-by", "region",
            "--overwrite-partition", "score_date = '2026-11-01'", "--json"]  # fmt: skip
    proc = cli(*args)
    assert proc.returncode == 0, proc.stderr
    backfill = json.loads(proc.stdout)["run_id"]
    assert snapshot(sink / DAY2) == untouched  # byte for byte
    table = hive(sink)
    day1 = table.filter(pc.equal(table.column("score_date"), "2026-11-01"))
    assert runs_in(day1) == {backfill}  # the first run's rows are gone
    assert day1.num_rows == 3000
    assert table.num_rows == 6000
    assert not list(sink.glob(f"*/*/{first.run_id}"))
    # a rerun of the committed backfill commits nothing
    before = snapshot(sink)
    again = cli(*args, "--run-id", backfill)
    assert again.returncode == 0, again.stderr
    assert snapshot(sink) == before


def test_backfill_of_a_source_partition_reads_only_that_partition(
    model_file: Path, lake: Path, tmp_path: Path
) -> None:
    sink = tmp_path / "scores"
    score(model_file, lake, sink, id_column=ID, partition_by=["region"])
    others = {r: snapshot(sink / f"region={r}") for r in ("south", "east")}
    result = score(model_file, lake, sink, id_column=ID, partition_by=["region"],
                   overwrite_partition="region = 'north'")  # fmt: skip
    assert result.rows_scored == 1000  # the north files only
    assert {r: snapshot(sink / f"region={r}") for r in others} == others
    north = hive(sink).filter(pc.equal(hive(sink).column("region"), "north"))
    assert runs_in(north) == {result.run_id} and north.num_rows == 1000


def test_crash_among_the_renames_rolls_forward(
    model_file: Path, lake: Path, tmp_path: Path, monkeypatch
) -> None:
    """The process dies after the first partition's rename: the rerun finishes the other
    renames from the manifest and every row is there exactly once."""
    sink = tmp_path / "scores"
    apply = engine.partitioned_sink.PartitionedRunStaging._apply
    done: list[object] = []

    def crash_after_one(self, op):
        if done:
            raise OSError("power cut")
        apply(self, op)
        done.append(op)

    monkeypatch.setattr(engine.partitioned_sink.PartitionedRunStaging, "_apply", crash_after_one)
    with pytest.raises(OSError, match="power cut"):
        score(model_file, lake, sink, id_column=ID, partition_by=BY_DAY_REGION, task_rows=300)
    assert hive(sink).num_rows == 1000  # one region visible so far
    monkeypatch.setattr(engine.partitioned_sink.PartitionedRunStaging, "_apply", apply)
    result = score(model_file, lake, sink, id_column=ID, partition_by=BY_DAY_REGION,
                   task_rows=300)  # fmt: skip
    assert result.tasks_resumed == result.tasks
    assert len(scores_by_id(hive(sink))) == 3000
    assert not (sink / "_lakescore" / "staging" / result.run_id).exists()


def test_crash_before_the_swap_keeps_the_old_partition_until_the_rerun(
    model_file: Path, lake: Path, tmp_path: Path, monkeypatch
) -> None:
    sink = tmp_path / "scores"
    first = score(model_file, lake, sink, id_column=ID, partition_by=BY_DAY_REGION)
    monkeypatch.setattr(engine.partitioned_sink, "exchange_dirs", _power_cut)
    kwargs = dict(id_column=ID, partition_by=BY_DAY_REGION,
                  overwrite_partition="score_date = '2026-11-01'")  # fmt: skip
    with pytest.raises(OSError, match="power cut"):
        score(model_file, lake, sink, **kwargs)
    assert runs_in(hive(sink)) == {first.run_id}  # readers still see the old partition whole
    monkeypatch.undo()
    again = score(model_file, lake, sink, **kwargs)
    table = hive(sink)
    assert runs_in(table) == {again.run_id}
    assert len(scores_by_id(table)) == 3000


def _power_cut(a: Path, b: Path) -> None:
    raise OSError("power cut")


def test_delta_backfill_is_one_transaction_of_removes_and_adds(
    model_file: Path, lake: Path, tmp_path: Path
) -> None:
    table = tmp_path / "scores"
    score(model_file, lake, table, id_column=ID, format="delta", partition_by=by_day("2026-11-01"))
    score(model_file, lake, table, id_column=ID, format="delta", partition_by=by_day("2026-11-02"))
    dt = DeltaTable(str(table))
    assert dt.metadata().partition_columns == ["score_date", "region"]
    day2_files = sorted(f for f in dt.file_uris() if "/score_date=2026-11-02/" in f)
    day2_bytes = {f: Path(f).read_bytes() for f in day2_files}
    backfill = score(model_file, lake, table, id_column=ID, format="delta",
                     partition_by=by_day("2026-11-01"),
                     overwrite_partition="score_date = '2026-11-01'")  # fmt: skip
    log = (table / "_delta_log" / "00000000000000000002.json").read_text().splitlines()
    actions = [next(iter(json.loads(line))) for line in log]
    assert actions.count("remove") == 3 and actions.count("add") == 3  # a part per task
    dt = DeltaTable(str(table))
    assert sorted(f for f in dt.file_uris() if "/score_date=2026-11-02/" in f) == day2_files
    assert {f: Path(f).read_bytes() for f in day2_files} == day2_bytes
    rows = pl.read_delta(str(table))
    assert rows.height == 6000
    day1 = rows.filter(pl.col("score_date") == "2026-11-01")
    assert set(day1["run_id"].cast(pl.String)) == {backfill.run_id}
    assert day1[ID].n_unique() == 3000


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--overwrite-partition", "score_date = '2026-11-01'"], "needs --partition-by"),
        (["--partition-by", "score_date=2026-11-01", "--partition-by", "region",
          "--overwrite-partition", "region = 'north'"], "first partition column"),
        (["--partition-by", "score_date=2026-11-01",
          "--overwrite-partition", "score_date = '2026-11-02'"], "not '2026-11-02'"),
        (["--partition-by", "score_date=2026-11-01",
          "--overwrite-partition", "score_date > '2026'"], "expected col = 'value'"),
        (["--partition-by", "no_such_column"], "partition column 'no_such_column' not found"),
        (["--partition-by", "score"], "is an output column"),
        (["--partition-by", "a b"], "expected COL or COL=VALUE"),
    ],
)  # fmt: skip
def test_bad_partition_options_are_exit_2(
    cli, model_file: Path, lake: Path, tmp_path: Path, flags: list[str], named: str
) -> None:
    sink = tmp_path / "scores"
    score(model_file, lake, sink, id_column=ID, partition_by=["region"])
    before = snapshot(sink)
    proc = cli("score", "--model", model_file, "--source", lake, "--sink", sink,
               "--id-column", ID, *flags)  # fmt: skip
    assert proc.returncode == 2
    assert named in error_line(proc)
    assert snapshot(sink) == before


def test_layouts_do_not_mix(cli, model_file: Path, lake: Path, tmp_path: Path) -> None:
    flat, parted = tmp_path / "flat", tmp_path / "parted"
    score(model_file, lake, flat, id_column=ID)
    score(model_file, lake, parted, id_column=ID, partition_by=["region"])
    trees = {p: snapshot(p) for p in (flat, parted)}
    cases = [
        (flat, ["--partition-by", "region"], "unpartitioned runs"),
        (parted, [], "pass --partition-by"),
        (parted, ["--partition-by", "score_date=x"], "partitioned by ['region']"),
    ]
    for sink, flags, named in cases:
        proc = cli("score", "--model", model_file, "--source", lake, "--sink", sink,
                   "--id-column", ID, *flags)  # fmt: skip
        assert proc.returncode == 2
        assert named in error_line(proc)
    assert {p: snapshot(p) for p in trees} == trees
