"""scikit-learn loader: estimators and pipelines -> Forest; formats, errors, thresholds.

The agreement of every scikit-learn registry entry (``sk-*`` in
tests/agreement/sk_cases.py: trees, forests, extra trees, gradient and histogram boosting
with NaN and categorical features, pipelines of scalers and imputers, saved as pickle,
joblib, skops and treelite files) with the estimator's own predict is the agreement
suite's. Here: the forest's shape and metadata, the float64 -> float32 threshold rewrite,
and the models and files the loader must refuse.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from agreement.registry import BY_NAME

import kernels
from kernels.loaders import sklearn as sk_loader
from kernels.loaders._sklearn_rules import _first_false
from kernels.loaders._thresholds import float32_above

sklearn = pytest.importorskip("sklearn")
joblib = pytest.importorskip("joblib")
sio = pytest.importorskip("skops.io")

from sklearn.decomposition import PCA  # noqa: E402
from sklearn.ensemble import (  # noqa: E402
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    IsolationForest,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import LinearRegression, RidgeClassifier  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import (  # noqa: E402
    FunctionTransformer,
    StandardScaler,
)
from sklearn.tree import DecisionTreeClassifier  # noqa: E402

N_ROWS, N_FEATURES = 300, 5


def make_data(seed: int, *, nan: bool, categorical: int | None = None) -> np.ndarray:
    """float32 features: normal columns, one integer-valued column, 10% NaN when asked;
    column ``categorical`` holds integer categories 0..5."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N_ROWS, N_FEATURES)).astype(np.float32)
    X[:, 3] = rng.integers(-3, 4, N_ROWS)
    if categorical is not None:
        X[:, categorical] = rng.integers(0, 6, N_ROWS)
    if nan:
        X[rng.random(X.shape) < 0.1] = np.nan
    return X


def targets(X: np.ndarray, kind: str) -> np.ndarray:
    Z = np.nan_to_num(X)
    score = Z[:, 0] + 0.5 * Z[:, 1] ** 2 - 0.3 * Z[:, 3] + np.isnan(X[:, 2])
    return (score > np.median(score)).astype(int) if kind == "binary" else 10 * score


def save(estimator: Any, stem: Path) -> dict[str, Path]:
    paths = {fmt: stem.with_suffix(f".{fmt}") for fmt in ("pkl", "joblib", "skops")}
    paths["pkl"].write_bytes(pickle.dumps(estimator))
    joblib.dump(estimator, paths["joblib"], compress=3)
    sio.dump(estimator, paths["skops"])
    return paths


def estimator(zoo, name: str) -> Any:
    return zoo.trained(BY_NAME[f"sk-{name}"]).model


def test_forest_shape_and_metadata(zoo) -> None:
    binary = sk_loader.forest_from_estimator(estimator(zoo, "forest-binary"))
    assert (binary.num_trees, binary.num_outputs, binary.link) == (15, 1, "identity")
    multi = sk_loader.forest_from_estimator(estimator(zoo, "forest-multiclass"))
    assert (multi.num_trees, multi.num_outputs) == (30, 3)  # one copy of a tree per class
    np.testing.assert_array_equal(multi.tree_group, np.tile([0, 1, 2], 10))
    assert multi.metadata["classes"] == '["0", "1", "2"]'
    gb = sk_loader.forest_from_estimator(estimator(zoo, "gb-multiclass"))
    assert (gb.link, gb.num_outputs, gb.objective) == ("softmax", 3, "log_loss")
    hgb = sk_loader.forest_from_estimator(estimator(zoo, "hgb-poisson"))
    assert hgb.link == "exp"
    assert binary.feature_names == tuple(f"f{i}" for i in range(N_FEATURES))
    assert binary.metadata["estimator"] == "sklearn.ensemble._forest.RandomForestClassifier"


def test_feature_names_in_become_feature_names(zoo) -> None:
    model = pickle.loads(pickle.dumps(estimator(zoo, "gb-binary")))
    names = np.array(["age", "tenure", "spend", "visits", "region"], dtype=object)
    model.feature_names_in_ = names  # what fitting on a DataFrame sets
    assert sk_loader.forest_from_estimator(model).feature_names == tuple(names)


