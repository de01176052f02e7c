"""The Delta sink: one transaction per run, readable by deltalake, Polars and DuckDB,
idempotent by the run id's application transaction, concurrent runs, failures and resume.
"""

from __future__ import annotations

import shutil
import signal
import threading
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable
from scoring_helpers import (
    ID,
    error_line,
    oracle_scores,
    popen_cli,
    run_cli,
    scores_by_id,
    snapshot,
    write_lake,
)

import engine.delta_sink
import engine.task
from engine import BadInputError, ExecutionError, score


def delta_rows(table: Path) -> pa.Table:
    return DeltaTable(str(table)).to_pyarrow_table()


def log_entries(table: Path) -> list[str]:
    return sorted(p.name for p in (table / "_delta_log").glob("*.json"))


def test_delta_sink_is_read_alike_by_deltalake_polars_and_duckdb(
    model_file: Path, lake: Path, lake_table: pa.Table, tmp_path: Path
) -> None:
    table = tmp_path / "scores"
    result = score(model_file, lake, table, id_column=ID, format="delta", task_rows=300)
    assert result.status == "ok"
    assert result.rows_scored == lake_table.num_rows == 3000
    assert result.record["format"] == "delta"
    assert log_entries(table) == ["00000000000000000000.json"]  # one transaction, 12 parts
    dt = DeltaTable(str(table))
    assert len(dt.file_uris()) == 12
    assert dt.transaction_version(result.run_id) == engine.delta_sink.TXN_VERSION

    expected = dict(
        zip(lake_table.column(ID).to_pylist(), oracle_scores(model_file, lake_table), strict=True)
    )
    by_id = scores_by_id(delta_rows(table))
    assert by_id.keys() == expected.keys()
    assert max(abs(by_id[k] - expected[k]) for k in expected) <= 1e-6

    polars = pl.read_delta(str(table))
    assert polars.height == 3000
    assert polars[ID].n_unique() == 3000
    assert set(polars["run_id"].unique()) == {result.run_id}
    assert polars.schema["score"] == pl.Float32

    # DuckDB's delta extension is downloaded on first use, which this machine cannot do:
    # read the files the Delta log lists (what delta_scan would read) with read_parquet.
    files = dt.file_uris()
    count, ids, total = duckdb.sql(
        f"select count(*), count(distinct {ID}), sum(score) from read_parquet({files!r})"
    ).fetchall()[0]
    assert (count, ids) == (3000, 3000)
    assert total == pytest.approx(float(np.sum(list(expected.values()), dtype=np.float64)))


def test_rerun_of_a_committed_run_commits_nothing(
    model_file: Path, lake: Path, tmp_path: Path
) -> None:
    table = tmp_path / "scores"
    first = score(model_file, lake, table, id_column=ID, format="delta", task_rows=300)
    before = snapshot(table)
    again = score(model_file, lake, table, id_column=ID, format="delta", run_id=first.run_id)
    assert again.rows_scored == 3000
    assert snapshot(table) == before
    # Committing the same run's parts again (a process that died after the Delta commit
    # and before cleaning up) is refused by the application transaction, not duplicated.
    parts = sorted((table / first.run_id).glob("part-*.parquet"))
    engine.delta_sink.DeltaSink(table).commit_parts(first.run_id, parts)
    assert log_entries(table) == ["00000000000000000000.json"]
    assert delta_rows(table).num_rows == 3000


def test_crash_after_the_delta_commit_rolls_forward(
    model_file: Path, lake: Path, tmp_path: Path, monkeypatch
) -> None:
    table = tmp_path / "scores"

    def crash(self, record):
        raise OSError("power cut")

    finish = engine.delta_sink.DeltaRunStaging.finish
    monkeypatch.setattr(engine.delta_sink.DeltaRunStaging, "finish", crash)
    with pytest.raises(OSError, match="power cut"):
        score(model_file, lake, table, id_column=ID, format="delta", task_rows=300)
    assert delta_rows(table).num_rows == 3000  # committed once, record not yet written
    monkeypatch.setattr(engine.delta_sink.DeltaRunStaging, "finish", finish)
    calls: list[object] = []
    monkeypatch.setattr(engine.task.ScoringWorker, "__call__", lambda self, t: calls.append(t))
    result = score(model_file, lake, table, id_column=ID, format="delta", task_rows=300)
    assert calls == []
    assert result.status == "ok"
    assert result.tasks_resumed == result.tasks == 12
    assert log_entries(table) == ["00000000000000000000.json"]
    assert delta_rows(table).num_rows == 3000
    assert not (table / "_lakescore" / "staging" / result.run_id).exists()


