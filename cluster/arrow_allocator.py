"""Keep Arrow's freed pages for the next batch: configured before pyarrow loads.

Arrow allocates through mimalloc, which hands freed pages back to the OS 10 ms after they
are freed (``MIMALLOC_PURGE_DELAY``). A scoring task frees one batch's decoded columns
every few hundred milliseconds and at once allocates the next batch's, so with that
default every batch faulted its memory back in, zeroed by the OS kernel in 2 MiB huge
pages: on the reference job (1M rows x 50 features, 2 workers) about 30,000 page faults
per run and 7% of the run's CPU in ``clear_page`` (perf), against about 2,000 faults with
a 10 s delay. Freed pages are still returned once a process has been idle that long.

mimalloc reads the variable when pyarrow's library loads, so ``engine``'s first import
sets it; a value the user set wins, and in a process that loaded pyarrow before
``engine`` it is too late and nothing changes. Ray actors set it themselves before they
import pyarrow (``cluster.ray_executor``).
"""

from __future__ import annotations

import os
import sys

PURGE_DELAY_VARIABLE = "MIMALLOC_PURGE_DELAY"
PURGE_DELAY_MS = "10000"


def allocator_env() -> dict[str, str]:
    """The variable for a process that has not loaded pyarrow yet (the user's value wins)."""
    return {PURGE_DELAY_VARIABLE: os.environ.get(PURGE_DELAY_VARIABLE, PURGE_DELAY_MS)}


def keep_freed_pages() -> bool:
    """Set the purge delay for this process; False when pyarrow loaded first (too late)."""
    if "pyarrow.lib" in sys.modules:
        return False
    os.environ.update(allocator_env())
    return True
