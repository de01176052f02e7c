"""A scoring process that finds its compiled code in the cache never imports Numba.

Numba's start-up (import, target registries, loading a cached function) cost about 0.9
CPU s in every CLI run and every new Ray actor; the kernels, the feature fill and the
profiling pass are cached objects loaded with llvmlite alone (:mod:`kernels.native`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from scoring_helpers import ID, read_sink

CHILD = textwrap.dedent(
    """
    import json, sys
    import engine
    model, lake, sink, id_column = sys.argv[1:]
    result = engine.score(model=model, source=lake, sink=sink, id_column=id_column, workers=2)
    print(json.dumps({"rows": result.rows_scored, "numba": "numba" in sys.modules}))
    """
)


@pytest.mark.slow
def test_a_warm_cache_scores_without_importing_numba(model_file: Path, lake: Path, tmp_path: Path):
    env = {**os.environ, "LAKESCORE_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("LAKESCORE_CACHE", None)
    runs = []
    for i in range(2):
        sink = tmp_path / f"sink{i}"
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(model_file), str(lake), str(sink), ID],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        runs.append(json.loads(done.stdout.splitlines()[-1]))
    rows = read_sink(tmp_path / "sink0").num_rows
    assert runs[0]["numba"] is True  # the first process compiled the kernel, fill and pass
    assert runs[1] == {"rows": rows, "numba": False}
    first, second = (read_sink(tmp_path / f"sink{i}") for i in range(2))
    assert first.drop_columns(["run_id"]).equals(second.drop_columns(["run_id"]))


def test_a_worker_imports_the_task_and_not_the_driver():
    """A Ray actor unpickles a ``WorkerFactory``: that imports the task's modules, not
    the coordinator's planning, quality judgement, report or sinks (``engine`` and
    ``engine.quality`` load their public names on first use), nor variants or
    ``pyarrow.compute`` (50 ms) where the job has none and every column is float32."""
    probe = textwrap.dedent(
        """
        import json, sys
        import engine
        light = "engine.coordinator" not in sys.modules
        import engine.worker_factory
        worker = sorted(m for m in ("engine.coordinator", "engine.report", "engine.api",
                                    "engine.delta_sink", "engine.quality.judge",
                                    "engine.quality.drift", "engine.variants",
                                    "pyarrow.compute") if m in sys.modules)
        from engine import score, JobSpec
        from engine.quality import judge_run, parse_drift
        print(json.dumps({"light": light, "worker": worker,
                          "api": score.__module__, "spec": JobSpec.__module__,
                          "quality": [judge_run.__module__, parse_drift.__module__]}))
        """
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout.splitlines()[-1]) == {
        "light": True, "worker": [], "api": "engine.api", "spec": "engine.spec",
        "quality": ["engine.quality.judge", "engine.quality.config"],
    }  # fmt: skip