def test_failed_run_leaves_the_log_untouched_and_resumes(
    model_file: Path, lake: Path, tmp_path: Path, monkeypatch
) -> None:
    table = tmp_path / "scores"
    earlier = score(model_file, lake, table, id_column=ID, format="delta")
    log_before = snapshot(table / "_delta_log")
    real_call = engine.task.ScoringWorker.__call__
    failures = [3]
    seen: list[str] = []

    def flaky(self, task):
        seen.append(task.task_id)
        if failures and len(seen) == failures[0]:
            failures.pop()
            raise OSError("disk on fire")
        return real_call(self, task)

    monkeypatch.setattr(engine.task.ScoringWorker, "__call__", flaky)
    source = write_lake(tmp_path / "other", seed=99)  # ids 0..2999 again, other features
    with pytest.raises(ExecutionError, match="disk on fire"):
        score(model_file, source, table, id_column=ID, format="delta", task_rows=300, workers=1,
              task_retries=0)  # fmt: skip
    assert snapshot(table / "_delta_log") == log_before
    assert delta_rows(table).num_rows == 3000  # staged parts are not in the log: unseen

    seen.clear()
    result = score(model_file, source, table, id_column=ID, format="delta", task_rows=300)
    assert result.tasks_resumed == 2
    assert len(seen) == 10
    rows = delta_rows(table)
    assert rows.num_rows == 6000
    run = pc.cast(rows.column("run_id"), pa.string())
    for run_id in (earlier.run_id, result.run_id):
        assert len(scores_by_id(rows.filter(pc.equal(run, run_id)))) == 3000


