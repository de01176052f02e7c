"""With ``--hash-id``, raw ids reach nothing: not the sink's data, not the run record, not
the task records or the job file in staging, not a log event, not the CLI's output; and a
run that failed and is resumed writes the same hashes as one that ran straight through.

The ids of this lake carry a marker (``RAWID``) that no hash, path or number contains, so
"no raw id" is a plain substring search over every byte lakescore wrote or logged.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scoring_helpers import ID, customer_columns, read_sink, run_cli, scores_by_id

from cluster.local import LocalExecutor
from engine.coordinator import run_job
from engine.errors import ExecutionError
from engine.spec import JobSpec

SALT = "s3cret-salt"
MARKER = "RAWID"
ROWS = 800


def raw_id(i: int) -> str:
    return f"{MARKER}-{i:06d}"


@pytest.fixture(scope="module")
def string_lake(engine_data: Path) -> Path:
    """2 files x 400 rows, row groups of 100 (8 tasks at task_rows=100), string ids."""
    root = engine_data / "string-id-lake"
    if not root.exists():
        root.mkdir()
        rng = np.random.default_rng(7)
        for f in range(2):
            columns = customer_columns(ROWS // 2, rng)
            columns[ID] = pa.array([raw_id(f * ROWS // 2 + i) for i in range(ROWS // 2)])
            pq.write_table(pa.table(columns), root / f"part-{f}.parquet", row_group_size=100)
    return root


def expected_hashes() -> set[str]:
    return {hashlib.sha256((SALT + raw_id(i)).encode()).hexdigest() for i in range(ROWS)}


def assert_no_raw_ids(sink: Path, *texts: str) -> None:
    """No file lakescore wrote under the sink but the data parts holds a raw id, nor any
    text given; the data parts hold hashes in the id column and nothing else id-like."""
    for text in texts:
        assert MARKER not in text
    for path in sink.rglob("*"):
        if not path.is_file():
            continue
        rel = path.relative_to(sink).parts
        if path.suffix == ".parquet" and rel[0] == "_lakescore" and rel[1] != "staging":
            # quality tables: no id column, and no raw id anywhere in them
            table = pq.read_table(path)
            assert ID not in table.column_names, path
            assert MARKER not in str(table.to_pylist()), path
        elif path.suffix == ".parquet":
            table = pq.read_table(path)
            assert table.column_names == [ID, "score", "run_id"], path
            assert table.schema.field(ID).type == pa.string()
            assert not any(MARKER in v for v in table[ID].to_pylist())
        else:
            assert MARKER.encode() not in path.read_bytes(), path


class FailingOnThirdTask(LocalExecutor):
    """The real local executor; its worker raises on the third task it is given."""

    def execute(self, factory: Any, tasks: Iterable[Any]) -> Iterator[Any]:
        def failing_factory(device: str | None = None) -> Any:
            worker = factory(device)
            seen: list[object] = []

            def run(task: Any) -> Any:
                seen.append(task)
                if len(seen) == 3:
                    raise RuntimeError("injected fault")
                return worker(task)

            return run

        return super().execute(failing_factory, tasks)


def spec(model_file: Path, lake: Path, sink: Path) -> JobSpec:
    return JobSpec(model=str(model_file), source=str(lake), sink=str(sink), id_column=ID,
                   hash_id_salt=SALT, task_rows=100, workers=1)  # fmt: skip


@pytest.mark.slow
def test_a_failed_and_resumed_run_writes_the_same_hashes_and_never_a_raw_id(
    model_file: Path, string_lake: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sink = tmp_path / "s"
    with pytest.raises(ExecutionError, match="injected fault"):
        run_job(spec(model_file, string_lake, sink), executor=FailingOnThirdTask(threads=1),
                progress=False)  # fmt: skip
    staged = list((sink / "_lakescore" / "staging").glob("*/tasks/*.json"))
    assert len(staged) == 2  # the two tasks before the fault, kept for the resume
    assert_no_raw_ids(sink)

    result = run_job(spec(model_file, string_lake, sink), progress=False)
    assert result.tasks_resumed == 2 and result.rows_scored == ROWS
    table = read_sink(sink)
    assert table.num_rows == ROWS and set(table[ID].to_pylist()) == expected_hashes()
    straight = run_job(spec(model_file, string_lake, tmp_path / "straight"), progress=False)
    assert straight.tasks_resumed == 0
    assert scores_by_id(table) == scores_by_id(read_sink(tmp_path / "straight"))

    logged = "\n".join(f"{r.getMessage()} {r.__dict__!r}" for r in caplog.records)
    assert "task_finished" in logged and "run_failed" in logged  # the events were seen
    assert_no_raw_ids(sink, logged, repr(result.record))
    assert SALT not in logged


@pytest.mark.slow
def test_cli_json_logs_and_record_carry_no_raw_id(
    cli, model_file: Path, string_lake: Path, tmp_path: Path
) -> None:
    sink = tmp_path / "s"
    done = run_cli("-v", "--log-format", "json", "score", "--model", model_file, "--source",
                   string_lake, "--sink", sink, "--id-column", ID, "--hash-id", SALT,
                   "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert '"event": "task_finished"' in done.stderr
    assert_no_raw_ids(sink, done.stdout, done.stderr)
    assert set(read_sink(sink)[ID].to_pylist()) == expected_hashes()
