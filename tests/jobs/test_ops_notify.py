"""Alerts: a run that ends with a listed status POSTs a JSON summary to the job's webhook.

The webhook is a real HTTP server on 127.0.0.1 in a thread of the test. A webhook that is
down or slow delays the run by at most its timeout and changes nothing of its outcome.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from scoring_helpers import ID, run_ids, run_record

import engine.task
from engine import BadInputError, ExecutionError, JobSpec, load_job_file, score
from engine.notify import NotifyConfig, notify_config, payload
from engine.run_summary import RunSummary


class Webhook:
    """Records every POST; answers with the queued status codes (200 when none), after
    waiting for ``release`` when ``hold`` is set."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self.codes: list[int] = []
        self.hold = False
        self.release = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                hook.bodies.append(json.loads(self.rfile.read(length)))
                hook.headers.append(dict(self.headers))
                if hook.hold:
                    hook.release.wait(10)
                code = hook.codes.pop(0) if hook.codes else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:  # keep the test output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/T0/secret-token"

    def __enter__(self) -> Webhook:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    with Webhook() as hook:
        yield hook


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"  # nothing listens there any more


@pytest.fixture
def failing_tasks(monkeypatch) -> None:
    def broken(self, task):
        raise OSError("disk on fire")

    monkeypatch.setattr(engine.task.ScoringWorker, "__call__", broken)


def test_an_execution_failure_posts_its_summary(
    webhook: Webhook, failing_tasks: None, model_file: Path, lake: Path, tmp_path: Path
) -> None:
    sink = tmp_path / "scores"
    with pytest.raises(ExecutionError, match="disk on fire"):
        score(model_file, lake, sink, id_column=ID, workers=1,
              notify={"webhook": webhook.url, "on": ["fail"]})  # fmt: skip
    (body,) = webhook.bodies
    (run_id,) = (sink / "_lakescore" / "staging").iterdir()
    assert body["run_id"] == run_id.name
    assert run_record(sink, run_id.name)["status"] == body["status"] == "failed"
    assert body["exit_code"] == 3
    assert "disk on fire" in body["error"] and "disk on fire" in body["text"]
    assert body["failed_checks"] == []
    assert body["rows"] == 0 and body["tasks_failed"] == 1
    assert body["sink"] == str(sink) and body["model"] == str(model_file)
    assert body["report"] == f"{sink}/_lakescore/reports/"  # no report of a failed run
    assert webhook.headers[0]["Content-Type"] == "application/json"


def test_a_job_file_notifies_on_bad_input_too(cli, webhook: Webhook, model_file: Path,
                                              lake: Path, tmp_path: Path) -> None:  # fmt: skip
    """The nightly job whose source lost a column: exit 2 and the webhook hears of it."""
    job = tmp_path / "job.toml"
    job.write_text(
        f'model = "{model_file}"\nsource = "{lake}"\nsink = "scores"\nid_column = "gone"\n'
        f'[notify]\nwebhook = "{webhook.url}"\nreport_url = "https://r.example/{{run_id}}"\n'
    )
    proc = cli("run", job)
    assert proc.returncode == 2, proc.stderr
    (body,) = webhook.bodies
    assert (body["status"], body["exit_code"], body["run_id"]) == ("failed", 2, None)
    assert "'gone'" in body["error"]
    assert body["report"] == "https://r.example/"
    assert not (tmp_path / "scores").exists()


def test_no_post_for_statuses_not_listed(webhook: Webhook, model_file: Path, lake: Path,
                                         tmp_path: Path) -> None:  # fmt: skip
    score(model_file, lake, tmp_path / "a", notify={"webhook": webhook.url})  # on: ["fail"]
    assert webhook.bodies == []
    result = score(model_file, lake, tmp_path / "b", notify={"webhook": webhook.url, "on": ["ok"]})
    (body,) = webhook.bodies
    assert (body["run_id"], body["status"], body["rows"]) == (result.run_id, "ok", 3000)


