"""The TL2cgen backend: the same answers as the Numba kernel and the native libraries, a
kernel cache that is reused and never trusted when damaged, and clear refusals.

Models are tiny (a few trees): gcc compiles each in about a second. Each family's kernel
must give the Numba kernel's float32 output bit for bit (both sum the same float64 leaf
values in tree order), and the native library's prediction within its rounding.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import kernels
from kernels._tl2cgen import unavailable_reason
from kernels.cache import LibraryCache, kernel_key

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))

N_FEATURES = 5


def training_data(seed: int, n_rows: int = 300) -> np.ndarray:
    """float32 rows with 10% NaN and an integer-valued column (thresholds on values)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, N_FEATURES)).astype(np.float32)
    X[:, -1] = rng.integers(0, 5, n_rows)
    X[rng.random(X.shape) < 0.1] = np.nan
    return X


def labels(X: np.ndarray, kind: str) -> np.ndarray:
    z = np.nan_to_num(X[:, 0]) + 0.5 * np.nan_to_num(X[:, 1]) - 0.3 * np.isnan(X[:, 2])
    if kind == "binary":
        return (z > 0).astype(np.float32)
    if kind == "multiclass":
        return np.digitize(z, [-0.5, 0.5]).astype(np.float32)
    return z.astype(np.float32)


def eval_rows(forest: kernels.Forest, seed: int) -> np.ndarray:
    """Random rows, then rows putting each feature exactly on each of its thresholds and
    one float32 step either side, then NaN, +inf and -inf in every column."""
    rng = np.random.default_rng(seed)
    X = training_data(seed + 100, 200)
    inner = forest.feature >= 0
    edges = []
    for f, t in zip(forest.feature[inner], forest.threshold[inner], strict=True):
        for v in (np.nextafter(t, -np.inf), t, np.nextafter(t, np.inf)):
            row = X[rng.integers(0, len(X))].copy()
            row[f] = v
            edges.append(row)
    specials = np.tile(X[:3], (3, 1))
    specials[0:3] = np.nan
    specials[3:6] = np.inf
    specials[6:9] = -np.inf
    return np.vstack([X, np.array(edges, dtype=np.float32).reshape(-1, N_FEATURES), specials])


def _xgboost(objective: str, kind: str, **params: Any) -> Callable[[Path], tuple[Any, Any]]:
    def make(tmp: Path) -> tuple[Any, Any]:
        import xgboost as xgb

        X = training_data(1)
        booster = xgb.train(
            {"objective": objective, "max_depth": 4, "nthread": 1, "seed": 0, **params},
            xgb.DMatrix(X, labels(X, kind)),
            num_boost_round=6,
        )
        path = tmp / f"xgb-{objective.replace(':', '-')}.json"
        booster.save_model(path)
        return path, booster.inplace_predict

    return make


def _lightgbm(tmp: Path) -> tuple[Any, Any]:
    import lightgbm as lgb

    X = training_data(2)
    params = {"objective": "binary", "num_leaves": 15, "verbose": -1, "num_threads": 1}
    booster = lgb.train(params, lgb.Dataset(X, labels(X, "binary")), num_boost_round=6)
    path = tmp / "lgb.txt"
    booster.save_model(str(path))
    return path, booster.predict


def _sklearn_forest(tmp: Path) -> tuple[Any, Any]:
    from sklearn.ensemble import RandomForestRegressor

    X = np.nan_to_num(training_data(3))
    estimator = RandomForestRegressor(4, max_depth=5, random_state=0).fit(X, labels(X, "reg"))
    return estimator, estimator.predict


def _sklearn_linear(tmp: Path) -> tuple[Any, Any]:
    from sklearn.linear_model import LogisticRegression

    X = np.nan_to_num(training_data(4))
    estimator = LogisticRegression().fit(X, labels(X, "multiclass"))
    return estimator, estimator.predict_proba


FAMILIES = {
    "xgboost-binary-logistic": _xgboost("binary:logistic", "binary"),
    "xgboost-multi-softprob": _xgboost("multi:softprob", "multiclass", num_class=3),
    "xgboost-poisson": _xgboost("count:poisson", "binary"),
    "lightgbm-binary": _lightgbm,
    "sklearn-random-forest": _sklearn_forest,
    "sklearn-logistic-multinomial": _sklearn_linear,
}


