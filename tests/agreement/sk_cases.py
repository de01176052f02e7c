"""scikit-learn registry entries: trees, forests, gradient boosting, histogram boosting (NaN
and categorical), linear and logistic regression, and pipelines of scalers and imputers.

Saved as a pickle and a joblib file (loaded with ``trust_pickle=True``), as a skops file
(loaded without it), and NaN-free tree models also as treelite checkpoints. Native
predict: ``predict_proba`` (its positive column for binary classifiers) or ``predict``;
margins: the boosted models' raw sums (``_raw_predict``, twice it for the exponential
loss, whose link is ``sigmoid(2 * raw)``; for a pipeline, on the transformed rows) and
``decision_function`` of logistic regression.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import skops.io as sio
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Lasso, LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from agreement.data import TrainData
from agreement.registry import Format, ModelCase


def _save_pickle(model: Any, path: Path) -> None:
    path.write_bytes(pickle.dumps(model))


def _save_joblib(model: Any, path: Path) -> None:
    joblib.dump(model, path, compress=3)


def _save_skops(model: Any, path: Path) -> None:
    sio.dump(model, path)


def _save_treelite(model: Any, path: Path) -> None:
    import treelite

    treelite.sklearn.import_model(model).serialize(str(path))


def _without_nan(X: np.ndarray) -> np.ndarray:
    """treelite imports scikit-learn trees without their missing-value routing."""
    return ~np.isnan(X).any(axis=1)


PICKLES = {
    "pkl": Format(".pkl", _save_pickle, trust_pickle=True),
    "joblib": Format(".joblib", _save_joblib, trust_pickle=True),
    "skops": Format(".skops", _save_skops),
}
TREELITE = Format(".tl", _save_treelite, comparable=_without_nan)


def predict(model: Any, X: np.ndarray) -> np.ndarray:
    """``predict_proba`` (its positive column for binary classifiers), else ``predict``."""
    if hasattr(model, "predict_proba"):
        proba = model.predict_proba(X)
        return proba[:, 1] if proba.shape[1] == 2 else proba
    return model.predict(X)


def _final(model: Any) -> tuple[Any, Callable[[np.ndarray], np.ndarray]]:
    """The model's last step and the transform of the steps before it."""
    if hasattr(model, "steps"):
        return model.steps[-1][1], model[:-1].transform
    return model, lambda X: X


def boosted_margin(model: Any, X: np.ndarray) -> np.ndarray:
    final, transform = _final(model)
    Xt = transform(X)
    if isinstance(final, GradientBoostingClassifier | GradientBoostingRegressor):
        raw = final._raw_predict(np.asarray(Xt, dtype=np.float32))
        raw = raw * 2.0 if final.loss == "exponential" else raw
    else:
        raw = final._raw_predict(Xt)
    return raw[:, 0] if raw.shape[1] == 1 else raw


def linear_predict(model: Any, X: np.ndarray) -> np.ndarray:
    """Linear models score the float32 rows widened to float64: given float32, sklearn
    keeps them float32 through scalers and dot products and rounds each step (about
    ``d * 2**-24 * sum |w_j x_j|``); the kernel's float64 sum is what those steps
    approximate."""
    return predict(model, X.astype(np.float64))


def linear_margin(model: Any, X: np.ndarray) -> np.ndarray:
    final, _ = _final(model)
    X = X.astype(np.float64)
    return model.decision_function(X) if hasattr(final, "decision_function") else model.predict(X)


TREES = TrainData(n_rows=300, n_features=5, nan=0.0)
TREES_NAN = TrainData(n_rows=300, n_features=5, nan=0.15)
CATEGORICAL = TrainData(n_rows=300, n_features=5, nan=0.15, categorical=(2,))
#: Columns on very different scales, so folding scalers into coefficients matters.
LINEAR = TrainData(n_rows=400, n_features=5, nan=0.0,
                   scale=((1, 0), (10, 5), (0.1, 0), (100, -50), (3, 1)))  # fmt: skip


def case(
    name: str,
    make: Callable[[], Any],
    target: str,
    *,
    seed: int,
    train: TrainData = TREES,
    margin: Callable[[Any, np.ndarray], np.ndarray] | None = None,
    inf: bool = False,
    nan: bool | None = None,
    treelite: bool = False,
) -> ModelCase:
    """An estimator (or pipeline) ``make()`` fitted on ``train``; ``inf``: its predict
    accepts +-inf (histogram boosting only); ``nan``: it accepts NaN (default: where it was
    trained with NaN; trees trained without any send NaN to their larger child)."""
    linear = train is LINEAR
    classifier = target in ("binary", "multiclass")
    output = "probability" if classifier else "value"
    if target == "positive":
        output = "positive"
    return ModelCase(
        name=f"sk-{name}",
        family="sklearn",
        objective=name,
        # Linear models are fitted on float64 (as from a pandas frame): see linear_predict.
        fit=lambda X, y: make().fit(
            X.astype(np.float64) if linear else X, y.astype(int) if classifier else y
        ),
        formats=PICKLES | ({"treelite": TREELITE} if treelite else {}),
        predict=linear_predict if linear else predict,
        margin=margin,
        output=output,
        tolerance="linear" if linear else "float64-sum",
        train=train,
        target=target,
        seed=seed,
        nan=train.nan > 0 if nan is None else nan,
        inf=inf,
        category_inf=False,  # sklearn refuses infinite categories
    )


