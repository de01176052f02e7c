"""Planning: large files cut into runs of row groups, small files of one partition and one
schema grouped into tasks, task ids stable and sensitive to every file of a task."""

from __future__ import annotations

import pyarrow as pa

from engine.plan import FILES_PER_TASK, plan_tasks
from engine.source import SourceFile

SCHEMA = pa.schema([("id", pa.int64()), ("x", pa.float32())])


def source_file(name: str, rows: list[int], region: str = "a", **kw) -> SourceFile:
    return SourceFile(
        path=f"/lake/region={region}/{name}",
        relpath=f"region={region}/{name}",
        size=kw.get("size", 1000),
        mtime_ns=kw.get("mtime_ns", 1),
        row_group_rows=tuple(rows),
        schema=kw.get("schema", SCHEMA),
        partition={"region": region},
    )


def files_of(task) -> list[str]:
    return [f.relpath.split("/")[-1] for f in task.fragments]


def test_small_files_share_tasks_of_about_task_rows() -> None:
    files = [source_file(f"p{i}", [30]) for i in range(10)]
    tasks = plan_tasks(files, task_rows=100)
    assert [files_of(t) for t in tasks] == [
        ["p0", "p1", "p2", "p3"], ["p4", "p5", "p6", "p7"], ["p8", "p9"]
    ]  # fmt: skip
    assert [t.num_rows for t in tasks] == [120, 120, 60]
    assert all(t.partition == (("region", "a"),) for t in tasks)


def test_a_large_file_is_cut_into_runs_and_never_joins_small_files() -> None:
    big = source_file("big", [100, 100, 100])
    tasks = plan_tasks([source_file("s0", [10]), big, source_file("s1", [10])], task_rows=150)
    runs = [(files_of(t), [f.row_groups for f in t.fragments]) for t in tasks]
    # the large file's runs first (planned as read), then the small files' group
    assert runs == [(["big"], [(0, 1)]), (["big"], [(2,)]), (["s0", "s1"], [(0,), (0,)])]
    assert [f.first_row for t in tasks[:2] for f in t.fragments] == [0, 200]


def test_partitions_and_schemas_never_share_a_task() -> None:
    other = pa.schema([("id", pa.int64()), ("x", pa.float64())])
    files = [
        source_file("a0", [10], "a"), source_file("b0", [10], "b"),
        source_file("a1", [10], "a"), source_file("a2", [10], "a", schema=other),
        source_file("b1", [10], "b"),
    ]  # fmt: skip
    tasks = plan_tasks(files, task_rows=1000)
    groups = sorted(files_of(t) for t in tasks)
    assert groups == [["a0", "a1"], ["a2"], ["b0", "b1"]]
    for t in tasks:
        region = dict(t.partition)["region"]
        assert all(f.relpath.startswith(f"region={region}/") for f in t.fragments)


def test_a_task_holds_at_most_files_per_task_files() -> None:
    files = [source_file(f"p{i:04d}", [1]) for i in range(2 * FILES_PER_TASK + 5)]
    tasks = plan_tasks(files, task_rows=1_000_000)
    assert [len(t.fragments) for t in tasks] == [FILES_PER_TASK, FILES_PER_TASK, 5]
    assert sum(t.num_rows for t in tasks) == len(files)


def test_empty_files_get_no_task() -> None:
    tasks = plan_tasks([source_file("e", []), source_file("s", [5])], task_rows=100)
    assert [files_of(t) for t in tasks] == [["s"]]


def test_task_ids_are_stable_and_change_with_any_file_of_the_task() -> None:
    files = [source_file(f"p{i}", [30]) for i in range(6)]
    first = [t.task_id for t in plan_tasks(files, task_rows=100)]
    assert first == [t.task_id for t in plan_tasks(files, task_rows=100)]
    assert len(set(first)) == len(first) == 2
    touched = [*files[:5], source_file("p5", [30], mtime_ns=2)]  # p5 rewritten
    again = [t.task_id for t in plan_tasks(touched, task_rows=100)]
    assert again[0] == first[0] and again[1] != first[1]
