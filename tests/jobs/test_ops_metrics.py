"""Metrics: each run replaces a Prometheus text-format file (node_exporter textfile style)
with its rows, duration, tasks, status and drift; the last success time survives failures."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from scoring_helpers import ID, run_record

import engine.task
from engine import BadInputError, ExecutionError, JobSpec, score
from engine.metrics import read_last_success, render, write_metrics
from engine.run_summary import RunSummary


def parse(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a metrics file by (name, sorted labels but ``sink``), parsed by the
    reference client's parser (which raises on a malformed file)."""
    samples = {}
    for family in text_string_to_metric_families(path.read_text()):
        assert family.type == "gauge", family.name
        assert family.documentation, family.name
        for s in family.samples:
            labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "sink"))
            samples[(s.name, labels)] = s.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_a_successful_run_writes_its_metrics(model_file: Path, lake: Path, tmp_path: Path):
    metrics = tmp_path / "textfile" / "churn.prom"
    result = score(model_file, lake, tmp_path / "s", id_column=ID, task_rows=300,
                   metrics_file=str(metrics))  # fmt: skip
    record = run_record(tmp_path / "s", result.run_id)
    m = parse(metrics)
    assert value(m, "lakescore_run_rows_scored") == 3000
    assert value(m, "lakescore_run_duration_seconds") == pytest.approx(record["seconds"])
    assert value(m, "lakescore_run_rows_per_second") == pytest.approx(record["rows_per_second"])
    assert value(m, "lakescore_run_tasks") == 12
    assert value(m, "lakescore_run_tasks_retried") == value(m, "lakescore_run_tasks_failed") == 0
    assert value(m, "lakescore_run_status", status="ok") == 1
    for other in ("warn", "fail", "failed"):
        assert value(m, "lakescore_run_status", status=other) == 0
    assert value(m, "lakescore_run_exit_code") == 0
    assert value(m, "lakescore_run_info", run_id=result.run_id) == 1
    finished = value(m, "lakescore_run_timestamp_seconds")
    assert value(m, "lakescore_last_success_timestamp_seconds") == finished
    assert 'sink="' + str(tmp_path / "s") + '"' in metrics.read_text()
    assert [p.name for p in metrics.parent.iterdir()] == ["churn.prom"]  # no temp file left


def test_a_failed_run_keeps_the_last_success_time(
    model_file: Path, lake: Path, tmp_path: Path, monkeypatch
) -> None:
    metrics = tmp_path / "churn.prom"
    summary = RunSummary.of(
        JobSpec(model="m", source="src", sink="s"),
        {"run_id": "r0", "status": "ok", "finished_at": "2026-11-25T02:00:00+00:00"},
    )
    write_metrics(metrics, summary)
    last_good = read_last_success(metrics)
    assert last_good == summary.finished_at

    def broken(self, task):
        raise OSError("disk on fire")

    monkeypatch.setattr(engine.task.ScoringWorker, "__call__", broken)
    with pytest.raises(ExecutionError, match="disk on fire"):
        score(model_file, lake, tmp_path / "s", id_column=ID, workers=1,
              metrics_file=str(metrics))  # fmt: skip
    m = parse(metrics)
    assert value(m, "lakescore_run_status", status="failed") == 1
    assert value(m, "lakescore_run_status", status="ok") == 0
    assert value(m, "lakescore_run_exit_code") == 3
    assert value(m, "lakescore_run_tasks_failed") == 1
    assert value(m, "lakescore_run_rows_scored") == 0
    assert value(m, "lakescore_last_success_timestamp_seconds") == last_good


def test_bad_input_while_planning_is_a_failed_run_in_the_metrics(
    model_file: Path, lake: Path, tmp_path: Path
) -> None:
    metrics = tmp_path / "churn.prom"
    with pytest.raises(BadInputError):
        score(model_file, lake, tmp_path / "s", id_column="nope", metrics_file=str(metrics))
    m = parse(metrics)
    assert value(m, "lakescore_run_status", status="failed") == 1
    assert value(m, "lakescore_run_exit_code") == 2
    assert value(m, "lakescore_run_info", run_id="") == 1
    assert ("lakescore_last_success_timestamp_seconds", ()) not in m
    assert not (tmp_path / "s").exists()


def test_drift_status_per_column_and_label_escaping() -> None:
    record = {
        "run_id": "r1",
        "status": "warn",
        "rows": 10,
        "features": {"age": "age_years"},
        "drift_status": {"score": "fail", "age": "warn", "spend": "ok", "odd": "unknown"},
    }
    summary = RunSummary.of(JobSpec(model="m", source="src", sink='lake/"q"\\x\n'), record)
    path_text = render(summary, last_success=123.5)
    families = {f.name: f for f in text_string_to_metric_families(path_text)}
    drift = {s.labels["column"]: (s.value, s.labels["role"])
             for s in families["lakescore_drift_status"].samples}  # fmt: skip
    assert drift == {"score": (2, "score"), "age": (1, "feature"), "spend": (0, "score")}
    (sample,) = families["lakescore_run_rows_scored"].samples
    assert sample.labels["sink"] == 'lake/"q"\\x\n'  # escaped, and parsed back exactly
    assert families["lakescore_last_success_timestamp_seconds"].samples[0].value == 123.5
    assert families["lakescore_run_exit_code"].samples[0].value == 0  # warn is a success


def test_cli_metrics_file_flag(cli, model_file: Path, lake: Path, tmp_path: Path) -> None:
    proc = cli("score", "--model", model_file, "--source", lake, "--sink", "s",
               "--metrics-file", "m/job.prom", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert value(parse(tmp_path / "m" / "job.prom"), "lakescore_run_rows_scored") == 3000
