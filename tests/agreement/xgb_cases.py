"""XGBoost registry entries: every objective, categorical splits, the sklearn wrappers.

Saved with ``Booster.save_model`` as JSON and UBJSON (and, where treelite's frontend
takes the model, as a treelite checkpoint). Native predict: ``Booster.inplace_predict``
(``predict_type="margin"`` for margins); routing: ``pred_leaf=True`` with the leaf values
of XGBoost's own JSON. Also the readers of XGBoost's JSON that test_loaders.py checks the
loader against.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

import kernels
from agreement.data import F32_MAX, TrainData
from agreement.registry import Format, ModelCase

NAMES = ("age", "tenure_days", "spend_30d", "visits", "region_code", "plan_tier", "score")
#: objective -> what predict returns
OUTPUT = {
    "binary:logistic": "probability",
    "reg:logistic": "probability",
    "binary:logitraw": "value",
    "reg:squarederror": "value",
    "reg:absoluteerror": "value",
    "count:poisson": "positive",
    "reg:gamma": "positive",
    "reg:tweedie": "positive",
    "multi:softprob": "probability",
    "multi:softmax": "class",
}
#: objective -> training target kind (agreement.data.target)
TARGET = {
    "binary:logistic": "binary",
    "binary:logitraw": "binary",
    "reg:logistic": "unit",
    "reg:squarederror": "regression",
    "reg:absoluteerror": "heavy-tailed",
    "count:poisson": "count",
    "reg:gamma": "positive",
    "reg:tweedie": "tweedie",
    "multi:softprob": "multiclass",
    "multi:softmax": "multiclass",
}


def booster_of(model: Any) -> xgb.Booster:
    return model if isinstance(model, xgb.Booster) else model.get_booster()


def _save(model: Any, path: Path) -> None:
    booster_of(model).save_model(path)


def _save_treelite(model: Any, path: Path) -> None:
    import treelite

    treelite.frontend.from_xgboost(booster_of(model)).serialize(str(path))


JSON = Format(".json", _save)
UBJ = Format(".ubj", _save)
TREELITE = Format(".tl", _save_treelite)


def _predict(model: Any, X: np.ndarray) -> np.ndarray:
    return model.inplace_predict(X)


def _margin(model: Any, X: np.ndarray) -> np.ndarray:
    return booster_of(model).inplace_predict(X, predict_type="margin")


_TABLES: dict[int, tuple[xgb.Booster, list[np.ndarray], list[int]]] = {}


def _leaf_tables(booster: xgb.Booster) -> tuple[list[np.ndarray], list[int]]:
    """Per tree, the float32 leaf value of every node id, and the tree's output column,
    from XGBoost's own JSON (parsed once per booster)."""
    if id(booster) not in _TABLES:
        doc = model_json(booster)
        trees = xgb_trees(doc)
        for tree in trees:
            assert (np.asarray(tree["split_conditions"], np.float64) > -F32_MAX).all()
        values = [np.asarray(t["split_conditions"], np.float64).astype(np.float32) for t in trees]
        groups = [int(g) for g in doc["learner"]["gradient_booster"]["model"]["tree_info"]]
        _TABLES[id(booster)] = (booster, values, groups)
    _, values, groups = _TABLES[id(booster)]
    return values, groups


def routed(model: Any, X: np.ndarray, forest: kernels.Forest) -> np.ndarray:
    """Base margin plus the float64 sum of the leaves XGBoost routes each row to.

    ``DMatrix`` rejects infinities, so +-inf become +-float32 max: that routes alike for
    every threshold but -float32 max (none in the registry: checked) and for categories
    (both are past every category).
    """
    booster = booster_of(model)
    values, groups = _leaf_tables(booster)
    finite = np.where(np.isposinf(X), F32_MAX, np.where(np.isneginf(X), -F32_MAX, X))
    categorical = booster.feature_types is not None and "c" in booster.feature_types
    matrix = xgb.DMatrix(
        finite.astype(np.float32),
        missing=np.nan,
        feature_names=booster.feature_names,
        feature_types=booster.feature_types,
        enable_categorical=categorical,
        nthread=1,
    )
    leaves = booster.predict(matrix, pred_leaf=True).reshape(X.shape[0], -1).astype(np.int64)
    out = np.tile(forest.base_margin, (X.shape[0], 1))
    for t, leaf_values in enumerate(values):
        out[:, groups[t]] += leaf_values[leaves[:, t]].astype(np.float64)
    return out[:, 0] if out.shape[1] == 1 else out


