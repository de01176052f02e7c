"""The CUDA backend agrees with the native libraries and the CPU kernel, in Numba's CUDA
simulator, for every model family it scores.

Numba reads ``NUMBA_ENABLE_CUDASIM`` once, when it is first imported, so the simulated half
runs in a child process started with it set: the child (this file run as a script) compiles
each saved model with ``backend="cuda"`` and saves its margins for every launcher variant
(XGBoost models and forests derived from them) or the default launcher (the other
families), and ``Kernel.predict``'s output (the link applied on the device). The tests
compare them here with the native library's predict (``xgboost.Booster.inplace_predict``,
``lightgbm.Booster.predict``, scikit-learn's ``predict_proba``), the ``numba`` backend and
the IR's rule walked in numpy. Derived forests: ``-inf`` and NaN thresholds (ordinary
always-right splits, perfect traversal), trees deeper than the perfect traversal pads,
thresholds of exactly zero (``-0.0`` against ``+0.0`` rows), three outputs with unequal
tree counts and base margins, and an ``exp`` link with a scale. LightGBM's categorical
splits and zero band take the walk. The simulator runs each GPU thread as a Python thread,
so models and batches stay small.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
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
from kernels.kernel import apply_link

REPO = Path(__file__).resolve().parents[1]

#: name -> (XGBoost params, boosting rounds)
MODELS: dict[str, tuple[dict[str, Any], int]] = {
    "binary": ({"objective": "binary:logistic", "max_depth": 4}, 10),
    "regression": ({"objective": "reg:squarederror", "max_depth": 3, "base_score": 0.3}, 8),
    "multiclass": ({"objective": "multi:softprob", "num_class": 3, "max_depth": 3}, 3),
    "argmax": ({"objective": "multi:softmax", "num_class": 3, "max_depth": 2}, 2),
}
#: Other families, scored by the default launcher: name -> the traversal it must take.
FAMILIES = {
    "xgb_categorical": "walk",
    "lgb_categorical": "walk",
    "lgb_zero_missing": "walk",
    "lgb_poisson": "perfect",
    "sklearn_forest": "perfect",
}
#: name -> CudaLauncher keywords: the perfect traversal (trees in pairs), one tree at a
#: time, 64-thread blocks; the walk with rows in shared and in global memory; and batches
#: split into chunks (a short last one) over both streams, in 32-thread blocks; the last
#: two on feature-major batches.
VARIANTS: dict[str, dict[str, Any]] = {
    "perfect": {},
    "single": {"pair_trees": False},
    "perfect_64": {"threads_per_block": 64},
    "walk": {"traversal": "walk"},
    "walk_global": {"traversal": "walk", "rows_in_shared": False},
    "chunked": {"chunk_rows": 64, "threads_per_block": 32},
    "chunked_fm": {"chunk_rows": 64, "threads_per_block": 32},
    "walk_fm": {"traversal": "walk"},
}
#: Variants fed feature-major (F-contiguous) batches, as the engine builds them.
FEATURE_MAJOR = ("chunked_fm", "walk_fm")
#: Built from the saved models (see _special): name -> the traversal every variant must use
#: (None: the one it asks for).
SPECIAL = {
    "neg_inf": None,
    "nan_threshold": None,
    "too_deep": "walk",
    "zero_thresholds": None,
    "three_outputs": None,
    "scaled_exp": None,
}
N_ROWS = 200
#: The variants each kind of case runs (the simulator is slow: derived forests and other
#: families take the default traversal and the walk, or the default alone).
RUNS = {**dict.fromkeys(MODELS, tuple(VARIANTS)), **dict.fromkeys(SPECIAL, ("perfect", "walk"))}
RUNS.update(dict.fromkeys(FAMILIES, ("perfect",)))


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
    X[(draw >= 0.12) & (draw < 0.15)] = 0.0  # LightGBM's zero band
    whole = (draw >= 0.15) & (draw < 0.25)  # categories, negative ones too
    X[whole] = np.round(np.clip(X[whole], -1e6, 1e6) * 4)
    return X


def _family(name: str, work: Path) -> tuple[Forest, np.ndarray, np.ndarray]:
    """A small model of another family, trained and saved: its forest (loaded from the
    file), hard rows for it, and the native library's prediction for them."""
    rng = np.random.default_rng(len(name))
    X = rng.normal(size=(600, 8)).astype(np.float32)
    X[:, 7] = rng.integers(0, 12, size=600)  # a categorical column
    X[rng.random(X.shape) < 0.1] = np.nan
    X[rng.random(X.shape) < 0.05] = 0.0
    signal = np.nan_to_num(X[:, 0] - X[:, 1] * X[:, 2]) + np.isin(X[:, 7], [1, 4, 9])
    if name == "xgb_categorical":  # XGBoost's rule: no negative category
        xgb = pytest.importorskip("xgboost")
        types = ["q"] * 7 + ["c"]
        dtrain = xgb.DMatrix(X, signal, feature_types=types, enable_categorical=True)
        params = {"max_depth": 3, "tree_method": "hist", "max_cat_to_onehot": 1, "seed": 0}
        booster = xgb.train(params, dtrain, 4)
        path = work / f"{name}.json"
        booster.save_model(path)
        native = booster.inplace_predict
    elif name == "sklearn_forest":
        ensemble = pytest.importorskip("sklearn.ensemble")
        model = ensemble.RandomForestClassifier(n_estimators=4, max_depth=5, random_state=0)
        model.fit(X, signal > 0.5)
        path = work / f"{name}.pkl"
        path.write_bytes(pickle.dumps(model))
        native = lambda rows: model.predict_proba(rows)[:, 1]  # noqa: E731
    else:
        lgb = pytest.importorskip("lightgbm")
        params: dict[str, Any] = {"verbose": -1, "seed": 0, "num_threads": 1, "num_leaves": 15}
        params.update(min_data_in_leaf=5, min_data_per_group=5, deterministic=True)
        y = (signal > 0.5).astype(float)
        categorical: list[int] = []
        if name == "lgb_categorical":
            params.update(objective="binary", cat_smooth=1.0)
            categorical = [7]
        elif name == "lgb_zero_missing":
            params.update(objective="regression", zero_as_missing=True)
            y = signal
        else:
            params.update(objective="poisson")
            y = rng.poisson(np.exp(np.clip(signal, -2, 2) / 2)).astype(float)
        data = lgb.Dataset(X, y, categorical_feature=categorical, params=params)
        booster = lgb.train(params, data, 6)
        path = work / f"{name}.txt"
        booster.save_model(path)
        native = booster.predict
    forest = load_model(path, trust_pickle=True, cache=False)
    rows = _hard_rows(forest, N_ROWS, len(name))
    rows[:, 7] = rng.integers(-2, 14, size=N_ROWS)  # categories past the bitset, negatives
    rows[rng.random(N_ROWS) < 0.05, 7] = np.float32(-0.5)  # LightGBM's category 0
    rows[rng.random(N_ROWS) < 0.05, 7] = np.nan
    rows[rng.random(rows.shape) < 0.02] = np.float32(1e-36)  # in the zero band
    if name == "sklearn_forest":  # its predict refuses infinities
        rows = np.nan_to_num(rows, nan=np.nan, posinf=3e38, neginf=-3e38)
    np.save(work / f"{name}.X.npy", rows)
    return forest, rows, native(rows)


