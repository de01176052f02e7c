"""Prometheus text-format metrics of the last run, for node_exporter's textfile collector.

The file is replaced atomically (written aside, then renamed: the collector reads the old
file or the new one, never half of one; its temporary name starts with a dot and does not
end in ``.prom``, so the collector skips it). Every series is a gauge labelled with the
sink, so several jobs' files can sit in one collector directory.

``lakescore_last_success_timestamp_seconds`` is carried over from the previous file when
this run did not succeed: an alert on "no success for 26 hours" keeps counting from the
last good night, not from the failure.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from engine._fsutil import atomic_write_bytes
from engine.run_summary import STATUSES, RunSummary

log = logging.getLogger("lakescore.metrics")

LAST_SUCCESS = "lakescore_last_success_timestamp_seconds"
#: Drift status as a number, so alerts can say ``> 0`` (warn) or ``>= 2`` (fail).
DRIFT_LEVELS = {"ok": 0, "warn": 1, "fail": 2}


def write_metrics(path: str | Path, summary: RunSummary) -> None:
    """Replace ``path`` with the metrics of ``summary``."""
    path = Path(path)
    previous = read_last_success(path)
    last_success = summary.finished_at if summary.succeeded else previous
    atomic_write_bytes(path, render(summary, last_success).encode())
    log.debug("wrote metrics of run %s to %s", summary.run_id, path)


def read_last_success(path: Path) -> float | None:
    """The last success timestamp in a metrics file this module wrote, if any."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    for line in text.splitlines():
        if line.startswith(LAST_SUCCESS + "{") or line.startswith(LAST_SUCCESS + " "):
            try:
                value = float(line.rsplit(" ", 1)[1])
            except (IndexError, ValueError):
                return None
            return value if math.isfinite(value) else None
    return None


def render(summary: RunSummary, last_success: float | None) -> str:
    out = _Writer({"sink": summary.sink})
    out.gauge("lakescore_run_rows_scored", "Rows scored by the last run.", summary.rows)
    out.gauge("lakescore_run_duration_seconds", "Duration of the last run.", summary.seconds)
    out.gauge("lakescore_run_rows_per_second", "Rows per second of the last run.",
              summary.rows_per_second)  # fmt: skip
    out.gauge("lakescore_run_tasks", "Tasks planned by the last run.", summary.tasks)
    out.gauge("lakescore_run_tasks_resumed", "Tasks a resumed run found already done.",
              summary.tasks_resumed)  # fmt: skip
    out.gauge("lakescore_run_tasks_retried", "Task retries after a lost worker.",
              summary.tasks_retried)  # fmt: skip
    out.gauge("lakescore_run_tasks_failed", "Tasks that failed.", summary.tasks_failed)
    out.family("lakescore_run_status", "1 for the last run's status (ok, warn, fail, failed).")
    for status in STATUSES:
        out.sample("lakescore_run_status", int(status == summary.status), status=status)
    out.gauge("lakescore_run_exit_code", "The CLI exit code of the last run.", summary.exit_code)
    out.gauge("lakescore_run_timestamp_seconds", "When the last run ended (Unix time).",
              summary.finished_at)  # fmt: skip
    out.family("lakescore_run_info", "The last run's id (always 1).")
    out.sample("lakescore_run_info", 1, run_id=summary.run_id or "")
    if last_success is not None:
        out.gauge(LAST_SUCCESS, "When a run last succeeded (Unix time).", last_success)
    if summary.drift_status:
        out.family("lakescore_drift_status", "Drift status per column: 0 ok, 1 warn, 2 fail.")
        features = set(summary.features) | set(summary.features.values())
        for column, status in sorted(summary.drift_status.items()):
            if status in DRIFT_LEVELS:
                role = "feature" if column in features else "score"
                out.sample("lakescore_drift_status", DRIFT_LEVELS[status], column=column, role=role)
    return out.text()


class _Writer:
    """The exposition format: ``# HELP``/``# TYPE`` once per family, then its samples."""

    def __init__(self, labels: dict[str, str]) -> None:
        self._labels = labels
        self._lines: list[str] = []

    def family(self, name: str, help_text: str) -> None:
        self._lines.append(f"# HELP {name} {_escape_help(help_text)}")
        self._lines.append(f"# TYPE {name} gauge")

    def sample(self, name: str, value: float, **labels: str) -> None:
        pairs = {**self._labels, **labels}
        rendered = ",".join(f'{k}="{_escape_label(v)}"' for k, v in pairs.items())
        self._lines.append(f"{name}{{{rendered}}} {_number(value)}")

    def gauge(self, name: str, help_text: str, value: float) -> None:
        self.family(name, help_text)
        self.sample(name, value)

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))
