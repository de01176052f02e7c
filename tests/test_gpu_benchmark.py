"""``benchmarks/gpu.py`` runs every step in Numba's CUDA simulator, as the README says.

The GPU machine's run is one call; this keeps the script from rotting between GPU sessions:
the exact simulator command of its docstring, in a child process (Numba reads
``NUMBA_ENABLE_CUDASIM`` once, at import), then the report's structure. The agreement it
checks (every CUDA path against the CPU backend) must pass: the exit status says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_benchmark_runs_in_the_simulator(tmp_path: Path) -> None:
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "PYTHONPATH": str(REPO)}
    env.pop("OUT", None)
    report_path = tmp_path / "gpu.json"
    command = [sys.executable, "-W", "ignore", str(REPO / "benchmarks" / "gpu.py")]
    command += ["--rows", "300", "--check-rows", "200", "--trees", "6", "--depth", "4"]
    command += ["--repeats", "1"]  # small: the simulator runs each GPU thread in Python
    proc = subprocess.run(
        [*command, "--json", str(report_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "not throughput" in proc.stdout  # simulator timings are labelled as such
    report = json.loads(report_path.read_text())
    assert report["machine"]["gpu"] == "CUDA simulator"
    agreement = report["agreement"]
    assert {name: r["traversal"] for name, r in agreement.items()} == {
        "reference": "perfect",
        "reference_walk": "walk",
        "softmax_3": "perfect",
        "argmax_3": "perfect",
        "exp_scaled": "perfect",
        "neg_inf_thresholds": "perfect",
        "categorical_zero_band": "walk",
    }
    for name, r in agreement.items():
        assert r["ok"] and r["max_abs_diff"] <= 1e-6 and r["unwritten_margins"] == 0, name
    (row,) = report["throughput"]
    assert row["rows"] == 300
    assert all(row[k] > 0 for k in row if k.endswith("_rows_per_s"))
    split = report["split"]
    assert split["rows"] == 300
    assert set(split["seconds"]) == {
        "stage_to_pinned", "h2d", "kernel", "link", "d2h_pred_f32", "d2h_margin_f64",
    }  # fmt: skip
