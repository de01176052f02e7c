"""End to end: the Python API and ``lakescore score`` on a small hive-partitioned lake.

XGBoost's own ``inplace_predict`` on the same rows is the oracle for every score.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from scoring_helpers import (
    FEATURES,
    ID,
    oracle_scores,
    read_sink,
    run_ids,
    run_record,
    scores_by_id,
    sha256_file,
)

from engine import score

TOL = 1e-6


def assert_sink_matches_source(
    sink: Path, model: Path, source: pa.Table, run_id: str, columns: dict[str, str] | None = None
) -> None:
    """One row per source row, the id, a float32 score equal to XGBoost's, the run id."""
    table = read_sink(sink)
    assert table.num_rows == source.num_rows
    assert set(table.column_names) == {ID, "score", "run_id"}
    assert table.schema.field("score").type == pa.float32()
    assert pc.cast(table.column("run_id"), pa.string()).unique().to_pylist() == [run_id]
    got = scores_by_id(table)
    expected = dict(
        zip(source.column(ID).to_pylist(), oracle_scores(model, source, columns), strict=True)
    )
    assert got.keys() == expected.keys()
    ids = list(expected)
    np.testing.assert_allclose([got[i] for i in ids], [expected[i] for i in ids], rtol=0, atol=TOL)


def assert_run_record(sink: Path, run_id: str, model: Path, source: Path, rows: int) -> dict:
    record = run_record(sink, run_id)
    assert record["status"] == "ok"
    assert record["run_id"] == run_id
    assert record["rows"] == rows
    assert record["model_sha256"] == sha256_file(model)
    assert record["source"] == str(source)
    assert record["seconds"] > 0
    assert set(record["stage_seconds"]) >= {"read", "features", "kernel", "write"}
    assert record["stats"]["score"]["count"] == rows
    return record


def test_score_api(model_file: Path, lake: Path, lake_table: pa.Table, tmp_path: Path) -> None:
    sink = tmp_path / "scores"
    result = score(model_file, lake, sink, id_column=ID, task_rows=200)

    assert lake_table.column("age").null_count > 0  # missing values reach the kernel
    assert result.status == "ok"
    assert result.rows_scored == lake_table.num_rows == 3000
    assert result.tasks == 12  # 6 files of 4 row groups (128+128+128+116), 2 tasks each
    assert result.sink == str(sink)
    assert run_ids(sink) == {result.run_id}
    assert result.stats["score"]["count"] == 3000
    assert_sink_matches_source(sink, model_file, lake_table, result.run_id)
    record = assert_run_record(sink, result.run_id, model_file, lake, 3000)
    assert record == result.record
    assert not (sink / "_lakescore" / "staging" / result.run_id).exists()


def test_score_cli(cli, model_file: Path, lake: Path, lake_table: pa.Table, tmp_path: Path) -> None:
    sink = tmp_path / "scores"
    proc = cli("score", "--model", model_file, "--source", lake, "--sink", sink, "--id-column", ID)

    assert proc.returncode == 0, proc.stderr
    (run_id,) = run_ids(sink)
    assert run_id in proc.stdout
    assert "3,000 rows" in proc.stdout
    assert_sink_matches_source(sink, model_file, lake_table, run_id)
    assert_run_record(sink, run_id, model_file, lake, 3000)


def test_cli_without_id_column_locates_rows(
    cli, model_file: Path, lake: Path, lake_table: pa.Table, tmp_path: Path
) -> None:
    """``source_file`` + ``row_number`` point at exactly the row each score came from."""
    sink = tmp_path / "scores"
    proc = cli("score", "--model", model_file, "--source", lake, "--sink", sink)
    assert proc.returncode == 0, proc.stderr

    table = read_sink(sink)
    assert set(table.column_names) == {"source_file", "row_number", "score", "run_id"}
    assert table.num_rows == lake_table.num_rows
    files = pc.unique(table.column("source_file")).to_pylist()
    assert sorted(files) == sorted(p.relative_to(lake).as_posix() for p in lake.rglob("*.parquet"))
    for name in files:
        rows = table.filter(pc.equal(table.column("source_file"), name))
        numbers = rows.column("row_number").to_numpy()
        source = pq.read_table(lake / name)
        assert sorted(numbers.tolist()) == list(range(source.num_rows))  # each row once
        located = source.take(pa.array(numbers))
        np.testing.assert_allclose(
            rows.column("score").to_numpy(),
            oracle_scores(model_file, located),
            rtol=0,
            atol=TOL,
        )


def test_single_parquet_file_source(model_file: Path, lake: Path, tmp_path: Path) -> None:
    source = lake / "region=south" / "part-1.parquet"
    sink = tmp_path / "scores"
    result = score(model_file, source, sink, task_rows=200)  # rows 0-255 and 256-499

    assert result.tasks == 2

    table = read_sink(sink)
    assert result.rows_scored == table.num_rows == 500
    assert pc.unique(table.column("source_file")).to_pylist() == ["part-1.parquet"]
    order = pc.sort_indices(table, [("row_number", "ascending")])
    table = table.take(order)
    assert table.column("row_number").to_pylist() == list(range(500))
    np.testing.assert_allclose(
        table.column("score").to_numpy(),
        oracle_scores(model_file, pq.read_table(source)),
        rtol=0,
        atol=TOL,
    )
    assert run_record(sink, result.run_id)["source"] == str(source)