def test_hgb_categorical_splits_both_missing_directions(zoo) -> None:
    """The registry's categorical model splits with NaN (and unknown categories) going
    left, which the IR writes with swapped children, and going right."""
    model = estimator(zoo, "hgb-categorical")
    nodes = np.concatenate([p.nodes for iteration in model._predictors for p in iteration])
    split = (nodes["is_categorical"] == 1) & (nodes["is_leaf"] == 0)
    assert set(nodes["missing_go_to_left"][split]) == {0, 1}
    forest = sk_loader.forest_from_estimator(model)
    assert (forest.categorical != 0).sum() == split.sum()
    assert set(forest.categorical[forest.categorical != 0]) == {2}  # whole numbers only
    assert set(forest.feature[forest.categorical != 0]) == {2}


# --- the threshold rewrite ---------------------------------------------------------------

F32_MAX = float(np.finfo(np.float32).max)
EDGE_THRESHOLDS = np.array(
    [
        0.0, -0.0, 1.0, -1.0, 0.1, -0.1, 0.5, 1 / 3, 2.5, 16777216.0, 16777217.0,
        F32_MAX, -F32_MAX, F32_MAX * 1.0000001, -F32_MAX * 1.0000001, 1e300, -1e300,
        1e-45, 1.4e-45, 5e-324, -5e-324, 1e-40, float(np.float32(0.1)),
        float(np.nextafter(np.float32(0.1), np.float32(1))) - 1e-17, np.inf, -np.inf,
    ]
)  # fmt: skip


def float32_around(t: np.ndarray) -> np.ndarray:
    """float32 values at and around float64 thresholds: nearest, and 2 steps either side."""
    with np.errstate(over="ignore"):
        near = t.astype(np.float32)
        out = [near]
        for direction in (-np.inf, np.inf):
            step = near
            for _ in range(2):
                step = np.nextafter(step, np.float32(direction))
                out.append(step)
    return np.concatenate([*out, np.array([np.inf, -np.inf, 0.0, -0.0], np.float32)])


def test_float32_above_is_exact_on_edges() -> None:
    rng = np.random.default_rng(0)
    random = np.concatenate(
        [rng.normal(size=200), rng.normal(size=200) * 1e30, rng.normal(size=200) * 1e-40]
    )
    for t in np.concatenate([EDGE_THRESHOLDS, random]):
        above = float32_above(np.array([t]))[0]
        assert above.dtype == np.float32
        x = float32_around(np.array([t]))
        if t == np.inf:  # x <= +inf has no float32 "x < t'" form: only x = +inf differs
            assert above == np.inf
            x = x[x != np.inf]
        else:
            assert above > t
        np.testing.assert_array_equal(x < above, x.astype(np.float64) <= t, err_msg=repr(t))


def test_float32_above_is_vectorised_and_known_values() -> None:
    got = float32_above(np.array([1.0, 0.1, F32_MAX, 1e300, -np.inf, 0.0]))
    expected = [
        np.nextafter(np.float32(1), np.float32(2)),
        np.float32(0.1),  # float32(0.1) > 0.1
        np.inf,
        np.inf,
        -np.float32(F32_MAX),
        np.float32(1.4e-45),  # the smallest subnormal
    ]
    np.testing.assert_array_equal(got, np.array(expected, np.float32))


def test_binary_search_matches_the_closed_form() -> None:
    """The pipeline search with no transform finds exactly :func:`_float32_above`."""
    rng = np.random.default_rng(1)
    finite = EDGE_THRESHOLDS[np.abs(EDGE_THRESHOLDS) < F32_MAX]
    t = np.concatenate([finite, rng.normal(size=100) * 10.0 ** rng.integers(-30, 30, 100)])
    found = _first_false(lambda x: x.astype(np.float64) <= t, t.shape[0])
    np.testing.assert_array_equal(found, float32_above(t))


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["pkl", "joblib"])
def test_pickles_need_trust(zoo, fmt: str) -> None:
    path = zoo.trained(BY_NAME["sk-tree-binary"]).files[fmt]
    with pytest.raises(kernels.UntrustedModelError, match="trust"):
        kernels.load_model(path)


def fitted(estimator: Any, kind: str = "binary", **data: Any) -> Any:
    X = make_data(0, nan=False, **data)
    return estimator.fit(X, targets(X, kind))


