"""XGBoost multiclass models: one output column per class, class intercepts as margins.

``multi:softprob`` predicts the softmax of the per-class margins, ``multi:softmax`` the
index of the largest. Tolerances as in ``test_kernel_agreement.py``: margins 1e-5,
probabilities 1e-6 absolute.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

import kernels
from kernels._numba_cpu import CpuLauncher


@pytest.fixture(scope="module", params=["multi:softprob", "multi:softmax"])
def multiclass(request, tmp_path_factory) -> tuple[xgb.Booster, Path, np.ndarray]:
    rng = np.random.default_rng(21)
    X = rng.normal(size=(900, 6)).astype(np.float32)
    X[rng.random(X.shape) < 0.15] = np.nan
    y = (np.nan_to_num(X[:, 0]) > 0).astype(int) + (np.nan_to_num(X[:, 1]) > 0.5)
    booster = xgb.train(
        {"objective": request.param, "num_class": 3, "max_depth": 4, "seed": 0, "nthread": 1},
        xgb.DMatrix(X, y), 12,
    )  # fmt: skip
    path = tmp_path_factory.mktemp("multiclass") / "model.ubj"
    booster.save_model(path)
    return booster, path, X


def hard_rows(booster: xgb.Booster, X: np.ndarray) -> np.ndarray:
    """Random rows, NaN, +-inf, and every split threshold with its float32 neighbours."""
    rng = np.random.default_rng(22)
    doc = json.loads(booster.save_raw("json"))
    splits = [
        (f, c)
        for tree in doc["learner"]["gradient_booster"]["model"]["trees"]
        for f, c, left in zip(tree["split_indices"], tree["split_conditions"],
                              tree["left_children"], strict=True)
        if left != -1
    ]  # fmt: skip
    rows = [X, np.full((3, X.shape[1]), np.nan, np.float32)]
    for f, t in splits:
        t32 = np.float32(t)
        for v in (
            t32,
            np.nextafter(t32, np.float32(-np.inf)),
            np.nextafter(t32, np.float32(np.inf)),
        ):
            row = rng.normal(size=X.shape[1]).astype(np.float32)
            row[f] = v
            rows.append(row[None, :])
    out = np.concatenate(rows).astype(np.float32)
    out[rng.random(out.shape) < 0.03] = np.inf
    out[rng.random(out.shape) < 0.03] = -np.inf
    return out


@pytest.mark.parametrize("layout", ["perfect", "sparse", "reference"])
def test_multiclass_agrees_with_xgboost(multiclass, layout):
    booster, path, X = multiclass
    forest = kernels.load_model(path, cache=False)
    assert forest.num_outputs == 3
    assert sorted(set(forest.tree_group.tolist())) == [0, 1, 2]
    kernel = kernels.Kernel(forest, backend="numba", launcher=CpuLauncher(forest, layout=layout))
    rows = hard_rows(booster, X)
    margin = kernel.predict(rows, output="margin")
    assert margin.shape == (rows.shape[0], 3)
    np.testing.assert_allclose(
        margin, booster.inplace_predict(rows, predict_type="margin"), rtol=1e-5, atol=1e-5
    )
    expected = booster.inplace_predict(rows)
    got = kernel.predict(rows)
    assert got.shape == expected.shape and got.dtype == np.float32
    if forest.link == "softmax":
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
        np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-6)
    else:
        np.testing.assert_array_equal(got, expected)


def test_compile_model_default_is_exact_too(multiclass):
    booster, path, X = multiclass
    kernel = kernels.compile_model(kernels.load_model(path, cache=False), backend="numba")
    rows = hard_rows(booster, X)
    np.testing.assert_allclose(kernel.predict(rows), booster.inplace_predict(rows), atol=1e-6)