def renamed_lake(lake_table: pa.Table, root: Path, renames: dict[str, str]) -> pa.Table:
    """The small lake's rows in two files, with some feature columns renamed."""
    table = lake_table.rename_columns([renames.get(c, c) for c in lake_table.column_names])
    root.mkdir(parents=True)
    pq.write_table(table.slice(0, 1800), root / "a.parquet", row_group_size=256)
    pq.write_table(table.slice(1800), root / "b.parquet", row_group_size=256)
    return table


RENAMES = {"spend_30d": "spend_last_30_days", "age": "age_years"}


def test_cli_column_mapping(cli, model_file: Path, lake_table: pa.Table, tmp_path: Path) -> None:
    source = tmp_path / "renamed"
    table = renamed_lake(lake_table, source, RENAMES)
    sink = tmp_path / "scores"
    args = ["--model", model_file, "--source", source, "--sink", sink, "--id-column", ID]

    unmapped = cli("score", *args)
    assert unmapped.returncode == 2
    assert "feature column 'spend_30d' not found" in unmapped.stderr

    mapping = [f"--column={f}={c}" for f, c in RENAMES.items()]
    proc = cli("score", *args, *mapping)
    assert proc.returncode == 0, proc.stderr
    (run_id,) = run_ids(sink)
    assert_sink_matches_source(sink, model_file, table, run_id, columns=RENAMES)
    assert run_record(sink, run_id)["features"] == {f: RENAMES.get(f, f) for f in FEATURES}


def test_run_job_file_with_columns_and_relative_paths(
    cli, model_file: Path, lake_table: pa.Table, tmp_path: Path
) -> None:
    """Paths in the job file are relative to it, not to the working directory."""
    jobs = tmp_path / "jobs"
    renamed_lake(lake_table, jobs / "lake" / "customers", RENAMES)
    (jobs / "models").mkdir()
    (jobs / "models" / "churn.json").write_bytes(model_file.read_bytes())
    job = jobs / "nightly.toml"
    job.write_text(
        'model = "models/churn.json"\n'
        'source = "lake/customers"\n'
        'sink = "lake/scores"\n'
        f'id_column = "{ID}"\n'
        "task_rows = 500\n"
        "batch_rows = 100\n"
        "[columns]\n" + "".join(f'{f} = "{c}"\n' for f, c in RENAMES.items())
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    proc = cli("run", "../jobs/nightly.toml", cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr

    sink = jobs / "lake" / "scores"
    (run_id,) = run_ids(sink)
    assert_sink_matches_source(
        sink, model_file, pq.read_table(jobs / "lake" / "customers"), run_id, columns=RENAMES
    )
    record = run_record(sink, run_id)
    assert Path(record["model"]).resolve() == (jobs / "models" / "churn.json").resolve()
    assert record["tasks"] == 4 + 3  # 1800 rows and 1200 rows in 256-row groups, ~500 a task
    assert list(elsewhere.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "jobs"]


def test_a_process_scoring_the_same_model_again_reuses_its_kernel(
    model_file: Path, lake: Path, lake_table: pa.Table, tmp_path: Path, monkeypatch
) -> None:
    """A backfill calling ``score`` date after date: the second run finds the forest and
    the compiled kernel of the first in memory; a changed model file gets its own, and
    each run's scores are the model's."""
    import shutil

    import kernels
    from engine import coordinator

    compiled: list[kernels.Kernel] = []
    real_compile = kernels.compile_model

    def counting_compile(*args, **kwargs) -> kernels.Kernel:
        compiled.append(real_compile(*args, **kwargs))
        return compiled[-1]

    monkeypatch.setattr(kernels, "compile_model", counting_compile)
    coordinator._driver_kernels.clear()
    first = score(model_file, lake, tmp_path / "a", id_column=ID)
    again = score(model_file, lake, tmp_path / "b", id_column=ID)
    assert len(compiled) == 1
    for sink, result in ((tmp_path / "a", first), (tmp_path / "b", again)):
        assert_sink_matches_source(sink, model_file, lake_table, result.run_id)

    other = tmp_path / "other.json"  # the same trees, other bytes: another model file
    shutil.copy(model_file, other)
    other.write_text(other.read_text().replace('"learner"', '"learner" ', 1))
    changed = score(other, lake, tmp_path / "c", id_column=ID)
    assert len(compiled) == 2
    assert changed.record["model_sha256"] != first.record["model_sha256"]
    assert_sink_matches_source(tmp_path / "c", other, lake_table, changed.run_id)
