"""XGBoost categorical splits (``enable_categorical``): one-hot and partition splits.

XGBoost lists the categories that go right; the loader swaps the children so the IR's
bitset sends them left. A value is its category truncated toward zero; negative values,
values past the largest category and +-inf are no listed category; NaN follows the
default direction. Oracle: ``inplace_predict`` on the same float32 rows.
"""

from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb

import kernels

PROBES = [0, 1, 2, 3, 5, 7, 33, 2.5, 3.5, 0.999, -0.5, -1, -2.5, 39, 40, 100, 1e10,
          np.nan, np.inf, -np.inf]  # fmt: skip


@pytest.fixture(scope="module", params=[1, 64], ids=["partition", "one-hot"])
def categorical_model(request, tmp_path_factory):
    rng = np.random.default_rng(31)
    n = 3000
    X = rng.normal(size=(n, 3)).astype(np.float32)
    X[:, 0] = rng.integers(0, 40, n)
    X[:, 2] = rng.integers(0, 6, n)
    X[rng.random(n) < 0.1, 0] = np.nan
    y = (
        np.isin(np.nan_to_num(X[:, 0], nan=-1), [1, 3, 5, 7, 33]) * 2.0
        + X[:, 1]
        + np.isnan(X[:, 0]) * 3.0
        + (X[:, 2] == 4)
    )
    dtrain = xgb.DMatrix(X, y, feature_types=["c", "q", "c"], enable_categorical=True)
    params = {"max_depth": 4, "tree_method": "hist", "max_cat_to_onehot": request.param,
              "seed": 0, "nthread": 1}  # fmt: skip
    booster = xgb.train(params, dtrain, 12)
    folder = tmp_path_factory.mktemp("categorical")
    booster.save_model(folder / "model.json")
    booster.save_model(folder / "model.ubj")
    return booster, folder, X


@pytest.mark.parametrize("fmt", ["json", "ubj"])
def test_categorical_splits_agree_with_xgboost(categorical_model, fmt):
    booster, folder, X = categorical_model
    forest = kernels.load_model(folder / f"model.{fmt}", cache=False)
    assert forest.has_categorical
    assert set(forest.categorical[forest.categorical != 0]) == {3}
    kernel = kernels.compile_model(forest, backend="numba")
    rng = np.random.default_rng(32)
    probes = np.zeros((len(PROBES) * 7, 3), np.float32)
    probes[:, 0] = np.repeat(PROBES, 7)
    probes[:, 1] = rng.normal(size=probes.shape[0])
    probes[:, 2] = rng.choice([0, 4, 4.5, -1, np.nan, 9], size=probes.shape[0])
    for rows in (X, probes):
        np.testing.assert_allclose(kernel.predict(rows), booster.inplace_predict(rows),
                                   rtol=1e-5, atol=1e-5)  # fmt: skip
        np.testing.assert_allclose(
            kernel.predict(rows, output="margin"),
            booster.inplace_predict(rows, predict_type="margin"),
            rtol=1e-5, atol=1e-5,
        )  # fmt: skip


def test_categorical_forest_picks_the_reference_walk(categorical_model):
    """The CPU backend scores categorical splits with its reference walk; the CUDA backend
    scores them too (its walk, checked in tests/test_cuda_backend.py), so where there is
    no GPU the only refusal is the missing GPU."""
    from kernels._numba_cpu import choose_layout

    _, folder, _ = categorical_model
    forest = kernels.load_model(folder / "model.json", cache=False)
    assert choose_layout(forest) == "reference"
    assert kernels.compile_model(forest, backend="numba").layout == "reference"
