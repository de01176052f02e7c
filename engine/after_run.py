"""The steps after every run, successful or not: the committed run's HTML report, the
metrics file, then the webhook.

The coordinator calls :func:`after_run` once at the end of ``run_job`` (so the Python API
gets them too). They come after the commit and must never change a run's outcome: each
step's failure is logged as a warning and swallowed.
"""

from __future__ import annotations

import logging
from typing import Any

from engine.metrics import write_metrics
from engine.notify import notify_config, payload, send
from engine.report import write_run_report
from engine.run_summary import RunSummary
from engine.spec import JobSpec
from engine.storage import Storage

log = logging.getLogger("lakescore.after_run")


def after_run(
    spec: JobSpec, record: dict[str, Any] | None, error: BaseException | None = None
) -> RunSummary | None:
    """Write the run's report (a committed run), ``spec.metrics_file``, and notify
    ``spec.notify`` about the run.

    ``record`` is the run record as far as the run got (None when it failed while
    planning) and ``error`` what it raised, if anything.
    """
    if error is None and record and record.get("run_id"):  # committed (ok, warn or fail)
        _write_report(spec, str(record["run_id"]))
    if not spec.metrics_file and not spec.notify:
        return None
    summary = RunSummary.of(spec, record, error)
    if spec.metrics_file:
        try:
            write_metrics(spec.metrics_file, summary)
        except Exception as exc:  # the run already happened: a metrics file cannot undo it
            log.warning("metrics file %s not written: %s", spec.metrics_file, exc,
                        extra={"event": "metrics_failed", "run_id": summary.run_id})  # fmt: skip
    try:
        config = notify_config(spec.notify)  # checked when the spec was made
        if config is not None and config.wants(summary.status):
            send(config, payload(summary, config))
    except Exception as exc:  # send() never raises; this guards the payload's own bugs
        log.warning("notification not sent: %s", exc, extra={"run_id": summary.run_id})
    return summary


def _write_report(spec: JobSpec, run_id: str) -> None:
    """``<sink>/_lakescore/reports/<run_id>.html``; a report that cannot be drawn is a
    warning, never a failed run."""
    try:
        write_run_report(spec.sink, run_id, Storage.of(spec.storage))
    except Exception as exc:
        log.warning("report of run %s not written: %s", run_id, exc,
                    extra={"event": "report_failed", "run_id": run_id})  # fmt: skip
