"""How the command line talks: log lines on stderr, as text for people or JSON for machines.

Only the CLI configures logging, and only the ``lakescore`` logger (never the root
logger, which belongs to whoever embeds lakescore). Library code logs events with
``extra={...}`` fields (``run_id``, ``task_id``, ``stage``, ``rows``, ``seconds``,
``node``); the JSON format writes them as keys of the line's object.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any, TextIO

LOG_FORMATS = ("text", "json")

#: Per-task events: one line per task is too many for a person reading a terminal
#: (a bar or progress lines say the same), but what a log pipeline wants.
TASK_LOGGER = "lakescore.tasks"

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, then the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and not key.startswith("_") and key not in doc:
                doc[key] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        # default=str: an event field that JSON cannot hold (a Path) is written as text
        # rather than losing the whole line.
        return json.dumps(doc, default=str, ensure_ascii=False)


def setup_logging(
    *,
    log_format: str = "text",
    verbose: bool = False,
    quiet: bool = False,
    stream: TextIO | None = None,
) -> None:
    """Send the ``lakescore`` logger's records to ``stream`` (stderr) in ``log_format``."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(stream or sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("lakescore")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    # Text is read by people: per-task lines only with -v. JSON keeps them (level NOTSET
    # inherits the lakescore logger's level).
    tasks_level = logging.NOTSET if log_format == "json" or verbose else logging.WARNING
    logging.getLogger(TASK_LOGGER).setLevel(tasks_level)
