"""Every model family through every contender (``contenders.py``): lakescore's Numba and
TL2cgen backends, the family's own library and treelite's GTIL.

- ``lightgbm-255-leaves``: LightGBM binary, 500 trees, num_leaves 255, max_depth 8, 50
  features with 2% NaN, against ``Booster.predict``;
- ``sklearn-forest-deep``: scikit-learn RandomForestRegressor, 64 trees grown to depth 18+
  (the sparse layout), against ``predict``; sklearn rejects NaN, so its rows have none;
- ``xgboost-shallow-2000``: XGBoost binary:logistic, 2,000 trees of depth 3, against
  ``inplace_predict``.

Models are trained once from seed 0 and cached in ``benchmarks/.cache/``; each contender
scores the same float32 rows in the same run with the same thread count (TL2cgen a tenth
of them, GTIL a fiftieth). The deep forest is not compiled with TL2cgen (see its test).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from conftest import CACHE_DIR, ROWS, make_features, make_labels
from contenders import CONTENDERS, run_model

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
def lightgbm_path() -> Path:
    return _cached("lightgbm-255.txt", _train_lightgbm)


@pytest.fixture(scope="module")
def forest_path() -> Path:
    path = _cached("forest-deep.pkl", _train_forest)
    forest = kernels.load_model(path, trust_pickle=True)
    assert int(forest.tree_depths().max()) > 10  # the sparse layout, not the padded one
    return path


@pytest.fixture(scope="module")
def shallow_path() -> Path:
    return _cached("xgboost-shallow-2000.ubj", _train_shallow)


CONTENDER = pytest.mark.parametrize("contender", CONTENDERS)
THREADS = pytest.mark.parametrize("n_threads", [1, 2])


@THREADS
@CONTENDER
def test_lightgbm(run_contender, lightgbm_path, bench_X, n_threads, contender):
    run_model(run_contender, "lightgbm-255-leaves", lightgbm_path, contender, n_threads, bench_X,
              atol=1e-6)  # fmt: skip


@THREADS
@CONTENDER
def test_sklearn_deep_forest(run_contender, forest_path, bench_X, n_threads, contender):
    if contender == "tl2cgen":
        pytest.skip("about 1.5M nodes: gcc would need far longer than the whole benchmark")
    X = np.nan_to_num(bench_X[:FOREST_ROWS])  # scikit-learn rejects NaN
    run_model(run_contender, "sklearn-forest-deep", forest_path, contender, n_threads, X,
              atol=1e-5)  # fmt: skip


@THREADS
@CONTENDER
def test_xgboost_shallow(run_contender, shallow_path, bench_X, n_threads, contender):
    run_model(run_contender, "xgboost-shallow-2000", shallow_path, contender, n_threads, bench_X,
              atol=1e-6)  # fmt: skip
