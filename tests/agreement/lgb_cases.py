"""LightGBM registry entries: objectives, missing types, zero_as_missing, categorical
bitsets, the ``sigmoid`` parameter, random forests, a custom objective.

Saved as text models (``Booster.save_model``), some also as treelite checkpoints. Native
predict: ``Booster.predict`` (``raw_score=True`` for margins); routing: ``pred_leaf=True``
with the leaf values of ``dump_model()``. Every model is trained on columns with exact
zeros and values inside LightGBM's zero band (``|x| <= float32(1e-35)``), which its
predict reads as 0.0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

import kernels
from agreement.data import ZERO_BAND, TrainData
from agreement.registry import Format, ModelCase

FEATURE_NAMES = ("age", "balance", "visits", "tenure", "spend", "region")
PLAIN = TrainData(zeros=True, names=FEATURE_NAMES)
CATEGORICAL = TrainData(zeros=True, names=FEATURE_NAMES, categorical=(0, 3))


def _save_text(model: lgb.Booster, path: Path) -> None:
    model.save_model(str(path))


def _save_treelite(model: lgb.Booster, path: Path) -> None:
    import treelite

    treelite.frontend.from_lightgbm(model).serialize(str(path))


def outside_zero_band(X: np.ndarray) -> np.ndarray:
    """Rows without a nonzero value in LightGBM's zero band (treelite's import compares
    those values themselves; LightGBM's predict reads them as 0.0)."""
    band = (np.abs(X) <= np.float32(ZERO_BAND)) & (X != 0)
    return ~band.any(axis=1)


def treelite_format(categorical: tuple[int, ...]) -> Format:
    """treelite's import also reads a categorical value in (-1, 0) as no category (right),
    where LightGBM truncates it to category 0: those rows are compared elsewhere only."""

    def comparable(X: np.ndarray) -> np.ndarray:
        cats = X[:, list(categorical)]
        return outside_zero_band(X) & ~((cats > -1) & (cats < 0)).any(axis=1)

    return Format(".tl", _save_treelite, comparable=comparable)


TEXT = Format(".txt", _save_text)


def _walk(node: dict[str, Any]):
    yield node
    for key in ("left_child", "right_child"):
        if key in node:
            yield from _walk(node[key])


def routed(model: lgb.Booster, X: np.ndarray, forest: kernels.Forest) -> np.ndarray:
    """The float64 sum of the leaves LightGBM routes each row to (its base score is folded
    into the first trees' leaves), per output column."""
    tables = []
    for info in model.dump_model()["tree_info"]:
        tables.append(
            {n.get("leaf_index", 0): n["leaf_value"] for n in _walk(info["tree_structure"])
             if "leaf_value" in n}
        )  # fmt: skip
    leaf = model.predict(X, pred_leaf=True).reshape(X.shape[0], -1)
    out = np.zeros((X.shape[0], forest.num_outputs))
    for t, table in enumerate(tables):
        out[:, forest.tree_group[t]] += [table[i] for i in leaf[:, t]]
    return out[:, 0] if out.shape[1] == 1 else out


def _predict(model: lgb.Booster, X: np.ndarray) -> np.ndarray:
    return model.predict(X)


def _margin(model: lgb.Booster, X: np.ndarray) -> np.ndarray:
    return model.predict(X, raw_score=True)


