"""scikit-learn models: the compiled kernel agrees with the estimator's own predict.

Every estimator is trained here from a fixed seed, saved as a pickle, a compressed joblib
file and a skops file, loaded with ``kernels.load_model`` (all three and
``forest_from_estimator`` must give the same forest) and compiled with the Numba backend.
The oracle is ``predict_proba[:, 1]`` for binary classifiers, ``predict_proba`` for
multiclass ones and ``predict`` for regressors, plus ``decision_function`` /
``_raw_predict`` for the margins of boosted models, on float32 rows holding: training rows;
for every split, values on the IR threshold and one float32 step either side (the last
value sklearn sends left and the first it sends right); NaN where the estimator accepts it;
+-inf where it accepts them (histogram boosting only); integer categories inside, outside
and around the known ones for categorical splits.

Tolerances
----------
The kernel sums leaves in float64 in another order than sklearn (forests: ``value / n``
summed, where sklearn sums and then divides) and rounds once to float32. Measured over
every model and input here: probabilities differ by at most 3.0e-8, regression values and
margins by at most 5.9e-8 relative, i.e. the final float32 rounding. Hence probabilities
``atol=1e-7``, regression values and margins ``rtol=2**-23`` (one float32 ulp) with
``atol=1e-9`` (for sums that cancel to about 0). A wrong branch moves a prediction by a
leaf difference over the tree count, far above these: rounding thresholds to the nearest
float32 instead of up fails 18 of the 21 agreement cases.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import kernels
from kernels.loaders import sklearn as sk_loader
from kernels.loaders._sklearn_rules import _first_false
from kernels.loaders._thresholds import float32_above

sklearn = pytest.importorskip("sklearn")
joblib = pytest.importorskip("joblib")
sio = pytest.importorskip("skops.io")

from sklearn.decomposition import PCA  # noqa: E402
from sklearn.dummy import DummyClassifier  # noqa: E402
from sklearn.ensemble import (  # noqa: E402
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    IsolationForest,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import LinearRegression, RidgeClassifier  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import (  # noqa: E402
    FunctionTransformer,
    MaxAbsScaler,
    MinMaxScaler,
    RobustScaler,
    StandardScaler,
)
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor  # noqa: E402

N_ROWS, N_FEATURES = 300, 5
PROBA_TOL = {"rtol": 0.0, "atol": 1e-7}
VALUE_TOL = {"rtol": 2**-23, "atol": 1e-9}
FORMATS = ("pkl", "joblib", "skops")


def make_data(seed: int, *, nan: bool, categorical: int | None = None) -> np.ndarray:
    """float32 features: normal columns, one integer-valued column (thresholds at .5), 10%
    NaN when asked; column ``categorical`` holds integer categories 0..5 (and NaN)."""
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
    if kind == "binary":
        return (score > np.median(score)).astype(int)
    if kind == "multiclass":
        return np.digitize(score, np.quantile(score, [0.33, 0.66]))
    if kind == "positive":
        return np.exp(score / 4)
    if kind == "categorical":  # NaN goes with categories 1 and 3 or apart from them
        c = X[:, 4]
        score = 2.0 * (np.isin(c, [1, 3]) | np.isnan(c)) - (c == 0) + Z[:, 0]
        return (score > np.median(score)).astype(int)
    return 10 * score


@dataclass(frozen=True)
class Spec:
    """One test model: its estimator, the target kind and the data it is trained on."""

    make: Callable[[], Any]
    target: str
    nan: bool = False
    categorical: int | None = None
    inf: bool = False  # predict accepts +-inf


SPECS: dict[str, Spec] = {
    "tree-binary": Spec(
        lambda: DecisionTreeClassifier(max_depth=6, random_state=1), "binary", nan=True
    ),
    "tree-multiclass": Spec(
        lambda: DecisionTreeClassifier(max_depth=5, random_state=2), "multiclass"
    ),
    "tree-deep": Spec(lambda: DecisionTreeRegressor(random_state=3), "regression", True),
    "forest-binary": Spec(
        lambda: RandomForestClassifier(15, max_depth=6, random_state=4), "binary", True
    ),
    "forest-multiclass": Spec(
        lambda: RandomForestClassifier(10, max_depth=5, random_state=5), "multiclass", True
    ),
    "forest-regression": Spec(
        lambda: RandomForestRegressor(15, max_depth=8, random_state=6), "regression", True
    ),
    "extra-binary": Spec(
        lambda: ExtraTreesClassifier(10, max_depth=6, random_state=7), "binary", nan=True
    ),
    "extra-regression": Spec(
        lambda: ExtraTreesRegressor(10, max_depth=6, random_state=8), "regression"
    ),
    "gb-binary": Spec(
        lambda: GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=9), "binary"
    ),
    "gb-multiclass": Spec(
        lambda: GradientBoostingClassifier(n_estimators=10, max_depth=3, random_state=10),
        "multiclass",
    ),
    "gb-exponential": Spec(
        lambda: GradientBoostingClassifier(loss="exponential", n_estimators=15, random_state=11),
        "binary",
    ),
    "gb-huber": Spec(
        lambda: GradientBoostingRegressor(loss="huber", n_estimators=20, random_state=12),
        "regression",
    ),
    "gb-zero-init": Spec(
        lambda: GradientBoostingRegressor(init="zero", n_estimators=20, random_state=13),
        "regression",
    ),
    "gb-dummy-init": Spec(
        lambda: GradientBoostingClassifier(
            init=DummyClassifier(strategy="prior"), n_estimators=10, random_state=14
        ),
        "binary",
    ),
    "hgb-binary": Spec(
        lambda: HistGradientBoostingClassifier(max_iter=20, random_state=15),
        "binary",
        nan=True,
        inf=True,
    ),
    "hgb-multiclass": Spec(
        lambda: HistGradientBoostingClassifier(max_iter=10, random_state=16),
        "multiclass",
        True,
        inf=True,
    ),
    "hgb-poisson": Spec(
        lambda: HistGradientBoostingRegressor(loss="poisson", max_iter=20, random_state=17),
        "positive",
        True,
        inf=True,
    ),
    "hgb-categorical": Spec(
        lambda: HistGradientBoostingClassifier(
            max_iter=20, categorical_features=[4], random_state=18
        ),
        "categorical",
        True,
        categorical=4,
        inf=True,
    ),
    "pipeline-scaler-tree": Spec(
        lambda: make_pipeline(
            StandardScaler(), DecisionTreeClassifier(max_depth=6, random_state=19)
        ),
        "binary",
    ),
    "pipeline-imputer-scalers-forest": Spec(
        lambda: make_pipeline(
            SimpleImputer(strategy="median"),
            StandardScaler(),
            RobustScaler(),
            MinMaxScaler(),
            MaxAbsScaler(),
            RandomForestRegressor(10, max_depth=6, random_state=20),
        ),
        "regression",
        True,
    ),
    "pipeline-scaler-hgb": Spec(
        lambda: make_pipeline(
            StandardScaler(), HistGradientBoostingClassifier(max_iter=10, random_state=21)
        ),
        "binary",
        True,
    ),
}


@dataclass
class Trained:
    estimator: Any
    X: np.ndarray
    spec: Spec
    paths: dict[str, Path]


def save(estimator: Any, stem: Path) -> dict[str, Path]:
    paths = {fmt: stem.with_suffix(f".{fmt}") for fmt in FORMATS}
    paths["pkl"].write_bytes(pickle.dumps(estimator))
    joblib.dump(estimator, paths["joblib"], compress=3)
    sio.dump(estimator, paths["skops"])
    return paths


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Trained]:
    root = tmp_path_factory.mktemp("sklearn-models")
    out = {}
    for i, (name, spec) in enumerate(SPECS.items()):
        X = make_data(100 + i, nan=spec.nan, categorical=spec.categorical)
        estimator = spec.make().fit(X, targets(X, spec.target))
        out[name] = Trained(estimator, X, spec, save(estimator, root / name))
    return out


# --- inputs and oracles ------------------------------------------------------------------


def neighbours(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.float32)
    return np.concatenate(
        [
            values,
            np.nextafter(values, np.float32(-np.inf)),
            np.nextafter(values, np.float32(np.inf)),
        ]
    )


def eval_rows(model: Trained, forest: kernels.Forest, seed: int) -> np.ndarray:
    """Training rows, then per feature rows at every IR threshold and its float32 neighbours
    (other cells random), with NaN, +-inf and categories as the estimator accepts them."""
    rng = np.random.default_rng(seed)
    blocks = [model.X]
    numeric = (forest.feature >= 0) & (forest.categorical == 0)
    for j in range(forest.num_features):
        thresholds = forest.threshold[numeric & (forest.feature == j)]
        values = np.unique(neighbours(thresholds[np.isfinite(thresholds)]))
        block = rng.normal(size=(values.shape[0], forest.num_features)).astype(np.float32)
        block[:, j] = values
        blocks.append(block)
    X = np.concatenate(blocks)
    X[~np.isfinite(X)] = 0.0  # neighbours of +-float32 max
    if model.spec.inf:
        X[rng.random(X.shape) < 0.02] = np.inf
        X[rng.random(X.shape) < 0.02] = -np.inf
    if model.spec.nan:
        X[rng.random(X.shape) < 0.05] = np.nan
    if model.spec.categorical is not None:  # known 0..5; sklearn rejects inf categories
        column = rng.integers(-2, 10, X.shape[0]).astype(np.float32)
        fractional = rng.random(X.shape[0]) < 0.1  # not a category: sklearn's "unknown"
        column[fractional] += rng.choice([0.5, 0.25, -0.5, 1e-3], fractional.sum())
        column[rng.random(X.shape[0]) < 0.05] = np.nan
        X[:, model.spec.categorical] = column
    return X


def native_prediction(estimator: Any, X: np.ndarray) -> np.ndarray:
    if hasattr(estimator, "predict_proba"):
        proba = estimator.predict_proba(X)
        return proba[:, 1] if proba.shape[1] == 2 else proba
    return estimator.predict(X)


def native_margin(estimator: Any, X: np.ndarray) -> np.ndarray | None:
    """Boosted models' raw sums, scaled as the kernel's link expects (None for forests)."""
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    if isinstance(final, GradientBoostingClassifier | GradientBoostingRegressor):
        raw = final._raw_predict(X.astype(np.float32))
        raw = raw * 2.0 if final.loss == "exponential" else raw
    elif isinstance(final, HistGradientBoostingClassifier | HistGradientBoostingRegressor):
        raw = final._raw_predict(X)
    else:
        return None
    if hasattr(estimator, "steps"):
        return None  # the raw sum of a pipeline's model needs the transformed input
    return raw[:, 0] if raw.shape[1] == 1 else raw


# --- agreement ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SPECS))
def test_kernel_agrees_with_sklearn(trained: dict[str, Trained], name: str) -> None:
    model = trained[name]
    forests = {
        fmt: kernels.load_model(path, trust_pickle=True, cache=False)
        for fmt, path in model.paths.items()
    }
    in_memory = sk_loader.forest_from_estimator(model.estimator)
    for fmt, forest in forests.items():
        assert forest.fingerprint() == in_memory.fingerprint(), fmt
    assert forests["pkl"].source_format == "sklearn-pickle"
    assert forests["skops"].source_format == "sklearn-skops"

    kernel = kernels.compile_model(in_memory, backend="numba")
    X = eval_rows(model, in_memory, seed=len(name))
    expected = native_prediction(model.estimator, X)
    got = kernel.predict(X)
    assert got.shape == expected.shape
    tol = PROBA_TOL if hasattr(model.estimator, "predict_proba") else VALUE_TOL
    np.testing.assert_allclose(got, expected, **tol, err_msg=f"{name} prediction")
    margin = native_margin(model.estimator, X)
    if margin is not None:
        got_margin = kernel.predict(X, output="margin")
        np.testing.assert_allclose(got_margin, margin, **VALUE_TOL, err_msg=f"{name} margin")


def test_deep_tree_takes_the_sparse_layout(trained: dict[str, Trained]) -> None:
    forest = sk_loader.forest_from_estimator(trained["tree-deep"].estimator)
    assert int(forest.tree_depths().max()) >= 15
    assert kernels.compile_model(forest, backend="numba")._launcher.layout == "sparse"


def test_forest_shape_and_metadata(trained: dict[str, Trained]) -> None:
    binary = sk_loader.forest_from_estimator(trained["forest-binary"].estimator)
    assert (binary.num_trees, binary.num_outputs, binary.link) == (15, 1, "identity")
    multi = sk_loader.forest_from_estimator(trained["forest-multiclass"].estimator)
    assert (multi.num_trees, multi.num_outputs) == (30, 3)  # one copy of a tree per class
    np.testing.assert_array_equal(multi.tree_group, np.tile([0, 1, 2], 10))
    assert multi.metadata["classes"] == '["0", "1", "2"]'
    gb = sk_loader.forest_from_estimator(trained["gb-multiclass"].estimator)
    assert (gb.link, gb.num_outputs, gb.objective) == ("softmax", 3, "log_loss")
    hgb = sk_loader.forest_from_estimator(trained["hgb-poisson"].estimator)
    assert hgb.link == "exp"
    assert binary.feature_names == tuple(f"f{i}" for i in range(N_FEATURES))
    assert binary.metadata["estimator"] == "sklearn.ensemble._forest.RandomForestClassifier"


def test_feature_names_in_become_feature_names(trained: dict[str, Trained]) -> None:
    estimator = pickle.loads(pickle.dumps(trained["gb-binary"].estimator))
    names = np.array(["age", "tenure", "spend", "visits", "region"], dtype=object)
    estimator.feature_names_in_ = names  # what fitting on a DataFrame sets
    assert sk_loader.forest_from_estimator(estimator).feature_names == tuple(names)


def test_hgb_categorical_splits_both_missing_directions(trained: dict[str, Trained]) -> None:
    """The agreement test covers categorical splits that send NaN (and unknown categories)
    left, which the IR writes with swapped children, and ones that send them right."""
    estimator = trained["hgb-categorical"].estimator
    nodes = np.concatenate([p.nodes for iteration in estimator._predictors for p in iteration])
    split = (nodes["is_categorical"] == 1) & (nodes["is_leaf"] == 0)
    assert set(nodes["missing_go_to_left"][split]) == {0, 1}
    forest = sk_loader.forest_from_estimator(estimator)
    assert (forest.categorical != 0).sum() == split.sum()
    assert set(forest.categorical[forest.categorical != 0]) == {2}  # whole numbers only
    assert set(forest.feature[forest.categorical != 0]) == {4}


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


@pytest.mark.parametrize("suffix", [".pkl", ".joblib"])
def test_pickles_need_trust(trained: dict[str, Trained], suffix: str) -> None:
    path = trained["tree-binary"].paths[suffix.lstrip(".")]
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
