"""The steps after every run, successful or not: the metrics file, then the webhook.

The coordinator calls :func:`after_run` once at the end of ``run_job`` (so the Python API
gets them too). They come after the commit and must never change a run's outcome: each
step's failure is logged as a warning and swallowed.
"""

from __future__ import annotations

import logging
from typing import Any

from engine.metrics import write_metrics
from engine.notify import notify_config, payload, send
from engine.run_summary import RunSummary
from engine.spec import JobSpec

log = logging.getLogger("lakescore.after_run")


def after_run(
    spec: JobSpec, record: dict[str, Any] | None, error: BaseException | None = None
) -> RunSummary | None:
    """Write ``spec.metrics_file`` and notify ``spec.notify`` about the run.

    ``record`` is the run record as far as the run got (None when it failed while
    planning) and ``error`` what it raised, if anything.
    """
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
