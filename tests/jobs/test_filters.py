"""``--filter``: the grammar, partition pruning (other files are never opened), row group
pruning by statistics (pruned row groups are never read), DuckDB as the oracle of which
rows match, bad filters."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import write_deltalake
from scoring_helpers import ID, error_line, oracle_scores, read_sink, scores_by_id, snapshot

from engine import BadInputError, score
from engine.filters import BoolOp, Compare, In, IsNull, Not, parse, simplify


def test_grammar() -> None:
    assert parse("a = 1") == Compare("a", "==", 1)
    assert parse("a <> 'x''y'") == Compare("a", "!=", "x'y")
    assert parse("a >= -2.5e1") == Compare("a", ">=", -25.0)
    assert parse("a NOT IN (1, 2)") == In("a", (1, 2), negated=True)
    assert parse("a is not null") == IsNull("a", negated=True)
    expr = parse("not (a = 1 or b = true) and c is null")
    assert expr == BoolOp("and", (Not(BoolOp("or", (Compare("a", "==", 1),
                                                    Compare("b", "==", True)))),
                                  IsNull("c")))  # fmt: skip
    assert parse(str(expr)) == expr  # printed back, parsed again: the same filter


@pytest.mark.parametrize(
    "text",
    ["", "a", "a =", "a = b", "a = 1 )", "(a = 1", "a ~ 1", "a in ()", "1 = a",
     "__import__('os').system('true')", "a = 1; drop"],
)  # fmt: skip
def test_grammar_refuses(text: str) -> None:
    with pytest.raises(BadInputError, match="--filter"):
        parse(text)


def test_simplify_with_partition_values() -> None:
    expr = parse("region = 'north' and age > 30 or region in ('east')")
    assert simplify(expr, {"region": "south"}) is False
    assert simplify(expr, {"region": "east"}) is True
    assert simplify(expr, {"region": "north"}) == Compare("age", ">", 30)
    assert simplify(parse("year >= 2025"), {"year": "2026"}) is True  # numeric compare
    assert simplify(parse("region is null"), {"region": None}) is True
    assert simplify(parse("region = 'x'"), {"region": None}) is False


def duckdb_ids(lake: Path, where: str) -> set[int]:
    rows = duckdb.sql(
        f"select {ID} from read_parquet('{lake}/**/*.parquet', hive_partitioning=true) "
        f"where {where}"
    ).fetchall()
    return {r[0] for r in rows}


@pytest.mark.parametrize(
    "where",
    [
        "region = 'north'",
        "region in ('south', 'east') and age >= 40",
        "region = 'north' and age > 50 or visits_90d in (1, 2)",
        "age is null",
        "not (spend_30d < 80 or has_app = true)",
    ],
)
def test_rows_match_duckdb(
    model_file: Path, lake: Path, lake_table: pa.Table, tmp_path: Path, where: str
) -> None:
    result = score(model_file, lake, tmp_path / "s", id_column=ID, filter=where)
    got = scores_by_id(read_sink(tmp_path / "s"))
    want = duckdb_ids(lake, where)
    assert set(got) == want and result.rows_scored == len(want)
    rows = lake_table.filter(pa.compute.is_in(lake_table.column(ID), pa.array(sorted(want))))
    expected = oracle_scores(model_file, rows)
    assert max(abs(got[i] - e) for i, e in zip(rows.column(ID).to_pylist(), expected,
                                               strict=True)) <= 1e-6  # fmt: skip
    assert result.record["fingerprint"]


def test_pruned_partitions_are_never_opened(model_file: Path, copy_lake, tmp_path: Path) -> None:
    """Every file outside region=north is garbage: opening one would fail the run."""
    lake = copy_lake()
    for path in lake.rglob("*.parquet"):
        if "region=north" not in path.parts:
            path.write_bytes(b"not parquet at all")
    result = score(model_file, lake, tmp_path / "s", id_column=ID, filter="region = 'north'")
    assert result.rows_scored == 1000
    with pytest.raises(BadInputError, match="not a readable Parquet file"):
        score(model_file, lake, tmp_path / "t", id_column=ID, filter="region != 'north'")


def test_pruned_row_groups_are_never_read(model_file: Path, tmp_path: Path) -> None:
    """Ids increase through the file, row groups of 100 rows: ``id < 150`` keeps row groups
    0 and 1. Row groups 2..4 have their data pages destroyed: reading one would fail."""
    from scoring_helpers import customer_columns

    rng = np.random.default_rng(7)
    path = tmp_path / "lake" / "data.parquet"
    path.parent.mkdir()
    pq.write_table(pa.table(customer_columns(500, rng)), path, row_group_size=100)
    meta = pq.read_metadata(path)
    data = bytearray(path.read_bytes())
    for rg in range(2, 5):
        for c in range(meta.num_columns):
            chunk = meta.row_group(rg).column(c)
            first = chunk.dictionary_page_offset if chunk.has_dictionary_page else None
            start = first or chunk.data_page_offset
            size = chunk.total_compressed_size
            data[start : start + size] = b"\xff" * size
    path.write_bytes(bytes(data))
    result = score(model_file, path.parent, tmp_path / "s", id_column=ID,
                   filter=f"{ID} < 150", task_rows=1)  # fmt: skip
    assert result.tasks == 2  # one task per kept row group
    assert result.rows_scored == 150
    assert sorted(scores_by_id(read_sink(tmp_path / "s"))) == list(range(150))
    with pytest.raises(BadInputError, match="cannot read Parquet data"):
        score(model_file, path.parent, tmp_path / "t", id_column=ID, filter=f"{ID} < 250")


def test_delta_source_partitions_are_pruned(
    model_file: Path, lake_table: pa.Table, tmp_path: Path
) -> None:
    root = tmp_path / "delta"
    table = lake_table.drop_columns(["nickname"]).append_column(
        "region", pa.array(["north" if i < 1000 else "south" for i in range(3000)])
    )
    write_deltalake(str(root), table, partition_by=["region"])
    for path in (root / "region=south").glob("*.parquet"):
        path.unlink()  # the log still lists it: opening it would fail
    result = score(model_file, root, tmp_path / "s", id_column=ID, filter="region = 'north'")
    assert result.rows_scored == len(duckdb_ids_of(table, "region = 'north'"))


def duckdb_ids_of(rows: pa.Table, where: str) -> set[int]:
    return {r[0] for r in duckdb.sql(f"select {ID} from rows where {where}").fetchall()}


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--filter", "age >"], "--filter"),
        (["--filter", "no_such = 1"], "filter column 'no_such' not found"),
        (["--filter", "age > 'old'"], "--filter"),
        (["--filter", "region = 'west'"], "no partition matches"),
    ],
)
def test_bad_filters_are_exit_2(
    cli, model_file: Path, lake: Path, tmp_path: Path, flags: list[str], named: str
) -> None:
    sink = tmp_path / "scores"
    shutil.copytree(lake.parent / "warm-sink", sink)
    before = snapshot(sink)
    proc = cli("score", "--model", model_file, "--source", lake, "--sink", sink,
               "--id-column", ID, *flags)  # fmt: skip
    assert proc.returncode == 2
    assert named in error_line(proc)
    assert snapshot(sink) == before


def test_filter_needs_an_id_column(cli, model_file: Path, lake: Path, tmp_path: Path) -> None:
    proc = cli("score", "--model", model_file, "--source", lake, "--sink", tmp_path / "s",
               "--filter", "age > 3")  # fmt: skip
    assert proc.returncode == 2
    assert "--id-column" in error_line(proc)
    assert not (tmp_path / "s").exists()


def test_filtered_partitioned_run_resumes_exactly_once(
    model_file: Path, lake: Path, tmp_path: Path, monkeypatch
) -> None:
    import engine.task
    from engine import ExecutionError

    sink = tmp_path / "scores"
    where = "region in ('north', 'east') and age >= 30"
    real_call = engine.task.ScoringWorker.__call__
    seen: list[str] = []

    def flaky(self, task):
        seen.append(task.task_id)
        if len(seen) == 3:
            raise OSError("disk on fire")
        return real_call(self, task)

    monkeypatch.setattr(engine.task.ScoringWorker, "__call__", flaky)
    options = dict(id_column=ID, filter=where, partition_by=["region"], task_rows=200, workers=1)
    with pytest.raises(ExecutionError):
        score(model_file, lake, sink, task_retries=0, **options)
    assert not list(sink.glob("region=*"))  # nothing visible
    result = score(model_file, lake, sink, **options)
    assert result.tasks_resumed == 2
    got = read_sink(sink)
    assert set(scores_by_id(got)) == duckdb_ids(lake, where)