def test_concurrent_runs_both_land(model_file: Path, lake: Path, tmp_path: Path) -> None:
    """Two runs commit to one new table at the same moment (held at a barrier just before
    the commit): both race to create version 0, the loser retries as an append."""
    table = tmp_path / "scores"
    barrier = threading.Barrier(2, timeout=60)
    commit = engine.delta_sink.DeltaSink.commit_parts
    results: dict[str, object] = {}

    def at_barrier(self, run_id, parts):
        barrier.wait()
        return commit(self, run_id, parts)

    def run(name: str) -> None:
        try:
            results[name] = score(model_file, lake, table, id_column=ID, format="delta",
                                  run_id=name, task_rows=600)  # fmt: skip
        except BaseException as exc:  # reported below
            results[name] = exc

    mp = pytest.MonkeyPatch()
    mp.setattr(engine.delta_sink.DeltaSink, "commit_parts", at_barrier)
    try:
        threads = [threading.Thread(target=run, args=(n,)) for n in ("run-a", "run-b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        mp.undo()
    assert all(getattr(r, "status", None) == "ok" for r in results.values()), results
    rows = delta_rows(table)
    assert rows.num_rows == 6000
    runs = pc.cast(rows.column("run_id"), pa.string())
    assert pc.value_counts(runs).to_pylist() in (
        [{"values": "run-a", "counts": 3000}, {"values": "run-b", "counts": 3000}],
        [{"values": "run-b", "counts": 3000}, {"values": "run-a", "counts": 3000}],
    )
    assert len(log_entries(table)) == 2
    dt = DeltaTable(str(table))
    assert dt.transaction_version("run-a") == dt.transaction_version("run-b") == 1


@pytest.mark.slow
def test_concurrent_processes_both_land(cli, model_file: Path, lake: Path, tmp_path: Path) -> None:
    table = tmp_path / "scores"
    score(model_file, lake, table, id_column=ID, format="delta")  # the table exists
    args = ["-q", "score", "--model", model_file, "--source", lake, "--sink", table,
            "--id-column", ID, "--format", "delta"]  # fmt: skip
    procs = [popen_cli(*args, "--run-id", f"p{i}", log=tmp_path / f"{i}.log") for i in range(2)]
    for i, proc in enumerate(procs):
        assert proc.wait(180) == 0, (tmp_path / f"{i}.log").read_text()
    rows = delta_rows(table)
    assert rows.num_rows == 9000
    assert len(set(pc.cast(rows.column("run_id"), pa.string()).to_pylist())) == 3


@pytest.mark.slow
def test_killed_run_resumes_and_commits_once(
    cli, model_file: Path, engine_data: Path, tmp_path: Path
) -> None:
    source = engine_data / "delta-kill-lake"
    if not source.exists():
        write_lake(source, regions=("north",), rows_per_file=40_000, row_group_rows=500)
    table = tmp_path / "scores"
    job = tmp_path / "job.toml"
    job.write_text(
        f'model = "{model_file}"\nsource = "{source}"\nsink = "{table}"\nid_column = "{ID}"\n'
        'format = "delta"\ntask_rows = 1000\nbatch_rows = 250\n'
    )
    log = tmp_path / "first.log"
    proc = popen_cli("run", job, log=log)
    try:
        staging = table / "_lakescore" / "staging"
        for _ in range(24_000):
            if list(staging.glob("*/tasks/*.json")) or proc.poll() is not None:
                break
            threading.Event().wait(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    (staged,) = staging.iterdir()
    assert not (table / "_delta_log").exists(), log.read_text()  # nothing committed
    again = run_cli("run", job, timeout=300)
    assert again.returncode == 0, again.stderr
    rows = delta_rows(table)
    assert rows.num_rows == 80_000
    assert len(scores_by_id(rows)) == 80_000
    assert log_entries(table) == ["00000000000000000000.json"]
    assert DeltaTable(str(table)).transaction_version(staged.name) == 1
    assert not staged.exists()


# --- bad input: exit 2, one line, sink untouched --------------------------------------------


def test_incompatible_delta_table_is_bad_input(
    cli, model_file: Path, lake: Path, tmp_path: Path
) -> None:
    from deltalake import write_deltalake

    table = tmp_path / "scores"
    write_deltalake(str(table), pa.table({ID: pa.array(["1"], pa.string()), "x": [1.0]}))
    before = snapshot(table)
    proc = cli("score", "--model", model_file, "--source", lake, "--sink", table,
               "--id-column", ID, "--format", "delta")  # fmt: skip
    assert proc.returncode == 2
    line = error_line(proc)
    assert str(table) in line and "schema" in line
    assert snapshot(table) == before


def test_format_must_match_the_sink(cli, model_file: Path, lake: Path, tmp_path: Path) -> None:
    parquet_sink = tmp_path / "parquet-scores"
    score(model_file, lake, parquet_sink, id_column=ID)
    delta_table = tmp_path / "delta-scores"
    score(model_file, lake, delta_table, id_column=ID, format="delta")
    trees = {p: snapshot(p) for p in (parquet_sink, delta_table)}
    for sink, fmt, named in ((parquet_sink, "delta", "not a Delta table"),
                             (delta_table, "parquet", "is a Delta table")):  # fmt: skip
        proc = cli("score", "--model", model_file, "--source", lake, "--sink", sink,
                   "--id-column", ID, "--format", fmt)  # fmt: skip
        assert proc.returncode == 2
        assert named in error_line(proc)
    assert {p: snapshot(p) for p in trees} == trees


def test_bad_data_mid_run_leaves_the_table_untouched(
    model_file: Path, copy_lake, tmp_path: Path
) -> None:
    lake = copy_lake()
    table = tmp_path / "scores"
    score(model_file, lake, table, id_column=ID, format="delta")
    before = snapshot(table)
    bad = lake / "region=south" / "part-1.parquet"
    data = bytearray(bad.read_bytes())
    data[4:68] = bytes(b ^ 0x5A for b in data[4:68])
    bad.write_bytes(bytes(data))
    with pytest.raises(BadInputError, match=str(bad)):
        score(model_file, lake, table, id_column=ID, format="delta", task_rows=300)
    assert snapshot(table) == before
    fresh = tmp_path / "new" / "scores"
    with pytest.raises(BadInputError):
        score(model_file, lake, fresh, id_column=ID, format="delta", task_rows=300)
    assert not fresh.parent.exists()


def test_job_spec_takes_the_delta_format(model_file: Path, lake: Path, tmp_path: Path) -> None:
    job = tmp_path / "job.toml"
    job.write_text(
        f'model = "{model_file}"\nsource = "{lake}"\nsink = "scores"\nid_column = "{ID}"\n'
        'format = "delta"\n'
    )
    proc = run_cli("-q", "run", job)
    assert proc.returncode == 0, proc.stderr
    assert delta_rows(tmp_path / "scores").num_rows == 3000
    shutil.rmtree(tmp_path / "scores")
    job.write_text(job.read_text().replace('"delta"', '"orc"'))
    proc = run_cli("run", job)
    assert proc.returncode == 2
    assert "format" in error_line(proc)