def test_a_webhook_that_is_down_loses_nothing(
    model_file: Path, lake: Path, tmp_path: Path, caplog
) -> None:
    sink = tmp_path / "scores"
    with caplog.at_level(logging.WARNING, logger="lakescore.notify"):
        result = score(model_file, lake, sink, id_column=ID,
                       notify={"webhook": closed_port_url(), "on": ["ok"],
                               "timeout_seconds": 2})  # fmt: skip
    assert result.status == "ok" and result.rows_scored == 3000
    assert run_ids(sink) == {result.run_id}
    (warning,) = [r for r in caplog.records if r.name == "lakescore.notify"]
    assert "the run is unaffected" in warning.getMessage()
    assert "Connection" in warning.getMessage() or "refused" in warning.getMessage()


def test_a_slow_webhook_delays_the_run_by_its_timeout_only(
    webhook: Webhook, model_file: Path, lake: Path, tmp_path: Path, caplog
) -> None:
    webhook.hold = True  # answers only when the test ends (or after 10 s)
    config = {"webhook": webhook.url, "on": ["ok"], "timeout_seconds": 0.5}
    with caplog.at_level(logging.WARNING, logger="lakescore.notify"):
        begun = time.monotonic()
        result = score(model_file, lake, tmp_path / "s", notify=config)
        after_scoring = time.monotonic() - begun
    assert result.status == "ok"
    assert len(webhook.bodies) == 1  # it was asked once: a timeout spends the budget
    # Functional, not a benchmark: the run did not wait for the 10 s answer.
    assert after_scoring < 8
    (warning,) = [r for r in caplog.records if r.name == "lakescore.notify"]
    assert "no answer within 0.5 s" in warning.getMessage()
    assert "secret-token" not in warning.getMessage()  # webhook paths hold secrets


def test_one_retry_after_a_server_error(webhook: Webhook) -> None:
    from engine.notify import send

    webhook.codes = [503, 200]
    assert send(NotifyConfig(webhook=webhook.url, timeout_seconds=5), {"run_id": "r"})
    assert len(webhook.bodies) == 2
    webhook.codes = [503, 503, 200]
    assert not send(NotifyConfig(webhook=webhook.url, timeout_seconds=5), {"run_id": "r"})
    assert len(webhook.bodies) == 4  # two more, never a third try
    webhook.codes = [400]
    assert not send(NotifyConfig(webhook=webhook.url, timeout_seconds=5), {"run_id": "r"})
    assert len(webhook.bodies) == 5  # a refused body is not sent again


def test_quality_statuses_from_the_record() -> None:
    """warn/fail come from the record's status; failed checks from its ``checks``."""
    spec = JobSpec(model="m", source="src", sink="s")
    record = {
        "run_id": "r9",
        "status": "fail",
        "rows": 5,
        "checks": [
            {"name": "min_rows", "status": "ok", "detail": "5 >= 1"},
            {"name": "psi:age", "status": "fail", "detail": "PSI 0.4 > 0.25"},
            {"name": "nan_scores", "status": "warn", "detail": "2%"},
        ],
    }
    config = notify_config({"webhook": "http://h/x", "on": ["fail", "warn"]})
    summary = RunSummary.of(spec, record)
    assert summary.exit_code == 1 and config.wants("fail") and config.wants("warn")
    body = payload(summary, config)
    assert [c["name"] for c in body["failed_checks"]] == ["psi:age", "nan_scores"]
    assert "psi:age fail" in body["text"]
    assert not notify_config({"webhook": "http://h/x"}).wants("warn")
    assert notify_config({"webhook": "http://h/x"}).wants("failed")


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ({"webhook": "ftp://h/x"}, "notify.webhook"),
        ({"webhook": "http://h:port/x"}, "notify.webhook"),
        ({"webhook": "http://h/x", "on": ["fial"]}, "notify.on"),
        ({"webhook": "http://h/x", "timeout_seconds": 0}, "notify.timeout_seconds"),
        ({"webhook": "http://h/x", "retries": 3}, "'retries'"),
        ({"on": ["fail"]}, "notify.webhook"),
    ],
)
def test_a_bad_notify_table_names_the_key(table: dict, named: str, tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match=named.replace(".", r"\.")):
        JobSpec(model="m", source="s", sink="o", notify=table)
    job = tmp_path / "job.toml"
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in table.items())
    job.write_text(f'model = "m"\nsource = "s"\nsink = "o"\n[notify]\n{lines}\n')
    with pytest.raises(BadInputError, match=str(job)):
        load_job_file(job)
