"""The CUDA backend's launcher variants agree with the IR's walk and the CPU kernel, in
Numba's CUDA simulator (its agreement with the native libraries on registry models is the
agreement suite's, tests/agreement/test_agreement.py, simulated there too).

Numba reads ``NUMBA_ENABLE_CUDASIM`` once, when it is first imported, so the simulated half
runs in a child process started with it set: the child (this file run as a script) compiles
each saved model with ``backend="cuda"`` and saves its margins for every launcher variant;
the tests compare them here with the ``numba`` backend and the IR's rule walked in numpy.
Forests the perfect traversal must refuse (a ``-inf`` threshold, trees deeper than it
pads), thresholds of exactly zero (``-0.0`` against ``+0.0`` rows) and three outputs with
unequal tree counts are built from the saved models.
The simulator runs each GPU thread as a Python thread, so models and batches stay small.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kernels import BackendUnavailableError, Forest, compile_model, load_model
from kernels._cpu_layout import MAX_PERFECT_DEPTH
from kernels._numba_cpu import CpuLauncher

REPO = Path(__file__).resolve().parents[1]

#: name -> (XGBoost params, boosting rounds)
MODELS: dict[str, tuple[dict[str, Any], int]] = {
    "binary": ({"objective": "binary:logistic", "max_depth": 4}, 10),
    "regression": ({"objective": "reg:squarederror", "max_depth": 3, "base_score": 0.3}, 8),
    "multiclass": ({"objective": "multi:softprob", "num_class": 3, "max_depth": 3}, 3),
}
#: name -> CudaLauncher keywords: the perfect traversal (trees in pairs), one tree at a
#: time, 64-thread blocks; the walk with rows in shared and in global memory; and batches
#: split into 5 chunks (a short last one) over both streams, in 32-thread blocks.
VARIANTS: dict[str, dict[str, Any]] = {
    "perfect": {},
    "single": {"pair_trees": False},
    "perfect_64": {"threads_per_block": 64},
    "walk": {"traversal": "walk"},
    "walk_global": {"traversal": "walk", "rows_in_shared": False},
    "chunked": {"chunk_rows": 64, "threads_per_block": 32},
}
#: Built from the saved models (see _special): name -> the traversal every variant must use
#: (None: the one it asks for).
SPECIAL = {"neg_inf": "walk", "too_deep": "walk", "zero_thresholds": None, "three_outputs": None}
N_ROWS = 300


def _train(params: dict[str, Any], rounds: int, seed: int) -> Any:
    """A small model on data with NaN, so trees learn both default directions."""
    xgb = pytest.importorskip("xgboost")
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(600, 8)).astype(np.float32)
    X[rng.random(X.shape) < 0.1] = np.nan
    signal = np.nan_to_num(X[:, 0], nan=1.0) - np.nan_to_num(X[:, 1] * X[:, 2])
    if params["objective"].startswith("binary"):
        y = (signal > 0).astype(np.float32)
    elif params["objective"].startswith("multi"):
        y = np.digitize(signal, [-0.5, 0.5]).astype(np.float32)  # three classes
    else:
        y = signal
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


def _special(name: str, work: Path) -> tuple[Forest, np.ndarray]:
    """A forest and rows derived from the saved binary model (the same in both processes)."""
    forest = load_model(work / "binary.json")
    X = np.load(work / "binary.X.npy")
    inner = np.flatnonzero(forest.feature >= 0)
    threshold = forest.threshold.copy()
    if name == "neg_inf":  # -inf >= -inf: the branch-free rule would send a left NaN right
        threshold[inner[len(inner) // 2]] = -np.inf
    elif name == "zero_thresholds":  # x >= t must hold for -0.0 against +0.0 and back
        on_f0 = inner[forest.feature[inner] == 0]
        threshold[on_f0] = np.where(np.arange(on_f0.size) % 2, np.float32(-0.0), 0.0)
        X = X.copy()
        X[::3, 0] = np.float32(-0.0)
        X[1::3, 0] = 0.0
    elif name == "too_deep":
        return _chain(MAX_PERFECT_DEPTH + 1, forest.num_features), X
    elif name == "three_outputs":  # 10 trees: 4, 3 and 3 per output
        group = (np.arange(forest.num_trees) % 3).astype(np.int32)
        base = np.array([0.1, -0.2, 0.3])
        return dataclasses.replace(forest, tree_group=group, base_margin=base), X
    return dataclasses.replace(forest, threshold=threshold), X


def _chain(depth: int, n_features: int) -> Forest:
    """One tree of ``depth`` splits, each with a leaf on its left: too deep to pad."""
    n = 2 * depth + 1
    inner = np.arange(0, n - 1, 2)
    feature = np.full(n, -1, np.int32)
    feature[inner] = np.arange(depth) % n_features
    threshold = np.zeros(n, np.float32)
    threshold[inner] = np.linspace(-1, 1, depth)
    left = np.full(n, -1, np.int32)
    right = np.full(n, -1, np.int32)
    left[inner], right[inner] = inner + 1, inner + 2
    default_left = np.zeros(n, np.uint8)
    default_left[inner] = np.arange(depth) % 2
    return Forest(
        feature=feature,
        threshold=threshold,
        left=left,
        right=right,
        default_left=default_left,
        value=np.where(feature < 0, np.arange(n) / 16, 0.0),
        tree_offsets=np.array([0, n], np.int64),
        tree_group=np.zeros(1, np.int32),
        base_margin=np.array([0.5]),
        link="identity",
        num_features=n_features,
        feature_names=tuple(f"f{i}" for i in range(n_features)),
        objective="reg:squarederror",
        source_format="test",
    )


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Per model and special forest: its forest, rows, and margins and traversal per variant."""
    work = tmp_path_factory.mktemp("cudasim")
    cases: dict[str, dict[str, Any]] = {}
    for seed, (name, (params, rounds)) in enumerate(MODELS.items()):
        booster = _train(params, rounds, seed)
        booster.save_model(work / f"{name}.json")
        forest = load_model(work / f"{name}.json")
        X = _hard_rows(forest, N_ROWS, seed)
        np.save(work / f"{name}.X.npy", X)
        cases[name] = {"booster": booster, "forest": forest, "X": X}
    for name in SPECIAL:
        forest, X = _special(name, work)
        cases[name] = {"forest": forest, "X": X}
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, __file__, str(work)], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((work / "report.json").read_text())
    for name, case in cases.items():
        case["auto_backend"] = report["auto_backend"]
        case["traversal"] = report["traversal"][name]
        case["margins"] = {v: np.load(work / f"{name}.{v}.npy") for v in VARIANTS}
    return cases


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("model", [*MODELS, *SPECIAL])
def test_cuda_margins_equal_tree_order_walk(
    cases: dict[str, dict[str, Any]], model: str, variant: str
) -> None:
    """Same rule, same float64 additions in tree order: bitwise-equal margins."""
    case = cases[model]
    np.testing.assert_array_equal(case["margins"][variant], _walk(case["forest"], case["X"]))


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("model", [*MODELS, "three_outputs"])
def test_cuda_margins_match_cpu(cases: dict[str, dict[str, Any]], model: str, variant: str) -> None:
    """The CPU backend may add leaf values in another order: equal up to float64 rounding."""
    case = cases[model]
    cpu = np.empty_like(case["margins"][variant])
    CpuLauncher(case["forest"])(case["X"], cpu)
    np.testing.assert_allclose(case["margins"][variant], cpu, rtol=1e-12, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("model", [*MODELS, *SPECIAL])
def test_variants_run_the_traversal_asked_for(cases: dict[str, dict[str, Any]], model: str) -> None:
    """Perfect where it is exact, the walk for -inf thresholds and over-deep trees."""
    for variant, options in VARIANTS.items():
        asked = options.get("traversal", "perfect")
        expected = SPECIAL.get(model) or asked
        assert cases[model]["traversal"][variant] == expected, variant


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
    """The child: every saved model and special forest through every launcher variant."""
    from kernels._numba_cuda import CudaLauncher, is_simulated

    assert is_simulated(), "run with NUMBA_ENABLE_CUDASIM=1"
    # numpy scalars stand in for the kernels' uint32 index arithmetic, which wraps by design.
    warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)
    report: dict[str, Any] = {"traversal": {}}
    inputs = {
        name: (load_model(work / f"{name}.json"), np.load(work / f"{name}.X.npy"))
        for name in MODELS
    }
    inputs.update({name: _special(name, work) for name in SPECIAL})
    for name, (forest, X) in inputs.items():
        if name in MODELS:
            assert compile_model(forest, backend="cuda").backend == "cuda"
            report["auto_backend"] = compile_model(forest).backend
        report["traversal"][name] = {}
        for variant, options in VARIANTS.items():
            # The launcher itself, for float64 margins (predict returns float32).
            launcher = CudaLauncher(forest, **options)
            margins = np.full((X.shape[0], forest.num_outputs), np.nan)  # all must be written
            launcher(X, margins)
            np.save(work / f"{name}.{variant}.npy", margins)
            report["traversal"][name][variant] = launcher.traversal
    (work / "report.json").write_text(json.dumps(report))


if __name__ == "__main__":
    _simulated(Path(sys.argv[1]))