@pytest.fixture(scope="module")
def families(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Any, Any]]:
    tmp = tmp_path_factory.mktemp("tl2cgen-models")
    return {name: make(tmp) for name, make in FAMILIES.items()}


@pytest.mark.parametrize("name", list(FAMILIES))
def test_agrees_with_numba_and_native(families: dict[str, tuple[Any, Any]], name: str) -> None:
    source, native_predict = families[name]
    forest = kernels.load_model(source)
    ours = kernels.compile_model(forest, backend="tl2cgen", n_threads=1)
    numba = kernels.compile_model(forest, backend="numba")
    assert ours.backend == "tl2cgen"
    X = eval_rows(forest, seed=7)
    if name.startswith("sklearn"):  # scikit-learn rejects NaN and inf
        X = np.nan_to_num(X, posinf=1e30, neginf=-1e30)
    for output in ("margin", "prediction"):
        got = ours.predict(X, output=output)
        expected = numba.predict(X, output=output)
        assert got.dtype == np.float32 and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)
    # feature-major and float64 input give the same answer
    np.testing.assert_array_equal(ours.predict(np.asfortranarray(X.astype(np.float64))), got)
    np.testing.assert_allclose(got, native_predict(X), rtol=1e-5, atol=1e-6)


def infinite_threshold_forest() -> kernels.Forest:
    """One tree per threshold +inf and -inf, both with NaN going right."""
    inner, leaf = [0, -1, -1], [0.0, 1.0, 2.0]
    return kernels.Forest(
        feature=np.array(inner * 2, np.int32),
        threshold=np.array([np.inf, 0, 0, -np.inf, 0, 0], np.float32),
        left=np.array([1, -1, -1] * 2, np.int32),
        right=np.array([2, -1, -1] * 2, np.int32),
        default_left=np.zeros(6, np.uint8),
        value=np.array(leaf + [10 * v for v in leaf]),
        tree_offsets=np.array([0, 3, 6]),
        tree_group=np.array([0, 0], np.int32),
        base_margin=np.array([0.5]),
        link="identity",
        num_features=1,
        feature_names=("x",),
        objective="reg:squarederror",
        source_format="test",
    )


def test_infinite_thresholds_follow_the_ir_rule() -> None:
    """TL2cgen folds ``x < inf`` into ``true``; the backend keeps ``x = +inf`` going right."""
    forest = infinite_threshold_forest()
    X = np.array([[np.inf], [-np.inf], [np.nan], [3e38], [-3e38], [0.0]], np.float32)
    # x < inf: left (1) for finite and -inf; x < -inf: never (20); NaN right in both
    expected = np.array([2 + 20, 1 + 20, 2 + 20, 1 + 20, 1 + 20, 1 + 20]) + 0.5
    got = kernels.compile_model(forest, backend="tl2cgen").predict(X)
    np.testing.assert_array_equal(got, expected.astype(np.float32))
    np.testing.assert_array_equal(got, kernels.compile_model(forest, backend="numba").predict(X))