def _special(name: str, work: Path) -> tuple[Forest, np.ndarray]:
    """A forest and rows derived from the saved binary model (the same in both processes)."""
    forest = load_model(work / "binary.json")
    X = np.load(work / "binary.X.npy")
    inner = np.flatnonzero(forest.feature >= 0)
    threshold = forest.threshold.copy()
    if name == "neg_inf":  # every number goes right (x >= -inf), NaN its default way
        threshold[inner[::5]] = -np.inf
    elif name == "nan_threshold":  # x < NaN is false: every number goes right, as for -inf
        threshold[inner[1::5]] = np.nan
    elif name == "scaled_exp":  # the link scale, applied on the device with the link
        return dataclasses.replace(forest, link="exp", link_scale=0.5), X
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
    for name in FAMILIES:
        forest, X, native = _family(name, work)
        cases[name] = {"forest": forest, "X": X, "native": native}
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, __file__, str(work)], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((work / "report.json").read_text())
    for name, case in cases.items():
        case["auto_backend"] = report["auto_backend"]
        case["backend"] = report["backend"][name]
        case["traversal"] = report["traversal"][name]
        case["margins"] = {v: np.load(work / f"{name}.{v}.npy") for v in RUNS[name]}
        case["predict"] = np.load(work / f"{name}.predict.npy")
    return cases


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_cuda_matches_xgboost(cases: dict[str, dict[str, Any]], model: str) -> None:
    case = cases[model]
    expected = case["booster"].inplace_predict(case["X"])
    for variant, margins in case["margins"].items():
        got = apply_link(margins, case["forest"].link)
        assert np.abs(got - expected.reshape(got.shape)).max() <= 1e-6, variant
    assert np.abs(case["predict"] - expected.reshape(case["predict"].shape)).max() <= 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("model", FAMILIES)
