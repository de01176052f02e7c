"""The CUDA backend agrees with XGBoost and with the CPU kernel, in Numba's CUDA simulator.

Numba reads ``NUMBA_ENABLE_CUDASIM`` once, when it is first imported, so the simulated half
runs in a child process started with it set: the child (this file run as a script) compiles
each saved model with ``backend="cuda"`` and saves its margins; the tests compare them here
with ``xgboost.Booster.inplace_predict`` and the ``numba`` backend. The simulator runs each
GPU thread as a Python thread, so models and batches stay small.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kernels import BackendUnavailableError, Forest, compile_model, load_model
from kernels._numba_cpu import CpuLauncher
from kernels.kernel import apply_link

REPO = Path(__file__).resolve().parents[1]

#: name -> (XGBoost params, boosting rounds)
MODELS: dict[str, tuple[dict[str, Any], int]] = {
    "binary": ({"objective": "binary:logistic", "max_depth": 4}, 10),
    "regression": ({"objective": "reg:squarederror", "max_depth": 3, "base_score": 0.3}, 8),
}
#: name -> CudaLauncher keywords: rows staged in shared memory (the default), rows read
#: from global memory, and batches split into 5 chunks (a short last one) over both streams.
VARIANTS: dict[str, dict[str, Any]] = {
    "shared": {},
    "global": {"rows_in_shared": False},
    "chunked": {"chunk_rows": 64, "threads_per_block": 32},
}
N_ROWS = 300


def _train(params: dict[str, Any], rounds: int, seed: int) -> Any:
    """A small model on data with NaN, so trees learn both default directions."""
    xgb = pytest.importorskip("xgboost")
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(600, 8)).astype(np.float32)
    X[rng.random(X.shape) < 0.1] = np.nan
    signal = np.nan_to_num(X[:, 0], nan=1.0) - np.nan_to_num(X[:, 1] * X[:, 2])
    y = (signal > 0).astype(np.float32) if params["objective"].startswith("binary") else signal
    return xgb.train({**params, "seed": seed}, xgb.DMatrix(X, label=y), rounds)


def _hard_rows(forest: Forest, n_rows: int, seed: int) -> np.ndarray:
    """Rows with values exactly on thresholds, one float32 step below them, NaN and +-inf."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, forest.num_features)).astype(np.float32)
    inner = forest.feature >= 0
    feature, threshold = forest.feature[inner], forest.threshold[inner]
    for values in (threshold, np.nextafter(threshold, np.float32(-np.inf))):
        pick = rng.integers(0, feature.size, size=n_rows * 2)
        X[rng.integers(0, n_rows, size=pick.size), feature[pick]] = values[pick]
    draw = rng.random(X.shape)
    X[draw < 0.08] = np.nan
    X[(draw >= 0.08) & (draw < 0.10)] = np.inf
    X[(draw >= 0.10) & (draw < 0.12)] = -np.inf
    return X


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Per model: the booster, its forest, hard rows, and the simulated CUDA margins."""
    work = tmp_path_factory.mktemp("cudasim")
    cases: dict[str, dict[str, Any]] = {}
    for seed, (name, (params, rounds)) in enumerate(MODELS.items()):
        booster = _train(params, rounds, seed)
        booster.save_model(work / f"{name}.json")
        forest = load_model(work / f"{name}.json")
        X = _hard_rows(forest, N_ROWS, seed)
        np.save(work / f"{name}.X.npy", X)
        cases[name] = {"booster": booster, "forest": forest, "X": X}
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, __file__, str(work)], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((work / "report.json").read_text())
    for name, case in cases.items():
        case["auto_backend"] = report["auto_backend"]
        case["margins"] = {v: np.load(work / f"{name}.{v}.npy") for v in VARIANTS}
    return cases


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_cuda_matches_xgboost(cases: dict[str, dict[str, Any]], model: str) -> None:
    case = cases[model]
    expected = case["booster"].inplace_predict(case["X"])
    for variant, margins in case["margins"].items():
        got = apply_link(margins, case["forest"].link)[:, 0]
        assert np.abs(got - expected).max() <= 1e-6, variant


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("model", MODELS)
def test_cuda_margins_equal_tree_order_walk(
    cases: dict[str, dict[str, Any]], model: str, variant: str
) -> None:
    """Same rule, same float64 additions in tree order: bitwise-equal margins."""
    case = cases[model]
    np.testing.assert_array_equal(case["margins"][variant], _walk(case["forest"], case["X"]))


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("model", MODELS)
def test_cuda_margins_match_cpu(cases: dict[str, dict[str, Any]], model: str, variant: str) -> None:
    """The CPU backend may add leaf values in another order: equal up to float64 rounding."""
    case = cases[model]
    cpu = np.empty_like(case["margins"][variant])
    CpuLauncher(case["forest"])(case["X"], cpu)
    np.testing.assert_allclose(case["margins"][variant], cpu, rtol=1e-12, atol=1e-12)


@pytest.mark.slow
def test_auto_never_picks_the_simulator(cases: dict[str, dict[str, Any]]) -> None:
    assert cases["binary"]["auto_backend"] == "numba"


def test_cuda_without_gpu_is_unavailable(tmp_path: Path) -> None:
    import numba

    if numba.config.ENABLE_CUDASIM or os.path.exists("/dev/nvidiactl"):
        pytest.skip("a GPU or the CUDA simulator is present")
    booster = _train(*MODELS["binary"], seed=0)
    booster.save_model(tmp_path / "m.json")
    forest = load_model(tmp_path / "m.json")
    with pytest.raises(BackendUnavailableError, match="backend 'cuda' needs an NVIDIA GPU"):
        compile_model(forest, backend="cuda")
    assert compile_model(forest).backend == "numba"


def _walk(forest: Forest, X: np.ndarray) -> np.ndarray:
    """The IR's rule in numpy, all rows at once, adding leaf values tree by tree."""
    margins = np.tile(forest.base_margin, (X.shape[0], 1))
    rows = np.arange(X.shape[0])
    for t in range(forest.num_trees):
        root = int(forest.tree_offsets[t])
        node = np.full(X.shape[0], root)
        while (inner := forest.feature[node] >= 0).any():
            at = node[inner]
            x = X[rows[inner], forest.feature[at]]
            go_left = np.where(np.isnan(x), forest.default_left[at] != 0, x < forest.threshold[at])
            node[inner] = root + np.where(go_left, forest.left[at], forest.right[at])
        margins[:, forest.tree_group[t]] += forest.value[node]
    return margins


def _simulated(work: Path) -> None:
    """The child: compile every saved model with the CUDA backend and save its margins."""
    from kernels._numba_cuda import CudaLauncher, is_simulated

    assert is_simulated(), "run with NUMBA_ENABLE_CUDASIM=1"
    report: dict[str, str] = {}
    for name in MODELS:
        forest = load_model(work / f"{name}.json")
        X = np.load(work / f"{name}.X.npy")
        assert compile_model(forest, backend="cuda").backend == "cuda"
        report["auto_backend"] = compile_model(forest).backend
        for variant, options in VARIANTS.items():
            # The launcher itself, for float64 margins (predict returns float32).
            margins = np.full((X.shape[0], forest.num_outputs), np.nan)
            CudaLauncher(forest, **options)(X, margins)
            np.save(work / f"{name}.{variant}.npy", margins)
    (work / "report.json").write_text(json.dumps(report))


if __name__ == "__main__":
    _simulated(Path(sys.argv[1]))
