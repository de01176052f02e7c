"""Transparent huge pages off in lakescore's own processes (the CLI, Ray actors).

numpy and Arrow's allocator (mimalloc) ask the OS for transparent huge pages on large
allocations, and the OS then zeroes (and, when memory is fragmented, compacts) 2 MiB at
every first touch. In a fresh process every batch buffer is a first touch: on the
reference job (1M rows x 50 features, 2 workers, 2-core VM) the first run in a process
took 3.5-4.2 s against 2.8-3.0 s with huge pages off, Parquet decoding 0.9-1.2 CPU s
against 0.4 (``perf``: 14% of the process in ``clear_page_erms`` under
``do_huge_pmd_anonymous_page``). Warm runs and the kernel alone showed no difference
beyond the machine's noise. A CLI run and a new Ray actor are always fresh processes.

Only processes lakescore owns turn them off: ``import engine`` in a user's process leaves
the process's memory policy alone (call :func:`disable_transparent_huge_pages` there if
its runs are short-lived). ``LAKESCORE_HUGE_PAGES=1`` keeps them. The setting (Linux's
``PR_SET_THP_DISABLE``) is inherited by child processes, so a local Ray that the CLI
starts runs without them too.
"""

from __future__ import annotations

import ctypes
import os
import sys

KEEP_VARIABLE = "LAKESCORE_HUGE_PAGES"
_PR_SET_THP_DISABLE = 41


def disable_transparent_huge_pages() -> bool:
    """Turn transparent huge pages off for this process's new memory; False when the
    user keeps them (``LAKESCORE_HUGE_PAGES=1``) or the OS has no such setting."""
    if os.environ.get(KEEP_VARIABLE, "0") not in ("0", ""):
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def process_env() -> dict[str, str]:
    """The user's choice, for a worker process started elsewhere (a Ray actor)."""
    return {KEEP_VARIABLE: os.environ[KEEP_VARIABLE]} if KEEP_VARIABLE in os.environ else {}