def case(
    name: str,
    objective: str,
    *,
    rounds: int,
    depth: int,
    seed: int,
    params: dict[str, Any] | None = None,
    train: TrainData | None = None,
    treelite: bool = True,
) -> ModelCase:
    """An entry trained with ``xgb.train`` (tree_method hist unless ``params`` say)."""
    train = train or TrainData()
    full = {"objective": objective, "max_depth": depth, "eta": 0.3, "seed": seed,
            "nthread": 1, "tree_method": "hist", **(params or {})}  # fmt: skip
    if objective.startswith("multi:"):
        full["num_class"] = 3

    def fit(X: np.ndarray, y: np.ndarray) -> xgb.Booster:
        types = ["c" if j in train.categorical else "q" for j in range(X.shape[1])]
        matrix = xgb.DMatrix(
            X,
            y,
            missing=np.nan,
            feature_names=list(train.names) if train.names else None,
            feature_types=types if train.categorical else None,
            enable_categorical=bool(train.categorical),
        )
        return xgb.train(full, matrix, rounds)

    formats = {"json": JSON, "ubj": UBJ} | ({"treelite": TREELITE} if treelite else {})
    return ModelCase(
        name=f"xgb-{name}",
        family="xgboost",
        objective=objective,
        fit=fit,
        formats=formats,
        predict=_predict,
        margin=_margin,
        routed=routed,
        output=OUTPUT[objective],
        tolerance="float32-sum",
        train=train,
        target=TARGET[objective],
        seed=seed,
    )


def wrapper_case(name: str, estimator: str, seed: int) -> ModelCase:
    """An sklearn-API wrapper (``XGBClassifier``/``XGBRegressor``), saved with its own
    ``save_model``; native predict is the wrapper's ``predict_proba``/``predict``."""

    def fit(X: np.ndarray, y: np.ndarray) -> Any:
        cls = getattr(xgb, estimator)
        return cls(n_estimators=12, max_depth=4, random_state=seed, n_jobs=1).fit(X, y)

    def predict(model: Any, X: np.ndarray) -> np.ndarray:
        return model.predict_proba(X)[:, 1] if hasattr(model, "predict_proba") else model.predict(X)

    classifier = estimator == "XGBClassifier"
    return ModelCase(
        name=f"xgb-{name}",
        family="xgboost",
        objective="binary:logistic" if classifier else "reg:squarederror",
        fit=fit,
        formats={"json": JSON, "ubj": UBJ},
        predict=predict,
        margin=_margin,
        routed=routed,
        output="probability" if classifier else "value",
        tolerance="float32-sum",
        target="binary" if classifier else "regression",
        seed=seed,
    )


NAMED7 = TrainData(n_features=7, names=NAMES)
CATEGORICAL = TrainData(n_rows=1000, n_features=4, categorical=(0, 2))

