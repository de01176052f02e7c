"""Alerts: POST a JSON summary of a run to a webhook, from the job spec's ``[notify]``::

    [notify]
    webhook = "https://hooks.example.com/services/T000/B000/XXXX"
    on = ["fail", "warn"]          # default ["fail"]; "fail" covers execution failures too
    timeout_seconds = 5            # the most a webhook can delay the run, retry included
    report_url = "https://lake.example.com/scores/_lakescore/reports/{run_id}.html"

The notification is sent after the run is committed (or has failed), so it can only be
late, never lose anything: a webhook that is down, slow or refusing is logged as a
warning and the run's outcome stands. One retry at most, after a quick failure
(connection refused, a 5xx answer), within the same ``timeout_seconds``. The body has a
``text`` line too, which Slack-style incoming webhooks display as it is.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from engine.errors import BadInputError
from engine.run_summary import RunSummary

log = logging.getLogger("lakescore.notify")

#: What ``on`` may name; ``fail`` covers ``failed`` (execution failures) too.
NOTIFY_ON = ("ok", "warn", "fail")
_KEYS = ("webhook", "on", "timeout_seconds", "report_url")
_MAX_TIMEOUT = 60.0
_RETRY_PAUSE = 0.2
_TIMED_OUT = "timed out"


@dataclass(frozen=True)
class NotifyConfig:
    webhook: str
    on: tuple[str, ...] = ("fail",)
    timeout_seconds: float = 5.0
    report_url: str | None = None

    def wants(self, status: str) -> bool:
        return ("fail" if status == "failed" else status) in self.on


def notify_config(doc: dict[str, Any] | None) -> NotifyConfig | None:
    """Validate a ``[notify]`` table; every error names the key at fault."""
    if not doc:
        return None
    unknown = sorted(set(doc) - set(_KEYS))
    if unknown:
        raise BadInputError(f"notify: unknown key {unknown[0]!r} (expected {', '.join(_KEYS)})")
    webhook = doc.get("webhook")
    if not isinstance(webhook, str) or urllib.parse.urlsplit(webhook).scheme not in (
        "http",
        "https",
    ):
        raise BadInputError(f"notify.webhook: expected an http(s) URL, got {webhook!r}")
    try:
        parts = urllib.parse.urlsplit(webhook)
        _ = parts.port  # raises on a port that is not a number
    except ValueError as exc:
        raise BadInputError(f"notify.webhook: {exc}") from None
    if not parts.hostname:
        raise BadInputError("notify.webhook: the URL names no host")
    on = doc.get("on", ["fail"])
    if not isinstance(on, list | tuple) or not on or any(s not in NOTIFY_ON for s in on):
        raise BadInputError(f"notify.on: expected a list of {', '.join(NOTIFY_ON)}, got {on!r}")
    timeout = doc.get("timeout_seconds", 5.0)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 < timeout <= _MAX_TIMEOUT
    ):
        raise BadInputError(
            f"notify.timeout_seconds: expected a number of seconds in (0, {_MAX_TIMEOUT:g}], "
            f"got {timeout!r}"
        )
    report_url = doc.get("report_url")
    if report_url is not None and not isinstance(report_url, str):
        raise BadInputError(f"notify.report_url: expected a string, got {report_url!r}")
    return NotifyConfig(
        webhook=webhook, on=tuple(on), timeout_seconds=float(timeout), report_url=report_url
    )


def payload(summary: RunSummary, config: NotifyConfig) -> dict[str, Any]:
    """The JSON body: what a person needs to act on the run, and where to look."""
    report = summary.report
    if config.report_url:
        report = config.report_url.replace("{run_id}", summary.run_id or "")
    failed_checks = [c for c in summary.checks if c.get("status") in ("fail", "warn")]
    run = summary.run_id or "(not started)"
    text = f"lakescore run {run}: {summary.status}, {summary.rows:,} rows, sink {summary.sink}"
    if failed_checks:
        text += "; checks: " + ", ".join(
            f"{c.get('name')} {c.get('status')}" for c in failed_checks
        )
    if summary.error:
        text += f"; error: {summary.error}"
    return {
        "text": text,
        "run_id": summary.run_id,
        "status": summary.status,
        "exit_code": summary.exit_code,
        "error": summary.error,
        "failed_checks": failed_checks,
        "rows": summary.rows,
        "seconds": summary.seconds,
        "tasks": summary.tasks,
        "tasks_failed": summary.tasks_failed,
        "sink": summary.sink,
        "source": summary.source,
        "model": summary.model,
        "host": summary.host,
        "report": report,
    }


def send(config: NotifyConfig, body: dict[str, Any]) -> bool:
    """POST ``body``; True when the webhook answered 2xx. Never raises, and returns within
    ``timeout_seconds`` whatever the network does (DNS included: the request runs in a
    daemon thread that is abandoned when the time is up)."""
    data = json.dumps(body, default=str).encode()
    deadline = time.monotonic() + config.timeout_seconds
    outcome: dict[str, str] = {}
    worker = threading.Thread(
        target=_post, args=(config.webhook, data, deadline, outcome), name="lakescore-notify",
        daemon=True,
    )  # fmt: skip
    worker.start()
    worker.join(config.timeout_seconds)
    where = _redact(config.webhook)
    fields = {"event": "notify", "run_id": body.get("run_id"), "webhook": where}
    if worker.is_alive() or outcome.get("error") == _TIMED_OUT:
        outcome["error"] = f"no answer within {config.timeout_seconds:g} s"
    if "error" in outcome:
        log.warning("webhook %s: %s; the run is unaffected", where, outcome["error"],
                    extra={**fields, "ok": False})  # fmt: skip
        return False
    log.info("notified %s of run %s (%s)", where, body.get("run_id"), body.get("status"),
             extra={**fields, "ok": True})  # fmt: skip
    return True


def _post(url: str, data: bytes, deadline: float, outcome: dict[str, str]) -> None:
    for attempt in (1, 2):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        request = urllib.request.Request(
            url,
            data=data,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "lakescore"},
        )
        try:
            with urllib.request.urlopen(request, timeout=remaining) as response:
                response.read(65_536)
            outcome.pop("error", None)
            return
        except urllib.error.HTTPError as exc:
            outcome["error"] = f"HTTP {exc.code} {exc.reason}"
            if exc.code < 500:  # the webhook refused this body: sending it again cannot help
                return
        except (OSError, ValueError) as exc:  # URLError, refused, reset, timed out
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError):  # the budget is spent
                outcome["error"] = _TIMED_OUT
                return
            outcome["error"] = f"{type(reason).__name__}: {reason}"
        if attempt == 1:
            time.sleep(min(_RETRY_PAUSE, max(deadline - time.monotonic(), 0)))


def _redact(url: str) -> str:
    """scheme://host:port only: webhook paths and queries often hold the secret token."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}"
