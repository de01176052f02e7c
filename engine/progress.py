"""Progress of a run: a bar on a terminal, plain log lines otherwise.

The bar spans every task of the run: a resumed run starts at the rows and tasks its
earlier attempt finished, and the bar's postfix counts tasks (and retries, if any).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

log = logging.getLogger("lakescore.progress")


class Progress:
    """Counts scored rows and tasks; draws a tqdm bar when ``stream`` is a terminal."""

    def __init__(
        self,
        total_rows: int,
        *,
        tasks: int = 0,
        done_rows: int = 0,
        done_tasks: int = 0,
        enabled: bool = True,
        stream: TextIO | None = None,
        log_every_s: float = 5.0,
    ) -> None:
        self.total = total_rows
        self.done = done_rows
        self.tasks = tasks
        self.tasks_done = done_tasks
        self.retried = 0
        self.enabled = enabled
        self._stream = stream or sys.stderr
        self._bar = None
        self._start = time.perf_counter()
        self._last_log = self._start
        self._log_every_s = log_every_s
        if enabled and self._stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(
                total=total_rows,
                initial=done_rows,
                unit="rows",
                unit_scale=True,
                file=self._stream,
                desc="scoring",
                dynamic_ncols=True,
            )
            self._bar.set_postfix_str(self._tasks_text(), refresh=False)

    def _tasks_text(self) -> str:
        text = f"tasks {self.tasks_done}/{self.tasks}" if self.tasks else ""
        return f"{text}, {self.retried} retried" if self.retried else text

    def update(self, rows: int, *, retried: int | None = None) -> None:
        """One more task done with ``rows`` rows; ``retried``: the run's retries so far."""
        self.done += rows
        self.tasks_done += 1
        if retried is not None:
            self.retried = retried
        if self._bar is not None:
            self._bar.set_postfix_str(self._tasks_text(), refresh=False)
            self._bar.update(rows)
            return
        now = time.perf_counter()
        if self.enabled and (now - self._last_log >= self._log_every_s or self.done >= self.total):
            self._last_log = now
            rate = self.done / max(now - self._start, 1e-9)
            tasks = f", {self._tasks_text()}" if self.tasks else ""
            log.info("scored %d/%d rows%s (%.0f rows/s)", self.done, self.total, tasks, rate)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
