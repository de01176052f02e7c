"""What the after-run steps (metrics, webhook) know of a run: its record, or its error.

Built from the run record when the run got one, so every step reads the same figures the
record holds; the record's quality keys (``checks``, ``drift_status``) may be absent.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

from engine.errors import LakescoreError, QualityCheckError
from engine.spec import JobSpec

#: Every status a run can end with (see the run record contract in DESIGN/README).
STATUSES = ("ok", "warn", "fail", "failed")
#: The statuses that count as a successful run (scores committed, nothing failed).
SUCCESS = ("ok", "warn")

_EXIT_CODES = {"ok": 0, "warn": 0, "fail": 1, "failed": 3}


@dataclass(frozen=True)
class RunSummary:
    """One run's outcome, as much of it as is known (a run that failed while planning has
    no run id and no rows)."""

    status: str
    exit_code: int
    run_id: str | None
    sink: str
    source: str
    model: str
    rows: int = 0
    seconds: float = 0.0
    rows_per_second: float = 0.0
    tasks: int = 0
    tasks_resumed: int = 0
    tasks_retried: int = 0
    tasks_failed: int = 0
    finished_at: float = field(default_factory=time.time)  # epoch seconds
    host: str | None = None
    error: str | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)
    drift_status: dict[str, str] = field(default_factory=dict)
    features: dict[str, str] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.status in SUCCESS

    @property
    def report(self) -> str:
        """A committed run's own report (written by the run, see :mod:`engine.report`);
        for a run that committed nothing, the folder of the sink's run reports."""
        reports = self.sink.rstrip("/") + "/_lakescore/reports/"
        committed = self.error is None and self.status in ("ok", "warn", "fail")
        return f"{reports}{self.run_id}.html" if committed and self.run_id else reports

    @classmethod
    def of(
        cls, spec: JobSpec, record: dict[str, Any] | None, error: BaseException | None = None
    ) -> RunSummary:
        record = record or {}
        status = str(record.get("status") or "")
        if error is not None and status in ("", "ok"):
            # The run raised after (or before) its record said otherwise.
            status = "fail" if isinstance(error, QualityCheckError) else "failed"
        if status not in STATUSES:
            status = "failed" if error is not None else "ok"
        if isinstance(error, LakescoreError):
            exit_code = error.exit_code
        else:
            exit_code = _EXIT_CODES[status] if error is None else 3
        message = record.get("error")
        executor_stats = record.get("executor_stats") or {}
        if error is not None:
            message = " ".join(str(error).split()) or type(error).__name__
        return cls(
            status=status,
            exit_code=exit_code,
            run_id=record.get("run_id"),
            sink=str(record.get("sink") or spec.sink),
            source=str(record.get("source") or spec.source),
            model=str(record.get("model") or spec.model),
            rows=int(record.get("rows") or 0),
            seconds=float(record.get("seconds") or 0.0),
            rows_per_second=float(record.get("rows_per_second") or 0.0),
            tasks=int(record.get("tasks") or 0),
            tasks_resumed=int(record.get("tasks_resumed") or 0),
            tasks_retried=int(executor_stats.get("tasks_retried") or 0),
            tasks_failed=int(executor_stats.get("tasks_failed") or 0),
            finished_at=_epoch(record.get("finished_at")),
            host=record.get("host"),
            error=message,
            checks=[c for c in record.get("checks") or [] if isinstance(c, dict)],
            drift_status={str(k): str(v) for k, v in (record.get("drift_status") or {}).items()},
            features=dict(record.get("features") or {}),
        )


def _epoch(iso: object) -> float:
    if isinstance(iso, str):
        try:
            return dt.datetime.fromisoformat(iso).timestamp()
        except ValueError:
            pass
    return time.time()
