"""Arrow's allocator keeps freed pages for the next batch (cluster.arrow_allocator).

It acts when pyarrow's library loads, so each case runs in a fresh interpreter.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cluster.arrow_allocator import PURGE_DELAY_MS, PURGE_DELAY_VARIABLE

PROBE = (
    "import os, sys\n"
    "{before}\n"
    "import engine, pyarrow\n"
    "print(os.environ.get({variable!r}, 'unset'))\n"
)


def run_probe(before: str = "", env_value: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k != PURGE_DELAY_VARIABLE}
    if env_value is not None:
        env[PURGE_DELAY_VARIABLE] = env_value
    code = PROBE.format(before=before, variable=PURGE_DELAY_VARIABLE)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_importing_engine_first_sets_the_purge_delay() -> None:
    assert run_probe() == PURGE_DELAY_MS


def test_a_value_the_user_set_wins() -> None:
    assert run_probe(env_value="250") == "250"


@pytest.mark.parametrize("before", ["import pyarrow", "import pyarrow.parquet"])
def test_too_late_once_pyarrow_loaded_nothing_changes(before: str) -> None:
    assert run_probe(before=before) == "unset"


def test_the_delay_keeps_a_batch_loops_pages() -> None:
    """The effect itself: decoding batches in turn (each freed before the next) faults
    far fewer pages in with the delay than with mimalloc's default (10 ms)."""
    code = (
        "import resource, time\n"
        "import engine\n"
        "import numpy as np, pyarrow as pa, pyarrow.compute as pc\n"
        "base = pa.array(np.ones(262_144, np.float32))\n"
        "def faults():\n"
        "    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "f0 = faults()\n"
        "for i in range(40):\n"
        "    batch = [pc.multiply(base, i) for _ in range(20)]  # Arrow allocates them\n"
        "    time.sleep(0.02)  # longer than the default delay: its pages are purged\n"
        "    del batch\n"
        "print(faults() - f0)\n"
    )
    faults = {}
    for value in ("10", PURGE_DELAY_MS):
        env = {**os.environ, PURGE_DELAY_VARIABLE: value}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        faults[value] = int(out.stdout.strip())
    assert faults[PURGE_DELAY_MS] * 3 < faults["10"], faults
