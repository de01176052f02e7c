"""Staging and the atomic commit, in process: crashes around the commit point, the run
lock, a run id reused for another job, a failed task and its resume."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from scoring_helpers import ID, quality_table, read_sink, run_ids, run_record, scores_by_id

import engine.staging
import engine.task
from cluster import LocalExecutor
from engine import BadInputError, ExecutionError, JobSpec, run_job, score
from engine.staging import Sink


class SimulatedCrash(Exception):
    pass


def staging_dirs(sink: Path) -> list[str]:
    root = sink / "_lakescore" / "staging"
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def test_crash_after_commit_rename_rolls_forward(
    model_file: Path, lake: Path, lake_table: pa.Table, tmp_path: Path, monkeypatch
) -> None:
    """The process dies after the rename (rows visible) and before the run record: the
    next invocation of the same job writes the record and cleans up, adding no rows."""
    sink = tmp_path / "scores"
    finish = engine.staging.RunStaging.finish

    def crash(self, record):
        raise SimulatedCrash("power cut")

    monkeypatch.setattr(engine.staging.RunStaging, "finish", crash)
    with pytest.raises(SimulatedCrash):
        score(model_file, lake, sink, id_column=ID, task_rows=300)
    (run_id,) = run_ids(sink)  # the commit point was passed: the rows are there once
    assert read_sink(sink).num_rows == 3000
    assert not (sink / "_lakescore" / "run_records" / f"{run_id}.json").exists()
    assert staging_dirs(sink) == [run_id]

    monkeypatch.setattr(engine.staging.RunStaging, "finish", finish)
    calls: list[object] = []
    monkeypatch.setattr(engine.task.ScoringWorker, "__call__", lambda self, t: calls.append(t))
    result = score(model_file, lake, sink, id_column=ID, task_rows=300)

    assert result.run_id == run_id
    assert result.status == "ok"
    assert result.rows_scored == 3000
    assert calls == []  # nothing was scored again
    assert result.tasks_resumed == result.tasks
    assert run_ids(sink) == {run_id}
    assert len(scores_by_id(read_sink(sink))) == 3000
    assert run_record(sink, run_id)["status"] == "ok"
    assert staging_dirs(sink) == []
    # The quality tables rolled forward with the record, once, from the task records.
    assert quality_table(sink, "runs").column("run_id").to_pylist() == [run_id]
    assert set(quality_table(sink, "feature_stats").column("rows").to_pylist()) == {3000}


def test_crash_before_commit_leaves_no_rows_and_resumes(
    model_file: Path, lake: Path, tmp_path: Path, monkeypatch
) -> None:
    """A task fails mid-run: ExecutionError, nothing visible, a failed run record; the
    rerun scores only the tasks that did not finish and commits once."""
    sink = tmp_path / "scores"
    reference = score(model_file, lake, tmp_path / "reference", id_column=ID, task_rows=300)
    real_call = engine.task.ScoringWorker.__call__
    seen: list[str] = []
    failures = [5]  # fail the fifth task of the first run, once

    def flaky(self, task):
        seen.append(task.task_id)  # one thread: workers=1 below
        if failures and len(seen) == failures[0]:
            failures.pop()
            raise OSError("disk on fire")
        return real_call(self, task)

    monkeypatch.setattr(engine.task.ScoringWorker, "__call__", flaky)
    with pytest.raises(ExecutionError, match="disk on fire"):
        score(model_file, lake, sink, id_column=ID, task_rows=300, workers=1, task_retries=0)
    assert run_ids(sink) == set()
    assert read_sink(sink).num_rows == 0
    (run_id,) = staging_dirs(sink)
    failed = run_record(sink, run_id)
    assert failed["status"] == "failed"
    assert "disk on fire" in failed["error"]
    assert failed["tasks_done"] == 4
    assert quality_table(sink, "runs").num_rows == 0  # a failed run adds no quality rows

    seen.clear()
    result = score(model_file, lake, sink, id_column=ID, task_rows=300, workers=1)
    assert result.run_id == run_id
    assert result.tasks == 12
    assert result.tasks_resumed == 4
    assert len(seen) == 8
    assert run_ids(sink) == {run_id}
    assert scores_by_id(read_sink(sink)) == scores_by_id(read_sink(tmp_path / "reference"))
    assert run_record(sink, run_id)["status"] == "ok"
    assert reference.rows_scored == result.rows_scored == 3000
    # The 4 resumed tasks' profiles came back from their task records: the merged profile
    # is the uninterrupted run's.
    stats = quality_table(sink, "feature_stats").sort_by("column")
    expected = quality_table(tmp_path / "reference", "feature_stats").sort_by("column")
    for name in ("rows", "nulls", "count", "min", "max"):
        assert stats.column(name).to_pylist() == expected.column(name).to_pylist(), name
    np.testing.assert_allclose(stats["mean"].to_numpy(), expected["mean"].to_numpy(), rtol=1e-9)


@pytest.mark.parametrize(
    "layout",
    [
        {},
        {"partition_by": ["score_date=2026-11-01", "region"]},
        {"format": "delta"},
    ],
    ids=["parquet", "partitioned", "delta"],
)
def test_a_resume_planned_differently_drops_the_stale_parts(
    model_file: Path, lake: Path, tmp_path: Path, monkeypatch, layout: dict[str, Any]
) -> None:
    """The rerun of a failed run cuts the source into other tasks (another task_rows; or
    another lakescore, which groups small files): the parts the first attempt staged for
    tasks the new plan lacks are dropped at the commit, never published beside the new
    ones (a duplicate of every row they hold), and the commit does not fail over them."""
    sink = tmp_path / "scores"
    real_call = engine.task.ScoringWorker.__call__
    seen: list[str] = []

    def flaky(self, task):
        seen.append(task.task_id)
        if len(seen) == 5:
            raise OSError("disk on fire")
        return real_call(self, task)

    monkeypatch.setattr(engine.task.ScoringWorker, "__call__", flaky)
    with pytest.raises(ExecutionError, match="disk on fire"):
        score(model_file, lake, sink, id_column=ID, task_rows=300, workers=1, task_retries=0,
              **layout)  # fmt: skip
    (run_id,) = staging_dirs(sink)

    monkeypatch.setattr(engine.task.ScoringWorker, "__call__", real_call)
    result = score(model_file, lake, sink, id_column=ID, task_rows=1000, run_id=run_id, **layout)
    assert (result.run_id, result.tasks, result.tasks_resumed) == (run_id, 3, 0)
    if layout.get("format") == "delta":
        from deltalake import DeltaTable

        table = DeltaTable(str(sink)).to_pyarrow_table()
        assert len(list(sink.rglob("part-*.parquet"))) == 3  # the stale ones are gone too
    else:
        table = read_sink(sink)
    assert table.num_rows == 3000 and len(scores_by_id(table)) == 3000


class GatedExecutor(LocalExecutor):
    """A local executor that holds every task until ``gate`` is set."""

    def __init__(self) -> None:
        super().__init__(threads=1)
        self.started = threading.Event()
        self.gate = threading.Event()

    def _execute(self, factory, tasks: Iterable[Any]) -> Iterator[Any]:
        self.started.set()
        assert self.gate.wait(30)
        yield from super()._execute(factory, tasks)


def test_second_coordinator_on_the_same_run_is_locked_out(
    model_file: Path, lake: Path, tmp_path: Path
) -> None:
    sink = tmp_path / "scores"
    spec = JobSpec(
        model=str(model_file), source=str(lake), sink=str(sink), id_column=ID, run_id="run-1"
    )
    executor = GatedExecutor()
    outcome: dict[str, object] = {}

    def first() -> None:
        try:
            outcome["result"] = run_job(spec, executor=executor, progress=False)
        except BaseException as exc:  # reported by the main thread
            outcome["error"] = exc

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert executor.started.wait(30)
        with pytest.raises(ExecutionError, match="run-1 is already running"):
            run_job(spec, progress=False)
        with pytest.raises(ExecutionError, match="already running"):
            score(model_file, lake, sink, id_column=ID)  # finds run-1 and resumes it
    finally:
        executor.gate.set()
        thread.join(60)
    assert "error" not in outcome, outcome.get("error")
    assert run_ids(sink) == {"run-1"}
    assert read_sink(sink).num_rows == 3000
    assert staging_dirs(sink) == []


def test_lock_is_per_run(tmp_path: Path) -> None:
    sink = Sink(tmp_path / "scores")
    with (
        sink.staging("a"),
        sink.staging("b"),
        pytest.raises(ExecutionError, match="run a"),
        sink.staging("a"),
    ):
        pass
    with sink.staging("a"):  # released on exit
        pass


def test_run_id_of_another_job_is_bad_input(
    model_file: Path, lake: Path, tmp_path: Path, monkeypatch
) -> None:
    """An unfinished run id reused with another source or id column is refused."""
    sink = tmp_path / "scores"
    monkeypatch.setattr(
        engine.task.ScoringWorker, "__call__", lambda self, t: (_ for _ in ()).throw(OSError("x"))
    )
    with pytest.raises(ExecutionError):
        score(model_file, lake, sink, id_column=ID, run_id="nightly")
    monkeypatch.undo()
    before = sorted(p.relative_to(sink) for p in sink.rglob("*"))

    other_source = lake / "region=north"
    with pytest.raises(BadInputError, match="run id nightly was started for a different job"):
        score(model_file, other_source, sink, id_column=ID, run_id="nightly")
    with pytest.raises(BadInputError, match="different job"):
        score(model_file, lake, sink, run_id="nightly")  # no id column
    assert sorted(p.relative_to(sink) for p in sink.rglob("*")) == before
    assert run_ids(sink) == set()


def test_committed_run_id_of_another_job_is_bad_input(
    model_file: Path, lake: Path, tmp_path: Path
) -> None:
    """A committed run id reused for another job must not report the old run as done."""
    sink = tmp_path / "scores"
    score(model_file, lake, sink, id_column=ID, run_id="nightly")
    again = score(model_file, lake, sink, id_column=ID, run_id="nightly")  # same job: no-op
    assert again.rows_scored == 3000
    with pytest.raises(BadInputError, match="different job"):
        score(model_file, lake / "region=north", sink, id_column=ID, run_id="nightly")
    assert run_ids(sink) == {"nightly"}
    assert read_sink(sink).num_rows == 3000


def test_stray_temporary_files_are_not_committed(
    model_file: Path, lake: Path, tmp_path: Path, monkeypatch
) -> None:
    """A writer killed mid-part leaves a temporary file in staging; the commit drops it."""
    sink = tmp_path / "scores"
    monkeypatch.setattr(
        engine.task.ScoringWorker, "__call__", lambda self, t: (_ for _ in ()).throw(OSError("x"))
    )
    with pytest.raises(ExecutionError):
        score(model_file, lake, sink, id_column=ID)
    monkeypatch.undo()
    (run_id,) = staging_dirs(sink)
    data = sink / "_lakescore" / "staging" / run_id / "data"
    (data / ".part-abc.parquet.0123.tmp").write_bytes(b"half a part")

    result = score(model_file, lake, sink, id_column=ID)
    assert result.run_id == run_id
    committed = sorted(p.name for p in (sink / run_id).iterdir())
    assert len(committed) == result.tasks
    assert all(name.startswith("part-") for name in committed)
    assert read_sink(sink).num_rows == 3000


def test_commit_point_is_one_rename(model_file: Path, lake: Path, tmp_path: Path, monkeypatch):
    """Readers see none of a run's rows before the rename and all of them after it."""
    sink = tmp_path / "scores"
    renames: list[tuple[Path, Path, int, int]] = []
    rename = engine.staging.os.rename

    def spy(src, dst):
        visible_before = read_sink(sink).num_rows
        rename(src, dst)
        renames.append((Path(src), Path(dst), visible_before, read_sink(sink).num_rows))

    monkeypatch.setattr(engine.staging.os, "rename", spy)
    result = score(model_file, lake, sink, id_column=ID, task_rows=300)

    ((src, dst, visible_before, visible_after),) = renames
    assert src == sink / "_lakescore" / "staging" / result.run_id / "data"
    assert dst == sink / result.run_id
    assert (visible_before, visible_after) == (0, 3000)
