"""Progress of a run: a bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

log = logging.getLogger("lakescore.progress")


class Progress:
    """Counts scored rows; draws a tqdm bar when ``stream`` is a terminal."""

    def __init__(
        self,
        total_rows: int,
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
        log_every_s: float = 5.0,
    ) -> None:
        self.total = total_rows
        self.done = 0
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
                unit="rows",
                unit_scale=True,
                file=self._stream,
                desc="scoring",
                dynamic_ncols=True,
            )

    def update(self, rows: int) -> None:
        self.done += rows
        if self._bar is not None:
            self._bar.update(rows)
            return
        now = time.perf_counter()
        if self.enabled and (now - self._last_log >= self._log_every_s or self.done >= self.total):
            self._last_log = now
            rate = self.done / max(now - self._start, 1e-9)
            log.info("scored %d/%d rows (%.0f rows/s)", self.done, self.total, rate)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