def test_cached_library_is_reused_and_damage_rebuilt(
    families: dict[str, tuple[Any, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("LAKESCORE_CACHE_DIR", str(tmp_path))
    forest = kernels.load_model(families["xgboost-binary-logistic"][0])
    X = eval_rows(forest, seed=3)
    caplog.set_level(logging.INFO, logger="lakescore.kernels")

    first = kernels.compile_model(forest, backend="tl2cgen").predict(X)
    assert "compiling" in caplog.text
    store = LibraryCache(tmp_path)
    key = kernel_key(forest, "tl2cgen")
    library = store.get(key)
    assert library is not None and library.parent == tmp_path / "kernels"

    caplog.clear()
    again = kernels.compile_model(forest, backend="tl2cgen")
    assert "compiling" not in caplog.text  # loaded from the cache
    np.testing.assert_array_equal(again.predict(X), first)

    # a damaged library (half of it, as a failed copy leaves it) is rebuilt; replaced, not
    # rewritten in place, which would pull the pages from under this process's mapping
    half = library.read_bytes()[: library.stat().st_size // 2]
    library.unlink()
    library.write_bytes(half)
    caplog.clear()
    rebuilt = kernels.compile_model(forest, backend="tl2cgen")
    assert "discarding corrupt kernel cache entry" in caplog.text
    assert "compiling" in caplog.text
    np.testing.assert_array_equal(rebuilt.predict(X), first)

    # so is an entry whose description is not JSON
    (tmp_path / "kernels" / f"{key}.json").write_text("{not json")
    caplog.clear()
    reloaded = kernels.compile_model(forest, backend="tl2cgen")
    np.testing.assert_array_equal(reloaded.predict(X), first)
    assert "discarding corrupt kernel cache entry" in caplog.text


def test_key_names_model_backend_cpu_and_version(families: dict[str, tuple[Any, Any]]) -> None:
    forest = kernels.load_model(families["xgboost-binary-logistic"][0])
    other = kernels.load_model(families["xgboost-poisson"][0])
    key = kernel_key(forest, "tl2cgen")
    assert key == kernel_key(forest, "tl2cgen")
    assert key != kernel_key(forest, "numba") and key != kernel_key(other, "tl2cgen")
    from llvmlite import binding as llvm

    from kernels import cache

    assert llvm.get_host_cpu_name() in cache.cpu_signature()
    with pytest.MonkeyPatch.context() as patch:  # another CPU, another kernel version
        patch.setattr(cache, "cpu_signature", lambda: "another-cpu;+avx512f")
        assert kernel_key(forest, "tl2cgen") != key
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cache, "KERNEL_VERSION", cache.KERNEL_VERSION + 1)
        assert kernel_key(forest, "tl2cgen") != key


def test_linear_model_needs_no_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.linear_model import LinearRegression

    monkeypatch.setenv("LAKESCORE_CACHE_DIR", str(tmp_path))
    X = np.nan_to_num(training_data(5))
    estimator = LinearRegression().fit(X, labels(X, "reg"))
    kernel = kernels.compile_model(kernels.load_model(estimator), backend="tl2cgen")
    assert not (tmp_path / "kernels").exists()
    np.testing.assert_allclose(kernel.predict(X), estimator.predict(X), rtol=1e-5, atol=1e-5)


def lightgbm_forest(tmp: Path, **params: Any) -> kernels.Forest:
    import lightgbm as lgb

    X = np.nan_to_num(training_data(6))
    X[:, 3] = np.arange(len(X)) % 4
    base = {"objective": "regression", "num_leaves": 7, "verbose": -1, "min_data_per_group": 5}
    dataset = lgb.Dataset(X, labels(X, "reg") + X[:, 3], categorical_feature=params.pop("cat", []))
    booster = lgb.train({**base, **params}, dataset, num_boost_round=3)
    path = tmp / "model.txt"
    booster.save_model(str(path))
    return kernels.load_model(path)


def test_refuses_categorical_splits(tmp_path: Path) -> None:
    forest = lightgbm_forest(tmp_path, cat=[3])
    assert forest.has_categorical
    with pytest.raises(kernels.UnsupportedModelError, match="does not score categorical splits"):
        kernels.compile_model(forest, backend="tl2cgen")


def test_refuses_lightgbm_zero_band(tmp_path: Path) -> None:
    forest = lightgbm_forest(tmp_path, zero_as_missing=True)
    assert forest.has_zero_missing
    with pytest.raises(kernels.UnsupportedModelError, match="zero_as_missing"):
        kernels.compile_model(forest, backend="tl2cgen")


def test_available_backends_lists_tl2cgen() -> None:
    names = kernels.available_backends()
    assert names[0] == "numba" and "tl2cgen" in names
    assert set(names) <= set(kernels.BACKENDS) - {"auto"}


def test_missing_gcc_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", os.devnull)
    forest = infinite_threshold_forest()
    with pytest.raises(kernels.BackendUnavailableError, match="needs gcc"):
        kernels.compile_model(forest, backend="tl2cgen")
    assert "tl2cgen" not in kernels.available_backends()