@pytest.mark.parametrize(
    ("make", "match", "fmt"),
    [
        # skops refuses KNN's KDTree as an untrusted type (a ModelFormatError)
        (lambda: fitted(KNeighborsClassifier()), "KNeighborsClassifier", "pkl"),
        (lambda: fitted(IsolationForest(n_estimators=5, random_state=0)), "IsolationForest", "pkl"),
        (
            lambda: fitted(IsolationForest(n_estimators=5, random_state=0)),
            "IsolationForest",
            "skops",
        ),
        # linear models have their own suite (test_sklearn_linear.py); not this one
        (lambda: fitted(RidgeClassifier()), "RidgeClassifier: this linear model", "pkl"),
        (lambda: fitted(RidgeClassifier()), "RidgeClassifier: this linear model", "skops"),
        (lambda: fitted(RidgeClassifier()), "RidgeClassifier: this linear model", "joblib"),
    ],
    ids=["knn-pkl", "iforest-pkl", "iforest-skops", "ridgec-pkl", "ridgec-skops", "ridgec-joblib"],
)
def test_unsupported_estimator_names_class_and_path(
    tmp_path: Path, make: Callable[[], Any], match: str, fmt: str
) -> None:
    path = save(make(), tmp_path / "model")[fmt]
    with pytest.raises(kernels.UnsupportedModelError, match=match) as info:
        kernels.load_model(path, trust_pickle=True, cache=False)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: make_pipeline(PCA(2), DecisionTreeClassifier()), "PCA"),
        (
            lambda: make_pipeline(SimpleImputer(add_indicator=True), DecisionTreeClassifier()),
            "SimpleImputer",
        ),
        (lambda: make_pipeline(SimpleImputer(missing_values=0.0), DecisionTreeClassifier()), "nan"),
        (
            lambda: make_pipeline(
                StandardScaler(),
                HistGradientBoostingClassifier(max_iter=2, categorical_features=[4]),
            ),
            "categorical splits behind",
        ),
        (lambda: RandomForestRegressor(2, max_depth=2), "multi-output"),
        (lambda: GradientBoostingRegressor(init=LinearRegression(), n_estimators=2), "init"),
        (lambda: DecisionTreeClassifier(max_depth=2), "single class"),
    ],
    ids=["pca", "indicator", "imputer-zero", "cat-pipeline", "multi-output", "init", "one-class"],
)
def test_unsupported_model_features(make: Callable[[], Any], match: str) -> None:
    X = make_data(0, nan=False, categorical=4)
    y = targets(X, "binary")
    if match == "multi-output":
        y = np.stack([y, y], axis=1)
    elif match == "single class":
        y = np.zeros_like(y)
    with pytest.raises(kernels.UnsupportedModelError, match=match):
        sk_loader.forest_from_estimator(make().fit(X, y))


def test_hgb_non_integer_categories_unsupported() -> None:
    X = make_data(0, nan=False, categorical=4)
    X[:, 4] += 0.5
    est = HistGradientBoostingClassifier(max_iter=2, categorical_features=[4])
    with pytest.raises(kernels.UnsupportedModelError, match="integers"):
        sk_loader.forest_from_estimator(est.fit(X, targets(X, "binary")))


@pytest.mark.parametrize(
    "payload",
    [pickle.dumps({"not": "a model"}), pickle.dumps(np.zeros(3)), b"\x80\x04garbage"],
    ids=["dict", "array", "corrupt"],
)
def test_pickle_of_a_non_model(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "thing.pkl"
    path.write_bytes(payload)
    with pytest.raises(kernels.ModelFormatError, match=str(path)):
        kernels.load_model(path, trust_pickle=True, cache=False)


def test_skops_untrusted_type_is_refused(tmp_path: Path) -> None:
    X = make_data(0, nan=False)
    pipe = make_pipeline(FunctionTransformer(np.ndarray.copy), DecisionTreeClassifier())
    path = tmp_path / "model.skops"
    sio.dump(pipe.fit(X, targets(X, "binary")), path)
    untrusted = sio.get_untrusted_types(file=path)
    assert untrusted  # the transformer's function is not a type skops trusts
    with pytest.raises(kernels.ModelFormatError, match="does not trust") as info:
        kernels.load_model(path, cache=False)
    assert untrusted[0] in str(info.value)


def test_corrupt_skops_file(tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    path.write_bytes(b"PK\x03\x04" + b"\0" * 64)
    with pytest.raises(kernels.ModelFormatError, match="skops"):
        kernels.load_model(path, cache=False)


def test_pickled_xgboost_model_uses_the_xgboost_loader(tmp_path: Path) -> None:
    xgb = pytest.importorskip("xgboost")
    X = make_data(0, nan=True)
    est = xgb.XGBClassifier(n_estimators=5, max_depth=3).fit(X, targets(X, "binary"))
    path = tmp_path / "xgb.pkl"
    path.write_bytes(pickle.dumps(est))
    forest = kernels.load_model(path, trust_pickle=True, cache=False)
    assert forest.source_format == "xgboost-json"
    got = kernels.compile_model(forest, backend="numba").predict(X)
    np.testing.assert_allclose(got, est.predict_proba(X)[:, 1], atol=1e-6)