CASES: tuple[ModelCase, ...] = (
    case("binary-logistic", "binary:logistic", rounds=20, depth=4, seed=1),
    case("binary-logistic-named", "binary:logistic", rounds=30, depth=6, seed=2, train=NAMED7),
    case("binary-logitraw", "binary:logitraw", rounds=15, depth=3, seed=3),
    case("reg-squarederror", "reg:squarederror", rounds=25, depth=5, seed=4),
    case("reg-squarederror-named-exact", "reg:squarederror", rounds=20, depth=4, seed=5,
         params={"tree_method": "exact"}, train=NAMED7),
    # A large min_split_loss prunes later trees to a lone leaf (depth 0).
    case("reg-squarederror-stumps", "reg:squarederror", rounds=10, depth=3, seed=6,
         params={"min_split_loss": 200.0}),
    # A base_score given by the user, instead of the intercept XGBoost estimates.
    case("reg-squarederror-base-score", "reg:squarederror", rounds=8, depth=3, seed=7,
         params={"base_score": 0.3}),
    case("reg-logistic", "reg:logistic", rounds=20, depth=4, seed=8),
    case("count-poisson", "count:poisson", rounds=20, depth=4, seed=9),
    case("count-poisson-named", "count:poisson", rounds=15, depth=5, seed=10,
         params={"tree_method": "approx"}, train=NAMED7),
    # Loss-guided growth numbers nodes best-first, not level by level.
    case("reg-gamma-lossguide", "reg:gamma", rounds=20, depth=5, seed=11,
         params={"grow_policy": "lossguide", "max_leaves": 12}),
    case("reg-tweedie", "reg:tweedie", rounds=20, depth=4, seed=12,
         params={"tweedie_variance_power": 1.4}),
    case("reg-absoluteerror", "reg:absoluteerror", rounds=20, depth=5, seed=13),
    # Multiclass: one intercept per class (a vector base_score), trees per class.
    case("multi-softprob", "multi:softprob", rounds=12, depth=4, seed=14),
    # (treelite's import turns multi:softmax into softmax probabilities: not its format)
    case("multi-softmax", "multi:softmax", rounds=12, depth=4, seed=15, treelite=False),
    # Categorical splits: partitions (a category set goes right) and one-hot splits.
    case("categorical-partition", "reg:squarederror", rounds=12, depth=4, seed=16,
         params={"max_cat_to_onehot": 1}, train=CATEGORICAL),
    case("categorical-onehot", "binary:logistic", rounds=12, depth=4, seed=17,
         params={"max_cat_to_onehot": 64}, train=CATEGORICAL),
    # Deeper than the complete-tree layout pads: the sparse CPU layout and the CUDA walk.
    case("deep", "reg:squarederror", rounds=4, depth=14, seed=18,
         params={"min_child_weight": 0, "lambda": 0}, train=TrainData(n_rows=3000)),
    wrapper_case("sklearn-classifier", "XGBClassifier", seed=19),
    wrapper_case("sklearn-regressor", "XGBRegressor", seed=20),
)  # fmt: skip


# --- reading the model as XGBoost wrote it (independent of kernels.loaders) ---------------


def model_json(model: Any) -> dict[str, Any]:
    return json.loads(bytes(booster_of(model).save_raw("json")))


def xgb_trees(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``trees`` list of a parsed XGBoost JSON model."""
    return doc["learner"]["gradient_booster"]["model"]["trees"]


def tree_depths(doc: dict[str, Any]) -> list[int]:
    """Depth of each tree (a lone leaf has depth 0), walked from XGBoost's own node ids."""
    depths = []
    for tree in xgb_trees(doc):
        left, right = tree["left_children"], tree["right_children"]
        deepest, stack = 0, [(0, 0)]
        while stack:
            node, depth = stack.pop()
            deepest = max(deepest, depth)
            if left[node] >= 0:
                stack.extend([(left[node], depth + 1), (right[node], depth + 1)])
        depths.append(deepest)
    return depths


def reachable_nodes(doc: dict[str, Any]) -> int:
    """Number of nodes reachable from the roots, over all trees."""
    total = 0
    for tree in xgb_trees(doc):
        left, right = tree["left_children"], tree["right_children"]
        stack = [0]
        while stack:
            node = stack.pop()
            total += 1
            if left[node] >= 0:
                stack.extend([left[node], right[node]])
    return total


#: Models lakescore refuses, by :func:`train_unsupported` kind, with the reason it gives.
UNSUPPORTED = {
    "ranking": "rank:pairwise",
    "gblinear": "gblinear",
    "multi-target": "multi-target",
}


def train_unsupported(kind: str, directory: Path, fmt: str = "json") -> Path:
    """Train and save a tiny model lakescore refuses; ``kind`` is a key of :data:`UNSUPPORTED`."""
    rng = np.random.default_rng(100)
    X = rng.normal(size=(120, 4)).astype(np.float32)
    y = rng.integers(0, 3, size=120)
    params: dict[str, Any] = {"max_depth": 2, "nthread": 1, "seed": 0}
    dtrain = xgb.DMatrix(X, label=y)
    if kind == "ranking":
        params.update(objective="rank:pairwise")
        dtrain.set_group([30, 30, 30, 30])
    elif kind == "gblinear":
        params = {"booster": "gblinear", "objective": "reg:squarederror", "nthread": 1}
    elif kind == "multi-target":
        dtrain = xgb.DMatrix(X, label=np.stack([y, 2 * y], axis=1))
    else:
        raise ValueError(f"unknown unsupported-model kind {kind!r}")
    booster = xgb.train(params, dtrain, num_boost_round=3)
    path = directory / f"unsupported-{kind}.{fmt}"
    booster.save_model(path)
    return path
