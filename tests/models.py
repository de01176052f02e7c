"""Registry of the XGBoost models the kernel tests score, trained at test time from fixed seeds.

Every entry is small (a few hundred rows, 10-30 trees, depth 3-6) so the whole registry
trains in well under a second on two cores. Each trained model is saved twice, as
``<name>.json`` and ``<name>.ubj``, so loaders and kernels are checked on both formats.

Training data (see :func:`make_data`) mixes continuous columns, integer-valued columns (so
split thresholds land exactly on values integer inputs can take) and about 15% NaN with a
column-dependent rate (so trees learn both default directions).

Use :func:`train_all` (the session fixtures in ``tests/conftest.py`` call it once), then
``TrainedModel.booster``, ``.path("json" | "ubj")`` and ``.X``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

#: The file formats every registry model is saved in (the suffix ``Booster.save_model`` keys on).
FORMATS = ("json", "ubj")

#: Names given to the columns of models trained "with feature names".
_FEATURE_NAMES = ("age", "tenure_days", "spend_30d", "visits", "region_code", "plan_tier", "score")


@dataclass(frozen=True)
class ModelSpec:
    """How to train one registry model.

    Attributes
    ----------
    name
        Registry key and file stem, also the pytest id.
    objective
        XGBoost objective.
    n_trees, max_depth
        Boosting rounds and tree depth limit.
    feature_names
        Train with ``DMatrix(feature_names=...)`` (else XGBoost's default ``f0..fN-1``).
    seed
        Seed for the training data and for XGBoost.
    n_rows, n_features
        Training matrix shape; the last two columns are integer-valued.
    params
        Extra XGBoost parameters, as ``(key, value)`` pairs.
    """

    name: str
    objective: str
    n_trees: int
    max_depth: int
    feature_names: bool = False
    seed: int = 0
    n_rows: int = 400
    n_features: int = 6
    params: tuple[tuple[str, Any], ...] = ()

    def xgb_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "objective": self.objective,
            "max_depth": self.max_depth,
            "eta": 0.3,
            "seed": self.seed,
            "nthread": 1,
            "tree_method": "hist",
        }
        params.update(self.params)
        return params

    def names(self) -> list[str] | None:
        return list(_FEATURE_NAMES[: self.n_features]) if self.feature_names else None


SPECS: tuple[ModelSpec, ...] = (
    ModelSpec("binary-logistic", "binary:logistic", n_trees=20, max_depth=4, seed=1),
    ModelSpec(
        "binary-logistic-named",
        "binary:logistic",
        n_trees=30,
        max_depth=6,
        feature_names=True,
        seed=2,
        n_features=7,
    ),
    ModelSpec("binary-logitraw", "binary:logitraw", n_trees=15, max_depth=3, seed=3),
    ModelSpec("reg-squarederror", "reg:squarederror", n_trees=25, max_depth=5, seed=4),
    ModelSpec(
        "reg-squarederror-named-exact",
        "reg:squarederror",
        n_trees=20,
        max_depth=4,
        feature_names=True,
        seed=5,
        params=(("tree_method", "exact"),),
    ),
    # A large min_split_loss prunes later trees down to a lone leaf (depth 0).
    ModelSpec(
        "reg-squarederror-stumps",
        "reg:squarederror",
        n_trees=10,
        max_depth=3,
        seed=6,
        params=(("min_split_loss", 200.0),),
    ),
    ModelSpec("reg-logistic", "reg:logistic", n_trees=20, max_depth=4, seed=7),
    ModelSpec("count-poisson", "count:poisson", n_trees=20, max_depth=4, seed=8),
    ModelSpec(
        "count-poisson-named",
        "count:poisson",
        n_trees=15,
        max_depth=5,
        feature_names=True,
        seed=9,
        params=(("tree_method", "approx"),),
    ),
    # Loss-guided growth numbers nodes in best-first order, not level by level.
    ModelSpec(
        "reg-gamma-lossguide",
        "reg:gamma",
        n_trees=20,
        max_depth=5,
        seed=10,
        params=(("grow_policy", "lossguide"), ("max_leaves", 12)),
    ),
    ModelSpec(
        "reg-tweedie",
        "reg:tweedie",
        n_trees=20,
        max_depth=4,
        seed=11,
        params=(("tweedie_variance_power", 1.4),),
    ),
    ModelSpec("reg-absoluteerror", "reg:absoluteerror", n_trees=20, max_depth=5, seed=12),
)

NAMES: tuple[str, ...] = tuple(spec.name for spec in SPECS)
SPECS_BY_NAME: dict[str, ModelSpec] = {spec.name: spec for spec in SPECS}


@dataclass
class TrainedModel:
    """A registry model after training: the booster, its saved files and its training data."""

    spec: ModelSpec
    booster: xgb.Booster
    X: np.ndarray
    y: np.ndarray
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    def path(self, fmt: str) -> Path:
        """The saved model file for ``fmt`` (``"json"`` or ``"ubj"``)."""
        return self.paths[fmt]

    def model_json(self) -> dict[str, Any]:
        """The model as XGBoost serialises it (parsed JSON), independent of lakescore."""
        return json.loads(bytes(self.booster.save_raw("json")))


def make_data(spec: ModelSpec) -> tuple[np.ndarray, np.ndarray]:
    """Training matrix (float32, with NaN) and labels suited to ``spec.objective``."""
    rng = np.random.default_rng(spec.seed)
    n, d = spec.n_rows, spec.n_features
    X = rng.normal(size=(n, d)).astype(np.float32)
    X[:, -2] = rng.integers(0, 5, size=n)  # integer-valued: thresholds land on integers
    X[:, -1] = rng.integers(-3, 4, size=n)
    # Missing values at a column-dependent rate, correlated with the label through `lin`.
    filled = np.nan_to_num(X)
    lin = filled[:, 0] + 0.5 * filled[:, 1] ** 2 - 0.8 * filled[:, 2] + 0.3 * filled[:, -2]
    missing_rate = np.linspace(0.05, 0.3, d)
    X[rng.random((n, d)) < missing_rate] = np.nan
    lin = lin + 0.5 * np.isnan(X[:, 0])
    y = _labels(spec.objective, lin, rng)
    return X, y


def _labels(objective: str, lin: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = lin.shape[0]
    if objective in ("binary:logistic", "binary:logitraw"):
        return (lin + rng.logistic(size=n) > 0.3).astype(np.float64)
    if objective == "reg:logistic":
        return 1.0 / (1.0 + np.exp(-lin))
    if objective == "count:poisson":
        return rng.poisson(np.exp(0.4 * lin)).astype(np.float64)
    if objective == "reg:gamma":
        return rng.gamma(2.0, np.exp(0.3 * lin))
    if objective == "reg:tweedie":
        return rng.poisson(np.exp(0.3 * lin)) * rng.gamma(2.0, 1.0, n)
    if objective == "reg:absoluteerror":
        return 3.0 * lin + rng.standard_t(2, n)
    return 3.0 * lin + rng.normal(size=n)


def train(spec: ModelSpec) -> TrainedModel:
    """Train ``spec`` (deterministic for a given seed); nothing is saved yet."""
    X, y = make_data(spec)
    dtrain = xgb.DMatrix(X, label=y, feature_names=spec.names(), missing=np.nan)
    booster = xgb.train(spec.xgb_params(), dtrain, num_boost_round=spec.n_trees)
    return TrainedModel(spec=spec, booster=booster, X=X, y=y)


def save(model: TrainedModel, directory: Path) -> TrainedModel:
    """Save ``model`` as ``<name>.json`` and ``<name>.ubj`` under ``directory``."""
    for fmt in FORMATS:
        path = directory / f"{model.name}.{fmt}"
        model.booster.save_model(path)
        model.paths[fmt] = path
    return model


def train_all(directory: Path, specs: Iterable[ModelSpec] = SPECS) -> dict[str, TrainedModel]:
    """Train and save every spec; returns the models by name."""
    return {spec.name: save(train(spec), directory) for spec in specs}


#: Models lakescore refuses, by :func:`train_unsupported` kind, with the reason it gives.
UNSUPPORTED = {
    "ranking": "rank:pairwise",
    "gblinear": "gblinear",
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
    else:
        raise ValueError(f"unknown unsupported-model kind {kind!r}")
    booster = xgb.train(params, dtrain, num_boost_round=3)
    path = directory / f"unsupported-{kind}.{fmt}"
    booster.save_model(path)
    return path


# --- reading the model as XGBoost wrote it (independent of kernels.loaders) ---------------


def xgb_trees(model_json: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``trees`` list of a parsed XGBoost JSON model."""
    return model_json["learner"]["gradient_booster"]["model"]["trees"]


def thresholds_by_feature(model_json: dict[str, Any], n_features: int) -> list[np.ndarray]:
    """The distinct float32 split thresholds of each feature, sorted (empty if never split)."""
    found: list[set[float]] = [set() for _ in range(n_features)]
    for tree in xgb_trees(model_json):
        left = np.asarray(tree["left_children"])
        cond = np.asarray(tree["split_conditions"], dtype=np.float64).astype(np.float32)
        feat = np.asarray(tree["split_indices"])
        for node in np.flatnonzero(left >= 0):
            found[int(feat[node])].add(float(cond[node]))
    return [np.array(sorted(values), dtype=np.float32) for values in found]


def leaf_values(model_json: dict[str, Any]) -> list[np.ndarray]:
    """Per tree, the leaf value of every node id (XGBoost stores it in split_conditions)."""
    return [
        np.asarray(tree["split_conditions"], dtype=np.float64).astype(np.float32)
        for tree in xgb_trees(model_json)
    ]


def tree_depths(model_json: dict[str, Any]) -> list[int]:
    """Depth of each tree (a lone leaf has depth 0), walked from XGBoost's own node ids."""
    depths = []
    for tree in xgb_trees(model_json):
        left, right = tree["left_children"], tree["right_children"]
        deepest, stack = 0, [(0, 0)]
        while stack:
            node, depth = stack.pop()
            deepest = max(deepest, depth)
            if left[node] >= 0:
                stack.extend([(left[node], depth + 1), (right[node], depth + 1)])
        depths.append(deepest)
    return depths


def reachable_nodes(model_json: dict[str, Any]) -> int:
    """Number of nodes reachable from the roots, over all trees."""
    total = 0
    for tree in xgb_trees(model_json):
        left, right = tree["left_children"], tree["right_children"]
        stack = [0]
        while stack:
            node = stack.pop()
            total += 1
            if left[node] >= 0:
                stack.extend([left[node], right[node]])
    return total