def logloss(preds: np.ndarray, dataset: lgb.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """A Python objective: the saved model has no ``objective=`` line."""
    p = 1.0 / (1.0 + np.exp(-preds))
    return p - dataset.get_label(), p * (1.0 - p)


def case(
    name: str,
    params: dict[str, Any],
    *,
    output: str,
    target: str,
    seed: int,
    rounds: int = 15,
    train: TrainData = PLAIN,
    treelite: bool = False,
) -> ModelCase:
    base = {"verbose": -1, "seed": seed, "num_threads": 1, "min_data_in_leaf": 5,
            "min_data_per_group": 5, "deterministic": True}  # fmt: skip

    def fit(X: np.ndarray, y: np.ndarray) -> lgb.Booster:
        dataset = lgb.Dataset(
            X, y, feature_name=list(FEATURE_NAMES), categorical_feature=list(train.categorical),
            params=base,
        )  # fmt: skip
        return lgb.train({**base, **params}, dataset, rounds)

    objective = params["objective"]
    return ModelCase(
        name=f"lgb-{name}",
        family="lightgbm",
        objective=objective if isinstance(objective, str) else "custom",
        fit=fit,
        formats={"text": TEXT}
        | ({"treelite": treelite_format(train.categorical)} if treelite else {}),
        predict=_predict,
        margin=_margin,
        routed=routed,
        output=output,
        tolerance="float64-sum",
        train=train,
        target=target,
        seed=seed,
    )


PROB, VALUE, POSITIVE = "probability", "value", "positive"
BAGGING = {"boosting": "rf", "bagging_freq": 1, "bagging_fraction": 0.5}

CASES: tuple[ModelCase, ...] = (
    case("binary", {"objective": "binary", "num_leaves": 31}, output=PROB, target="binary",
         seed=0, rounds=20, treelite=True),
    case("regression", {"objective": "regression", "num_leaves": 63}, output=VALUE,
         target="regression", seed=1, treelite=True),
    case("multiclass", {"objective": "multiclass", "num_class": 3, "num_leaves": 15},
         output=PROB, target="multiclass", seed=2, rounds=10, treelite=True),
    case("multiclassova", {"objective": "multiclassova", "num_class": 3, "num_leaves": 15},
         output=PROB, target="multiclass", seed=3, rounds=8),
    case("poisson", {"objective": "poisson", "num_leaves": 15}, output=POSITIVE,
         target="count", seed=4),
    # Missing type None: NaN goes where 0 goes.
    case("no-missing", {"objective": "binary", "use_missing": False, "num_leaves": 31},
         output=PROB, target="binary", seed=5),
    case("zero-as-missing", {"objective": "regression", "zero_as_missing": True,
         "num_leaves": 31}, output=VALUE, target="regression", seed=6),
    # Categorical bitsets: NaN, negative and unseen categories go right.
    case("categorical", {"objective": "binary", "num_leaves": 31, "cat_smooth": 1.0},
         output=PROB, target="binary", seed=7, train=CATEGORICAL, treelite=True),
    case("categorical-no-missing", {"objective": "binary", "use_missing": False,
         "num_leaves": 15}, output=PROB, target="binary", seed=8,
         train=TrainData(zeros=True, names=FEATURE_NAMES, categorical=(3,))),
    # Every tree a lone leaf.
    case("single-leaf", {"objective": "regression", "min_data_in_leaf": 300}, output=VALUE,
         target="regression", seed=9, rounds=3),
    case("regression-l1", {"objective": "regression_l1", "num_leaves": 7}, output=VALUE,
         target="heavy-tailed", seed=10, rounds=5),
    case("huber", {"objective": "huber", "num_leaves": 7}, output=VALUE, target="regression",
         seed=11, rounds=5),
    case("quantile", {"objective": "quantile", "num_leaves": 7}, output=VALUE,
         target="regression", seed=12, rounds=5),
    case("gamma", {"objective": "gamma", "num_leaves": 7}, output=POSITIVE, target="positive",
         seed=13, rounds=5),
    case("tweedie", {"objective": "tweedie", "num_leaves": 7}, output=POSITIVE,
         target="tweedie", seed=14, rounds=5),
    case("cross-entropy", {"objective": "cross_entropy", "num_leaves": 7}, output=PROB,
         target="binary", seed=15, rounds=5),
    # prediction = link(scale * raw): the sigmoid parameter, and random forests' average.
    case("sigmoid-2", {"objective": "binary", "sigmoid": 2.0, "num_leaves": 7}, output=PROB,
         target="binary", seed=16, rounds=6),
    case("rf-binary", {"objective": "binary", "sigmoid": 0.5, "num_leaves": 7, **BAGGING},
         output=PROB, target="binary", seed=17, rounds=6),
    case("rf-regression", {"objective": "regression", "num_leaves": 7, **BAGGING},
         output=VALUE, target="regression", seed=18, rounds=6),
    case("multiclassova-sigmoid", {"objective": "multiclassova", "num_class": 3,
         "sigmoid": 1.5, "num_leaves": 7}, output=PROB, target="multiclass", seed=19,
         rounds=6),
    case("custom-objective", {"objective": logloss, "num_leaves": 7}, output=VALUE,
         target="binary", seed=20, rounds=5),
)  # fmt: skip
