"""Long runs show a progress bar on a terminal and plain log lines otherwise."""

from __future__ import annotations

import io
import logging

from engine.progress import Progress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_gets_a_bar_and_no_log_lines(caplog):
    stream = FakeTerminal()
    with caplog.at_level(logging.INFO, logger="lakescore.progress"):
        bar = Progress(1000, stream=stream, log_every_s=0.0)
        bar.update(400)
        bar.update(600)
        bar.close()
    drawn = stream.getvalue()
    assert "scoring" in drawn and "1.00k/1.00k" in drawn
    assert caplog.records == []


def test_pipe_gets_log_lines_and_no_bar(caplog):
    stream = io.StringIO()
    with caplog.at_level(logging.INFO, logger="lakescore.progress"):
        bar = Progress(1000, stream=stream, log_every_s=0.0)
        bar.update(400)
        bar.update(600)
        bar.close()
    assert stream.getvalue() == ""
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("scored 400/1000 rows")
    assert messages[-1].startswith("scored 1000/1000 rows")


def test_disabled_progress_is_silent(caplog):
    stream = FakeTerminal()
    with caplog.at_level(logging.INFO, logger="lakescore.progress"):
        bar = Progress(10, enabled=False, stream=stream, log_every_s=0.0)
        bar.update(10)
        bar.close()
    assert stream.getvalue() == "" and caplog.records == []


def test_the_bar_spans_every_task_of_a_resumed_run(caplog):
    stream = FakeTerminal()
    bar = Progress(1000, tasks=4, done_rows=500, done_tasks=2, stream=stream)
    bar.update(250)
    bar.update(250, retried=1)
    bar.close()
    drawn = stream.getvalue()
    assert "tasks 4/4, 1 retried" in drawn and "1.00k/1.00k" in drawn

    with caplog.at_level(logging.INFO, logger="lakescore.progress"):
        bar = Progress(1000, tasks=4, done_rows=500, done_tasks=2, stream=io.StringIO(),
                       log_every_s=0.0)  # fmt: skip
        bar.update(250)
    assert caplog.records[-1].getMessage().startswith("scored 750/1000 rows, tasks 3/4")
