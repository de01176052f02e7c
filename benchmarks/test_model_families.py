"""Every model family side by side with its own library (issue: kernel speed).

- ``lightgbm-255-leaves``: LightGBM binary, 500 trees, num_leaves 255, max_depth 8, 50
  features with 2% NaN, against ``Booster.predict``;
- ``sklearn-forest-deep``: scikit-learn RandomForestRegressor, 64 trees grown to depth 18+
  (the sparse layout), against ``predict``; sklearn rejects NaN, so its rows have none;
- ``xgboost-shallow-2000``: XGBoost binary:logistic, 2,000 trees of depth 3, against
  ``inplace_predict``.

Models are trained once from seed 0 and cached in ``benchmarks/.cache/``; each contender
scores the same float32 rows in the same run with the same thread count.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from conftest import CACHE_DIR, ROWS, make_features, make_labels

import kernels

# Deep forests are slow in every library; fewer rows keep the run short.
FOREST_ROWS = max(1, ROWS // 5)


def _cached(name: str, train) -> Path:
    path = CACHE_DIR / name
    if not path.exists():
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        train(partial)
        partial.replace(path)
    return path


def _train_lightgbm(path: Path) -> None:
    import lightgbm as lgb

    X = make_features(100_000, seed=0)
    params = {"objective": "binary", "num_leaves": 255, "max_depth": 8, "learning_rate": 0.1,
              "seed": 0, "verbose": -1, "num_threads": os.cpu_count() or 1}  # fmt: skip
    booster = lgb.train(params, lgb.Dataset(X, make_labels(X, seed=0)), num_boost_round=500)
    booster.save_model(str(path))


def _train_forest(path: Path) -> None:
    from sklearn.ensemble import RandomForestRegressor

    X = np.nan_to_num(make_features(50_000, seed=0))
    y = make_labels(X, seed=0) + np.nan_to_num(X[:, 0])
    forest = RandomForestRegressor(n_estimators=64, min_samples_leaf=2, max_features=0.3,
                                   random_state=0, n_jobs=-1).fit(X, y)  # fmt: skip
    path.write_bytes(pickle.dumps(forest))


def _train_shallow(path: Path) -> None:
    import xgboost as xgb

    X = make_features(100_000, seed=0)
    params = {"objective": "binary:logistic", "max_depth": 3, "eta": 0.05, "seed": 0,
              "tree_method": "hist", "nthread": os.cpu_count() or 1}  # fmt: skip
    xgb.train(params, xgb.DMatrix(X, make_labels(X, seed=0)), 2000).save_model(path)


@pytest.fixture(scope="module")
def lightgbm_case(bench_X):
    import lightgbm as lgb

    path = _cached("lightgbm-255.txt", _train_lightgbm)
    return lgb.Booster(model_file=str(path)), kernels.load_model(path), bench_X


@pytest.fixture(scope="module")
def forest_case(bench_X):
    path = _cached("forest-deep.pkl", _train_forest)
    estimator = pickle.loads(path.read_bytes())
    return (
        estimator,
        kernels.load_model(path, trust_pickle=True),
        np.nan_to_num(bench_X[:FOREST_ROWS]),
    )


@pytest.fixture(scope="module")
def shallow_case(bench_X):
    import xgboost as xgb

    path = _cached("xgboost-shallow-2000.ubj", _train_shallow)
    return xgb.Booster(model_file=str(path)), kernels.load_model(path), bench_X


def _run(run_contender, family, forest, native_predict, X, n_threads, contender, atol):
    """Time one contender (one ``benchmark`` per test); lakescore is first checked against
    the native library on the same rows."""
    if contender == "native":
        run_contender(f"{family}:native", n_threads, lambda: native_predict(X), rows=len(X))
        return
    kernel = kernels.compile_model(forest, backend="numba", n_threads=n_threads)
    sample = X[:5000]
    np.testing.assert_allclose(kernel.predict(sample), native_predict(sample), atol=atol)
    run_contender(f"{family}:lakescore", n_threads, lambda: kernel.predict(X), rows=len(X))


CONTENDERS = pytest.mark.parametrize("contender", ["lakescore", "native"])
THREADS = pytest.mark.parametrize("n_threads", [1, 2])


@THREADS
@CONTENDERS
def test_lightgbm(run_contender, lightgbm_case, n_threads, contender):
    booster, forest, X = lightgbm_case

    def native(rows: np.ndarray) -> np.ndarray:
        return booster.predict(rows, num_threads=n_threads)

    _run(run_contender, "lightgbm-255-leaves", forest, native, X, n_threads, contender, 1e-6)


@THREADS
@CONTENDERS
def test_sklearn_deep_forest(run_contender, forest_case, n_threads, contender):
    estimator, forest, X = forest_case
    estimator.set_params(n_jobs=n_threads)
    assert int(forest.tree_depths().max()) > 10  # the sparse layout, not the padded one

    def native(rows: np.ndarray) -> np.ndarray:
        return estimator.predict(rows)

    _run(run_contender, "sklearn-forest-deep", forest, native, X, n_threads, contender, 1e-5)


@THREADS
@CONTENDERS
def test_xgboost_shallow(run_contender, shallow_case, n_threads, contender):
    booster, forest, X = shallow_case
    booster.set_param({"nthread": n_threads})

    def native(rows: np.ndarray) -> np.ndarray:
        return booster.inplace_predict(rows)

    _run(run_contender, "xgboost-shallow-2000", forest, native, X, n_threads, contender, 1e-6)