def test_cuda_matches_native_library(cases: dict[str, dict[str, Any]], model: str) -> None:
    """XGBoost's and LightGBM's categorical splits, LightGBM's zero band and poisson's exp
    link, and a scikit-learn forest (averaged trees), on the device, against their own
    predict."""
    case = cases[model]
    assert case["backend"] == "cuda"
    assert case["traversal"]["perfect"] == FAMILIES[model]
    np.testing.assert_allclose(case["predict"], case["native"], rtol=1e-6, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("model", [m for m in RUNS if m not in FAMILIES])
def test_cuda_margins_equal_tree_order_walk(cases: dict[str, dict[str, Any]], model: str) -> None:
    """Same rule, same float64 additions in tree order: bitwise-equal margins."""
    case = cases[model]
    for variant, margins in case["margins"].items():
        np.testing.assert_array_equal(margins, _walk(case["forest"], case["X"]), err_msg=variant)


#: The CPU kernel's perfect layout reads ``x >= NaN`` (false) as "go left", where the IR
#: sends every number right; loaders refuse NaN thresholds, so only this test forest has one.
CPU_COMPARABLE = [m for m in RUNS if m != "nan_threshold"]


@pytest.mark.slow
@pytest.mark.parametrize("model", CPU_COMPARABLE)
def test_cuda_margins_match_cpu(cases: dict[str, dict[str, Any]], model: str) -> None:
    """The CPU backend may add leaf values in another order: equal up to float64 rounding."""
    case = cases[model]
    cpu = np.empty((case["X"].shape[0], case["forest"].num_outputs))
    CpuLauncher(case["forest"])(case["X"], cpu)
    for variant, margins in case["margins"].items():
        np.testing.assert_allclose(margins, cpu, rtol=1e-12, atol=1e-12, err_msg=variant)


@pytest.mark.slow
@pytest.mark.parametrize("model", CPU_COMPARABLE)
def test_cuda_predict_matches_cpu_predict(cases: dict[str, dict[str, Any]], model: str) -> None:
    """``Kernel.predict`` with the link applied on the device (float64, then float32) is the
    CPU backend's, which applies it on the host, to one float32 step (exp's last bit)."""
    case = cases[model]
    cpu = compile_model(case["forest"], backend="numba").predict(case["X"])
    assert case["predict"].shape == cpu.shape and case["predict"].dtype == np.float32
    np.testing.assert_array_max_ulp(case["predict"], cpu, maxulp=1)


@pytest.mark.slow
@pytest.mark.parametrize("model", [m for m in RUNS if m not in FAMILIES])
def test_variants_run_the_traversal_asked_for(cases: dict[str, dict[str, Any]], model: str) -> None:
    """Perfect where it is exact (``-inf`` and NaN thresholds too), the walk for over-deep
    trees."""
    for variant in RUNS[model]:
        asked = VARIANTS[variant].get("traversal", "perfect")
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
    """The child: every saved model and derived forest through its launcher variants, and
    ``Kernel.predict`` of the ``cuda`` backend."""
    from kernels._numba_cuda import CudaLauncher, is_simulated

    assert is_simulated(), "run with NUMBA_ENABLE_CUDASIM=1"
    # numpy scalars stand in for the kernels' uint32 index arithmetic, which wraps by design.
    warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)
    report: dict[str, Any] = {"traversal": {}, "backend": {}}
    inputs = {
        name: (load_model(work / f"{name}.json"), np.load(work / f"{name}.X.npy"))
        for name in MODELS
    }
    inputs.update({name: _special(name, work) for name in SPECIAL})
    for name in FAMILIES:
        suffix = {"sklearn": "pkl", "xgb": "json", "lgb": "txt"}[name.split("_")[0]]
        path = work / f"{name}.{suffix}"
        inputs[name] = (
            load_model(path, trust_pickle=True, cache=False),
            np.load(work / f"{name}.X.npy"),
        )
    report["auto_backend"] = compile_model(inputs["binary"][0]).backend
    for name, (forest, X) in inputs.items():
        kernel = compile_model(forest, backend="cuda")
        report["backend"][name] = kernel.backend
        predicted = kernel.predict(X)
        # Kernel.predict hands a feature-major batch to the launcher as it is.
        assert np.array_equal(kernel.predict(np.asfortranarray(X)), predicted), name
        np.save(work / f"{name}.predict.npy", predicted)
        report["traversal"][name] = {}
        for variant in RUNS[name]:
            # The launcher itself, for float64 margins (predict returns float32).
            launcher = CudaLauncher(forest, **VARIANTS[variant])
            margins = np.full((X.shape[0], forest.num_outputs), np.nan)  # all must be written
            launcher(np.asfortranarray(X) if variant in FEATURE_MAJOR else X, margins)
            np.save(work / f"{name}.{variant}.npy", margins)
            report["traversal"][name][variant] = launcher.traversal
    (work / "report.json").write_text(json.dumps(report))


if __name__ == "__main__":
    _simulated(Path(sys.argv[1]))