B, M, R = "binary", "multiclass", "regression"

CASES: tuple[ModelCase, ...] = (
    case("tree-binary", lambda: DecisionTreeClassifier(max_depth=6, random_state=1), B,
         seed=1, train=TREES_NAN),
    case("tree-multiclass", lambda: DecisionTreeClassifier(max_depth=5, random_state=2), M,
         seed=2, nan=True),
    case("tree-deep", lambda: DecisionTreeRegressor(random_state=3), R, seed=3,
         train=TREES_NAN),
    case("forest-binary", lambda: RandomForestClassifier(15, max_depth=6, random_state=4), B,
         seed=4, train=TREES_NAN),
    case("forest-multiclass", lambda: RandomForestClassifier(10, max_depth=5, random_state=5),
         M, seed=5, train=TREES_NAN),
    case("forest-multiclass-complete",
         lambda: RandomForestClassifier(5, max_depth=4, random_state=22), M, seed=22,
         nan=True, treelite=True),
    case("forest-regression", lambda: RandomForestRegressor(15, max_depth=8, random_state=6),
         R, seed=6, train=TREES_NAN),
    case("extra-binary", lambda: ExtraTreesClassifier(10, max_depth=6, random_state=7), B,
         seed=7, train=TREES_NAN),
    case("extra-regression", lambda: ExtraTreesRegressor(10, max_depth=6, random_state=8), R,
         seed=8, nan=True, treelite=True),
    case("gb-binary", lambda: GradientBoostingClassifier(n_estimators=20, max_depth=3,
         random_state=9), B, seed=9, margin=boosted_margin, treelite=True),
    case("gb-multiclass", lambda: GradientBoostingClassifier(n_estimators=10, max_depth=3,
         random_state=10), M, seed=10, margin=boosted_margin, treelite=True),
    case("gb-exponential", lambda: GradientBoostingClassifier(loss="exponential",
         n_estimators=15, random_state=11), B, seed=11, margin=boosted_margin),
    case("gb-huber", lambda: GradientBoostingRegressor(loss="huber", n_estimators=20,
         random_state=12), R, seed=12, margin=boosted_margin),
    case("gb-zero-init", lambda: GradientBoostingRegressor(init="zero", n_estimators=20,
         random_state=13), R, seed=13, margin=boosted_margin),
    case("gb-dummy-init", lambda: GradientBoostingClassifier(
         init=DummyClassifier(strategy="prior"), n_estimators=10, random_state=14), B,
         seed=14, margin=boosted_margin),
    case("hgb-binary", lambda: HistGradientBoostingClassifier(max_iter=20, random_state=15),
         B, seed=15, train=TREES_NAN, margin=boosted_margin, inf=True),
    case("hgb-multiclass", lambda: HistGradientBoostingClassifier(max_iter=10,
         random_state=16), M, seed=16, train=TREES_NAN, margin=boosted_margin, inf=True),
    case("hgb-poisson", lambda: HistGradientBoostingRegressor(loss="poisson", max_iter=20,
         random_state=17), "positive", seed=17, train=TREES_NAN, margin=boosted_margin,
         inf=True),
    case("hgb-categorical", lambda: HistGradientBoostingClassifier(max_iter=20,
         categorical_features=[2], random_state=18), B, seed=18, train=CATEGORICAL,
         margin=boosted_margin, inf=True),
    case("pipeline-scaler-tree", lambda: make_pipeline(StandardScaler(),
         DecisionTreeClassifier(max_depth=6, random_state=19)), B, seed=19, nan=True),
    case("pipeline-imputer-scalers-forest", lambda: make_pipeline(
         SimpleImputer(strategy="median"), StandardScaler(), RobustScaler(), MinMaxScaler(),
         MaxAbsScaler(), RandomForestRegressor(10, max_depth=6, random_state=20)), R,
         seed=20, train=TREES_NAN),
    case("pipeline-scaler-hgb", lambda: make_pipeline(StandardScaler(),
         HistGradientBoostingClassifier(max_iter=10, random_state=21)), B, seed=21,
         train=TREES_NAN, margin=boosted_margin),  # StandardScaler refuses +-inf
    # Linear models: intercept + coef . x, scalers folded into the coefficients.
    case("logistic-binary", LogisticRegression, B, seed=30, train=LINEAR,
         margin=linear_margin),
    case("logistic-multiclass", lambda: LogisticRegression(max_iter=2000), M, seed=31,
         train=LINEAR, margin=linear_margin),
    case("linear", LinearRegression, R, seed=32, train=LINEAR, margin=linear_margin),
    case("ridge", lambda: Ridge(alpha=2.0), R, seed=33, train=LINEAR, margin=linear_margin),
    case("lasso", lambda: Lasso(alpha=0.01), R, seed=34, train=LINEAR, margin=linear_margin),
    case("pipeline-scaler-logistic", lambda: make_pipeline(StandardScaler(),
         LogisticRegression()), B, seed=35, train=LINEAR, margin=linear_margin),
    case("pipeline-scalers-ridge", lambda: make_pipeline(MinMaxScaler(), MaxAbsScaler(),
         RobustScaler(), Ridge()), R, seed=36, train=LINEAR, margin=linear_margin),
)  # fmt: skip
