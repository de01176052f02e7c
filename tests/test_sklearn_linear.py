"""scikit-learn linear models: ``intercept + coef . x`` as a forest with no trees.

Their agreement with the estimators' own predict (logistic regression, binary and
multinomial, linear regression, ridge, lasso, behind scalers) is the agreement suite's
(tests/agreement/sk_cases.py). Here: what the loader makes of them and what it refuses.
"""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
from sklearn.linear_model import Lasso, LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler

import kernels


def data(seed: int = 0, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(n, 5)) * [1, 10, 0.1, 100, 3] + [0, 5, 0, -50, 1]).astype(np.float32)
    score = X[:, 0] - 0.2 * X[:, 1] + 4 * X[:, 2] + 0.01 * X[:, 3]
    return X, score


def fitted(kind: str):
    X, score = data()
    if kind == "logistic-binary":
        return LogisticRegression().fit(X, score > 0)
    if kind == "logistic-multiclass":
        return LogisticRegression(max_iter=2000).fit(X, np.digitize(score, [-1, 1]))
    if kind == "linear":
        return LinearRegression().fit(X, score)
    if kind == "ridge":
        return Ridge(alpha=2.0).fit(X, score)
    if kind == "lasso":
        return Lasso(alpha=0.01).fit(X, score)
    if kind == "scaled-logistic":
        return make_pipeline(StandardScaler(), LogisticRegression()).fit(X, score > 0)
    if kind == "scaled-ridge":
        steps = [MinMaxScaler(), MaxAbsScaler(), RobustScaler(), Ridge()]
        return make_pipeline(*steps).fit(X, score)
    raise ValueError(kind)


def test_skops_file_of_a_scaled_logistic_regression(tmp_path):
    import skops.io

    model = fitted("scaled-logistic")
    path = tmp_path / "model.skops"
    skops.io.dump(model, path)
    forest = kernels.load_model(path, cache=False)  # skops: no trust flag needed
    assert forest.metadata["pipeline"] == "StandardScaler"
    assert forest.num_trees == 0 and forest.has_linear and forest.link == "sigmoid"


def test_imputer_before_a_linear_model_is_refused():
    from sklearn.impute import SimpleImputer

    X, score = data()
    model = make_pipeline(SimpleImputer(), LinearRegression()).fit(X, score)
    with pytest.raises(kernels.UnsupportedModelError, match="SimpleImputer"):
        kernels.load_model(model)


def test_in_memory_and_pickled_give_one_forest():
    model = fitted("ridge")
    buffer = io.BytesIO()
    pickle.dump(model, buffer)
    assert (
        kernels.load_model(model).fingerprint()
        == kernels.loaders.sklearn.load_pickle(buffer.getvalue()).fingerprint()
    )
