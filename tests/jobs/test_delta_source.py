"""A Delta table as the source: the latest version, time travel by version and by time,
the version in the run record, removed files never read, resume, bad input."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from deltalake import DeltaTable, WriterProperties, write_deltalake
from scoring_helpers import ID, error_line, oracle_scores, read_sink, scores_by_id, snapshot

import engine.task
from engine import ExecutionError, score


@pytest.fixture(scope="module")
def delta_source(lake_table: pa.Table, engine_data: Path) -> Path:
    """v0: ids 0..999 (two row groups per file, partitioned by region); v1: appends
    1000..1999; v2: overwrites the table with ids 2000..2999 (v0's and v1's files removed)."""
    root = engine_data / "delta-source"
    if root.exists():
        return root
    region = pa.array(np.array(["north", "south"])[np.arange(3000) % 2])
    table = lake_table.drop_columns(["nickname"]).append_column("region", region)
    for version, mode in enumerate(("error", "append", "overwrite")):
        rows = table.slice(1000 * version, 1000)
        write_deltalake(str(root), rows, mode=mode, partition_by=["region"],
                        writer_properties=WriterProperties(max_row_group_size=256))  # fmt: skip
        time.sleep(0.05)  # distinct commit times for --source-timestamp
    return root


def expected(model_file: Path, lake_table: pa.Table, ids: range) -> dict[int, float]:
    rows = lake_table.slice(ids.start, len(ids))
    return dict(zip(rows.column(ID).to_pylist(), oracle_scores(model_file, rows), strict=True))


def close(got: dict[int, float], want: dict[int, float]) -> bool:
    return got.keys() == want.keys() and max(abs(got[k] - want[k]) for k in want) <= 1e-6


def test_latest_version_is_scored_and_recorded(
    model_file: Path, delta_source: Path, lake_table: pa.Table, tmp_path: Path
) -> None:
    result = score(model_file, delta_source, tmp_path / "scores", id_column=ID, task_rows=200)
    assert result.record["source_version"] == 2
    assert close(scores_by_id(read_sink(tmp_path / "scores")),
                 expected(model_file, lake_table, range(2000, 3000)))  # fmt: skip
    # v2 is 2 files of 500 rows in row groups of 256: tasks stay row groups of files
    assert result.tasks == 4


def test_time_travel_by_version_from_the_cli(
    cli, model_file: Path, delta_source: Path, lake_table: pa.Table, tmp_path: Path
) -> None:
    sink = tmp_path / "scores"
    proc = cli("score", "--model", model_file, "--source", delta_source, "--sink", sink,
               "--id-column", ID, "--source-version", "1", "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert '"source_version": 1' in proc.stdout
    assert close(scores_by_id(read_sink(sink)), expected(model_file, lake_table, range(2000)))


def test_time_travel_by_timestamp(
    model_file: Path, delta_source: Path, lake_table: pa.Table, tmp_path: Path
) -> None:
    history = {h["version"]: h["timestamp"] for h in DeltaTable(str(delta_source)).history()}
    between = dt.datetime.fromtimestamp((history[0] + 1) / 1000, dt.UTC)  # after v0, before v1
    naive = between.replace(tzinfo=None).isoformat()  # no zone: UTC
    result = score(model_file, delta_source, tmp_path / "scores", id_column=ID,
                   source_timestamp=naive)  # fmt: skip
    assert result.record["source_version"] == 0
    assert close(scores_by_id(read_sink(tmp_path / "scores")),
                 expected(model_file, lake_table, range(1000)))  # fmt: skip


def test_resume_keeps_the_pinned_version(
    model_file: Path, delta_source: Path, tmp_path: Path, monkeypatch
) -> None:
    sink = tmp_path / "scores"
    real_call = engine.task.ScoringWorker.__call__
    seen: list[str] = []

    def flaky(self, task):
        seen.append(task.task_id)
        if len(seen) == 3:
            raise OSError("network blip")
        return real_call(self, task)

    monkeypatch.setattr(engine.task.ScoringWorker, "__call__", flaky)
    with pytest.raises(ExecutionError):
        score(model_file, delta_source, sink, id_column=ID, source_version=1, task_rows=200,
              workers=1, task_retries=0)  # fmt: skip
    monkeypatch.setattr(engine.task.ScoringWorker, "__call__", real_call)
    result = score(model_file, delta_source, sink, id_column=ID, source_version=1,
                   task_rows=200, workers=1)  # fmt: skip
    assert result.tasks_resumed == 2
    assert result.record["source_version"] == 1
    assert len(scores_by_id(read_sink(sink))) == 2000


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--source-version", "7"], "no version 7"),
        (["--source-timestamp", "2001-01-01T00:00:00Z"], "no timestamp"),
        (["--source-timestamp", "yesterday"], "--source-timestamp"),
        (["--source-version", "0", "--source-timestamp", "2030-01-01"], "not both"),
        (["--source-version", "-1"], "source_version"),
    ],
)
def test_bad_time_travel_is_exit_2(
    cli, model_file: Path, delta_source: Path, tmp_path: Path, flags: list[str], named: str
) -> None:
    sink = tmp_path / "scores"
    before = snapshot(delta_source)
    proc = cli("score", "--model", model_file, "--source", delta_source, "--sink", sink,
               "--id-column", ID, *flags)  # fmt: skip
    assert proc.returncode == 2
    assert named in error_line(proc)
    assert not sink.exists()
    assert snapshot(delta_source) == before


def test_time_travel_needs_a_delta_source(cli, model_file: Path, lake: Path, tmp_path: Path):
    proc = cli("score", "--model", model_file, "--source", lake, "--sink", tmp_path / "s",
               "--source-version", "0")  # fmt: skip
    assert proc.returncode == 2
    assert "need a Delta table" in error_line(proc)
