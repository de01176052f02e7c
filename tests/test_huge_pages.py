"""lakescore's own processes (the CLI, Ray actors) run without transparent huge pages:
first touches of fresh memory cost a fresh process 0.7-1.2 CPU s per 1M-row run with them
(cluster/huge_pages.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/status").exists()
    or "THP_enabled" not in Path("/proc/self/status").read_text(),
    reason="needs Linux's per-process THP_enabled status",
)

CHILD = textwrap.dedent(
    """
    import sys
    {call}
    status = open("/proc/self/status").read()
    print(status.split("THP_enabled:")[1].split()[0])
    """
)


def _thp_enabled_after(call: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "LAKESCORE_HUGE_PAGES"} | env
    done = subprocess.run(
        [sys.executable, "-c", CHILD.format(call=call)],
        env=environ, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.split()[-1]


def test_the_cli_turns_huge_pages_off_unless_the_user_keeps_them(tmp_path):
    # a command that fails on bad input still ran main()'s first line
    cli = f"from engine.cli import main; main(['inspect', {str(tmp_path / 'none.json')!r}])"
    assert _thp_enabled_after("pass") == "1"
    assert _thp_enabled_after(cli) == "0"
    assert _thp_enabled_after(cli, LAKESCORE_HUGE_PAGES="1") == "1"


def test_the_setting_reports_what_it_did():
    call = (
        "from cluster.huge_pages import disable_transparent_huge_pages as off; "
        "print(off(), file=sys.stderr)"
    )
    assert _thp_enabled_after(call) == "0"
    assert _thp_enabled_after(call, LAKESCORE_HUGE_PAGES="1") == "1"
