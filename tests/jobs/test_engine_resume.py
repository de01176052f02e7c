"""Resume after a killed driver: a real ``lakescore run`` process, SIGKILL or SIGINT.

The job has 240 small tasks so that it runs for a few seconds; the process is stopped as
soon as one task is recorded in staging. The sink must then read as before, and running
the same command again must skip the finished tasks, commit once, and give exactly the
scores of an uninterrupted run.
"""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import pytest
from scoring_helpers import (
    ID,
    only_run,
    popen_cli,
    read_sink,
    run_cli,
    run_ids,
    run_record,
    scores_by_id,
    snapshot,
    write_lake,
)

from engine import score

BIG_ROWS = 240_000
TASK_ROWS = 1000
BATCH_ROWS = 250

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def big_lake(engine_data: Path) -> Path:
    """2 regions x 2 files x 60,000 rows in row groups of 500: 240 tasks of 1,000 rows."""
    root = engine_data / "big-lake"
    if not root.exists():
        write_lake(root, regions=("north", "south"), rows_per_file=60_000, row_group_rows=500)
    return root


@pytest.fixture(scope="module")
def reference(model_file: Path, big_lake: Path, engine_data: Path) -> dict[int, float]:
    """Scores by id of an uninterrupted run of the big lake, on a sink of its own."""
    sink = engine_data / "big-reference"
    if not sink.exists():
        result = score(model_file, big_lake, sink, id_column=ID)
        assert result.rows_scored == BIG_ROWS
    return scores_by_id(read_sink(sink))


def wait_for_first_task(proc, staging: Path, log: Path, timeout: float = 120) -> Path:
    """The staging directory of the run, once it holds a task record."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = list(staging.glob("*/tasks/*.json"))
        if records:
            return records[0].parent.parent
        if proc.poll() is not None:
            pytest.fail(f"lakescore exited ({proc.returncode}) early:\n{log.read_text()}")
        time.sleep(0.005)
    proc.kill()
    pytest.fail(f"no task record after {timeout} s:\n{log.read_text()}")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_interrupted_run_resumes_and_commits_once(
    sig: signal.Signals,
    model_file: Path,
    big_lake: Path,
    reference: dict[int, float],
    engine_data: Path,
    kernel_warm: None,
    tmp_path: Path,
) -> None:
    sink = tmp_path / "scores"
    shutil.copytree(engine_data / "warm-sink", sink)  # one committed run already there
    (earlier,) = run_ids(sink)
    before = read_sink(sink)
    job = tmp_path / "job.toml"
    job.write_text(
        f'model = "{model_file}"\nsource = "{big_lake}"\nsink = "{sink}"\n'
        f'id_column = "{ID}"\ntask_rows = {TASK_ROWS}\nbatch_rows = {BATCH_ROWS}\n'
    )
    log = tmp_path / "first.log"

    proc = popen_cli("run", job, log=log)
    try:
        staged = wait_for_first_task(proc, sink / "_lakescore" / "staging", log)
        proc.send_signal(sig)
        returncode = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    run_id = staged.name

    if sig == signal.SIGKILL:
        assert returncode == -signal.SIGKILL
    else:
        assert returncode == 3, log.read_text()
        assert "interrupted" in log.read_text()
    assert not (sink / run_id).exists(), "the run committed before it was stopped"
    assert run_ids(sink) == {earlier}
    assert read_sink(sink).equals(before)  # readers see what they saw before
    finished = len(list((staged / "tasks").glob("*.json")))
    assert 1 <= finished < BIG_ROWS // TASK_ROWS

    again = run_cli("run", job, timeout=300)
    assert again.returncode == 0, again.stderr
    assert run_id in again.stdout
    record = run_record(sink, run_id)
    assert record["status"] == "ok"
    assert record["rows"] == BIG_ROWS
    assert record["tasks"] == BIG_ROWS // TASK_ROWS
    assert record["tasks_resumed"] >= finished > 0
    assert run_ids(sink) == {earlier, run_id}  # committed once
    assert not staged.exists()

    table = read_sink(sink)
    assert table.num_rows == before.num_rows + BIG_ROWS
    assert only_run(table, earlier).equals(before)
    assert scores_by_id(only_run(table, run_id)) == reference  # no duplicates, same scores

    # Re-running the committed run by id commits nothing more.
    committed = snapshot(sink)
    args = ["--model", model_file, "--source", big_lake, "--sink", sink, "--id-column", ID]
    rerun = run_cli("score", *args, "--run-id", run_id)
    assert rerun.returncode == 0, rerun.stderr
    assert f"scored {BIG_ROWS:,} rows" in rerun.stdout
    assert snapshot(sink) == committed
    assert read_sink(sink).num_rows == before.num_rows + BIG_ROWS


def test_reference_is_the_oracle(
    model_file: Path, big_lake: Path, reference: dict[int, float]
) -> None:
    """The reference run itself matches XGBoost (so the comparison above means something)."""
    from scoring_helpers import oracle_scores, read_source

    source = read_source(big_lake).slice(0, 20_000)
    expected = oracle_scores(model_file, source)
    got = [reference[i] for i in source.column(ID).to_pylist()]
    assert max(abs(a - b) for a, b in zip(got, expected, strict=True)) <= 1e-6
