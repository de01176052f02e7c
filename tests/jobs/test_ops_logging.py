"""Structured logs: ``--log-format json`` gives one JSON object per event on stderr, with
the event's fields; library code never configures the root logger."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from pathlib import Path

from scoring_helpers import ID, error_line

from engine.cli._logging import JsonFormatter, setup_logging


def json_lines(stderr: str) -> list[dict]:
    """Every stderr line parsed as JSON (fails on any line that is not)."""
    return [json.loads(line) for line in stderr.splitlines() if line.strip()]


def test_json_formatter_writes_the_event_fields() -> None:
    record = logging.LogRecord(
        "lakescore.x", logging.INFO, __file__, 1, "run %s done", ("r1",), None
    )
    record.run_id = "r1"
    record.rows = 12
    record.path = Path("/tmp/a")  # not JSON: written as text
    doc = json.loads(JsonFormatter().format(record))
    assert doc["message"] == "run r1 done"
    assert doc["level"] == "INFO" and doc["logger"] == "lakescore.x"
    assert doc["time"].endswith("+00:00")
    assert (doc["run_id"], doc["rows"], doc["path"]) == ("r1", 12, "/tmp/a")
    assert "args" not in doc and "msg" not in doc and "levelno" not in doc


def test_setup_logging_configures_only_the_lakescore_logger() -> None:
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    lakescore = logging.getLogger("lakescore")
    saved = (list(lakescore.handlers), lakescore.level, lakescore.propagate)
    stream = io.StringIO()
    try:
        setup_logging(log_format="json", stream=stream)
        logging.getLogger("lakescore.tasks").info("t", extra={"task_id": "abc"})
        logging.getLogger("lakescore.coordinator").debug("hidden at INFO")
    finally:
        lakescore.handlers[:], lakescore.level, lakescore.propagate = saved
        logging.getLogger("lakescore.tasks").setLevel(logging.NOTSET)
    assert (list(root.handlers), root.level) == before
    (line,) = json_lines(stream.getvalue())
    assert line["task_id"] == "abc" and line["logger"] == "lakescore.tasks"


def test_importing_and_scoring_leaves_the_root_logger_alone(tmp_path: Path) -> None:
    """A fresh interpreter: import engine, score, and logging's root is as it was."""
    from scoring_helpers import train_model, write_lake

    train_model(tmp_path / "m.json")
    write_lake(tmp_path / "lake", regions=("north",), files_per_region=1, rows_per_file=50)
    code = f"""
import logging
root = logging.getLogger()
before = (list(root.handlers), root.level)
import engine
engine.score({str(tmp_path / "m.json")!r}, {str(tmp_path / "lake")!r}, {str(tmp_path / "s")!r})
assert (list(root.handlers), root.level) == before, (root.handlers, root.level)
assert logging.getLogger("lakescore").handlers == []
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_cli_json_logs_one_object_per_event(cli, model_file: Path, lake: Path, tmp_path: Path):
    sink = tmp_path / "scores"
    proc = cli("--log-format", "json", "score", "--model", model_file, "--source", lake,
               "--sink", sink, "--id-column", ID, "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    run_id = json.loads(proc.stdout)["run_id"]
    events = json_lines(proc.stderr)
    for e in events:
        assert {"time", "level", "logger", "message"} <= set(e)
    by_kind: dict[str, list[dict]] = {}
    for e in events:
        by_kind.setdefault(e.get("event", ""), []).append(e)
    (planned,) = by_kind["run_planned"]
    assert (planned["run_id"], planned["stage"], planned["rows"]) == (run_id, "plan", 3000)
    tasks = by_kind["task_finished"]
    assert len(tasks) == planned["tasks"] == len({t["task_id"] for t in tasks})
    assert sum(t["rows"] for t in tasks) == 3000
    for t in tasks:
        assert t["run_id"] == run_id and t["stage"] == "execute" and t["node"]
        assert set(t["stage_seconds"]) == {"read", "features", "kernel", "write", "stats"}
        assert t["seconds"] >= 0
    (committed,) = by_kind["run_committed"]
    assert (committed["run_id"], committed["rows"], committed["status"]) == (run_id, 3000, "ok")


def test_cli_text_logs_hide_task_events_and_accept_the_flag_after_the_command(
    cli, model_file: Path, lake: Path, tmp_path: Path
) -> None:
    proc = cli("score", "--model", model_file, "--source", lake, "--sink", tmp_path / "s",
               "--log-format", "text")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "lakescore.coordinator: run " in proc.stderr
    assert "lakescore.tasks" not in proc.stderr
    assert not proc.stderr.lstrip().startswith("{")


def test_cli_json_errors_are_json_too(cli, model_file: Path, lake: Path, tmp_path: Path) -> None:
    args = ("score", "--model", model_file, "--source", lake, "--sink", tmp_path / "s",
            "--id-column", "no_such_column")  # fmt: skip
    proc = cli("--log-format", "json", *args)
    assert proc.returncode == 2
    (line,) = json_lines(proc.stderr)
    assert line["level"] == "ERROR" and line["exit_code"] == 2
    assert "no_such_column" in line["message"]
    assert "no_such_column" in error_line(cli(*args))  # text mode: the plain one-liner


def test_a_failed_run_logs_a_run_failed_event(
    model_file: Path, lake: Path, tmp_path: Path, monkeypatch, caplog
) -> None:
    import pytest

    import engine.task
    from engine import ExecutionError, score

    def broken(self, task):
        raise OSError("disk on fire")

    monkeypatch.setattr(engine.task.ScoringWorker, "__call__", broken)
    with (
        caplog.at_level(logging.INFO, logger="lakescore"),
        pytest.raises(ExecutionError),
    ):
        score(model_file, lake, tmp_path / "s", workers=1)
    (failed,) = [r for r in caplog.records if getattr(r, "event", None) == "run_failed"]
    planned = next(r for r in caplog.records if getattr(r, "event", None) == "run_planned")
    assert failed.levelname == "ERROR" and failed.run_id == planned.run_id
    assert failed.status == "failed" and failed.rows == 0 and failed.node
    assert "disk on fire" in failed.getMessage()
