"""The LightGBM loader: text models -> Forest, scored by the Numba kernel, against LightGBM.

The oracle is ``lightgbm.Booster.predict`` on the same float32 matrix (``raw_score=True``
for margins), and its ``pred_leaf=True`` routing with leaf values from ``dump_model()``:
LightGBM's own descriptions of the model, never the Forest itself. Inputs cover NaN,
+-inf, values on every split threshold and the float32 values around it (LightGBM's
thresholds are float64), categories (negative, fractional, past the bitset) and LightGBM's
zero band ``|x| <= float32(1e-35)``, which its dense predict reads as 0.0.

Tolerances
----------
LightGBM sums leaf values in float64 in tree order; so does the kernel, which returns the
sum rounded once to float32. So margins, and predictions of identity- and exp-link
objectives, agree to one float32 rounding: ``rtol=2**-23`` (``atol=1e-12`` for sums that
cancel to about 0). Probabilities (sigmoid, softmax) use the project standard
``atol=1e-6``; they agree to about 6e-8. Routing is checked exactly: the leaves LightGBM
reaches, summed in float64, give the kernel's margin to within the same rounding; another
leaf would move it by the difference of the two leaf values, which only LightGBM's
near-identical sibling leaves (equal to ~1e-16) could hide, and there routing is moot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kernels
from kernels.loaders import detect_format
from kernels.loaders.lightgbm import (
    ZERO_BAND,
    float32_above,
    forest_from_booster,
    load_lightgbm_text,
    numeric_thresholds,
)

lgb = pytest.importorskip("lightgbm")

MARGIN_TOL = {"rtol": 2**-23, "atol": 1e-12}
PROBABILITY_TOL = {"rtol": 0.0, "atol": 1e-6}
F32 = np.float32
F32_MAX = float(np.finfo(F32).max)
BAND = F32(ZERO_BAND)
#: Values at and around LightGBM's zero band, and other specials, as float32.
SPECIALS = np.array(
    [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-36, -1e-36, 1e-45, -1e-45, F32_MAX, -F32_MAX]
    + [v for b in (BAND, -BAND) for v in (b, np.nextafter(b, F32(0)), np.nextafter(b, b))],
    dtype=F32,
)
#: Category-like values: negative, fractional (LightGBM truncates), past any bitset.
CATEGORY_VALUES = np.array(
    [-1.0, -0.5, -0.99, 0.5, 0.99, 1.5, 2.0, 3.0, 7.0, 31.0, 32.0, 1e10, 2.0**31], dtype=F32
)


# --- models ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """One test model: LightGBM parameters, rounds, categorical columns."""

    params: tuple[tuple[str, Any], ...]
    rounds: int = 15
    categorical: tuple[int, ...] = ()
    target: str = "binary"


SPECS: dict[str, Spec] = {
    "binary": Spec((("objective", "binary"), ("num_leaves", 31)), rounds=20),
    "regression": Spec((("objective", "regression"), ("num_leaves", 63)), target="real"),
    "multiclass": Spec(
        (("objective", "multiclass"), ("num_class", 3), ("num_leaves", 15)), 10, target="class"
    ),
    "multiclassova": Spec(
        (("objective", "multiclassova"), ("num_class", 3), ("num_leaves", 15)), 8, target="class"
    ),
    "poisson": Spec((("objective", "poisson"), ("num_leaves", 15)), target="count"),
    "no-missing": Spec((("objective", "binary"), ("use_missing", False), ("num_leaves", 31))),
    "zero-as-missing": Spec(
        (("objective", "regression"), ("zero_as_missing", True), ("num_leaves", 31)),
        target="real",
    ),
    "categorical": Spec(
        (("objective", "binary"), ("num_leaves", 31), ("cat_smooth", 1.0)), categorical=(2, 5)
    ),
    "categorical-no-missing": Spec(
        (("objective", "binary"), ("use_missing", False), ("num_leaves", 15)), categorical=(5,)
    ),
}
LINKS = {
    "binary": "sigmoid",
    "regression": "identity",
    "multiclass": "softmax",
    "multiclassova": "sigmoid",
    "poisson": "exp",
}
FEATURE_NAMES = ["age", "balance", "visits", "tenure", "spend", "region"]


def make_data(seed: int, n_rows: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Six float32 columns: normal with NaN; normal with many exact zeros (so the zero band
    matters) and NaN; integers 0..9; uniform without NaN (missing type None); normal with
    tiny values (read as 0.0); integer categories 0..7 with NaN. Returns X and a score."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, 6))
    X[rng.random(n_rows) < 0.3, 1] = 0.0
    X[:, 2] = rng.integers(0, 10, n_rows)
    X[:, 3] = rng.uniform(-3, 3, n_rows)
    tiny = rng.random(n_rows) < 0.1
    X[tiny, 4] = rng.choice([1e-36, -1e-36, 0.0], int(tiny.sum()))
    X[:, 5] = rng.integers(0, 8, n_rows)
    for j, rate in ((0, 0.1), (1, 0.15), (5, 0.08)):
        X[rng.random(n_rows) < rate, j] = np.nan
    z = np.nan_to_num(X, nan=0.0)
    score = (
        z[:, 0]
        + 1.5 * (X[:, 1] == 0)
        - np.isnan(X[:, 1])
        + 0.3 * z[:, 2]
        + np.sin(z[:, 3])
        + 0.5 * z[:, 4]
        + 1.2 * np.isin(X[:, 5], [0, 2, 5])
        + np.isnan(X[:, 0])
    )
    return X.astype(F32), score + rng.normal(scale=0.3, size=n_rows)


def target(kind: str, score: np.ndarray, seed: int) -> np.ndarray:
    if kind == "binary":
        return (score > np.median(score)).astype(float)
    if kind == "class":
        return np.digitize(score, np.quantile(score, [1 / 3, 2 / 3])).astype(float)
    if kind == "count":
        return np.random.default_rng(seed).poisson(np.exp(score / 3)).astype(float)
    if kind == "positive":
        return np.exp(score / 3)
    return score


def train(params: dict[str, Any], rounds: int = 10, *, seed: int = 0, categorical=(), kind=""):
    """A small booster trained from a fixed seed on :func:`make_data`."""
    X, score = make_data(seed)
    y = target(kind or ("binary" if params.get("objective") == "binary" else "real"), score, seed)
    base = {"verbose": -1, "seed": seed, "num_threads": 1, "min_data_in_leaf": 5}
    base.update(min_data_per_group=5, deterministic=True)
    data = lgb.Dataset(
        X, y, feature_name=FEATURE_NAMES, categorical_feature=list(categorical), params=base
    )
    return lgb.train({**base, **params}, data, rounds)


@dataclass
class Case:
    name: str
    booster: Any
    forest: kernels.Forest
    kernel: kernels.Kernel
    numeric: list[np.ndarray]  # per feature: float64 thresholds, from dump_model()
    leaves: list[dict[int, float]]  # per tree: leaf index -> value, from dump_model()


def _walk(node: dict[str, Any]):
    yield node
    for key in ("left_child", "right_child"):
        if key in node:
            yield from _walk(node[key])


@pytest.fixture(scope="module")
def cases() -> dict[str, Case]:
    out = {}
    for seed, (name, spec) in enumerate(SPECS.items()):
        booster = train(
            dict(spec.params), spec.rounds, seed=seed, categorical=spec.categorical,
            kind=spec.target,
        )  # fmt: skip
        forest = forest_from_booster(booster)
        numeric: list[list[float]] = [[] for _ in FEATURE_NAMES]
        leaves = []
        for info in booster.dump_model()["tree_info"]:
            table = {}
            for node in _walk(info["tree_structure"]):
                if "leaf_value" in node:
                    table[node.get("leaf_index", 0)] = node["leaf_value"]
                elif node["decision_type"] == "<=":
                    numeric[node["split_feature"]].append(node["threshold"])
            leaves.append(table)
        out[name] = Case(
            name=name,
            booster=booster,
            forest=forest,
            kernel=kernels.compile_model(forest, backend="numba"),
            numeric=[np.unique(np.asarray(t, dtype=np.float64)) for t in numeric],
            leaves=leaves,
        )
    return out


# --- oracles and inputs ------------------------------------------------------------------


def assert_agrees(case: Case, X: np.ndarray) -> None:
    """Predictions, margins and routing match LightGBM (see the module docstring)."""
    margin = case.booster.predict(X, raw_score=True)
    got = case.kernel.predict(X, output="margin")
    assert got.dtype == np.float32 and got.shape == margin.shape
    np.testing.assert_allclose(got, margin, **MARGIN_TOL, err_msg=f"{case.name} margin")
    expected = case.booster.predict(X)
    tol = PROBABILITY_TOL if case.forest.link in ("sigmoid", "softmax") else MARGIN_TOL
    got = case.kernel.predict(X)
    np.testing.assert_allclose(got, expected, **tol, err_msg=f"{case.name} prediction")
    leaf = case.booster.predict(X, pred_leaf=True).reshape(X.shape[0], -1)
    routed = np.zeros((X.shape[0], case.forest.num_outputs))
    for t, table in enumerate(case.leaves):
        routed[:, case.forest.tree_group[t]] += [table[i] for i in leaf[:, t]]
    np.testing.assert_allclose(
        case.kernel.predict(X, output="margin").reshape(routed.shape), routed, **MARGIN_TOL,
        err_msg=f"{case.name}: the kernel reaches other leaves than LightGBM",
    )  # fmt: skip


def around(thresholds: np.ndarray) -> np.ndarray:
    """The float32 values nearest each float64 threshold, and one and two steps either side."""
    with np.errstate(over="ignore"):
        nearest = thresholds.astype(F32)
    out = [nearest]
    for direction in (F32(np.inf), F32(-np.inf)):
        step = nearest
        for _ in range(2):
            step = np.nextafter(step, direction)
            out.append(step)
    return np.concatenate(out)


def column_values(case: Case, j: int) -> np.ndarray:
    values = [SPECIALS, around(case.numeric[j])]
    if j in (2, 5):
        values.append(CATEGORY_VALUES)
        values.append(np.arange(10, dtype=F32))
    return np.concatenate(values)


def adversarial_rows(case: Case, rng: np.random.Generator, n: int = 2000) -> np.ndarray:
    """Rows that mix training-like values with specials, thresholds and their neighbours."""
    X, _ = make_data(seed=100, n_rows=n)
    for j in range(X.shape[1]):
        pick = rng.random(n) < 0.6
        X[pick, j] = rng.choice(column_values(case, j), size=int(pick.sum()))
    return X


def threshold_rows(case: Case, rng: np.random.Generator) -> np.ndarray:
    """For each feature, one row per value of that column (others random): every threshold
    of the column is tried with the float32 values around it."""
    blocks = []
    for j in range(len(FEATURE_NAMES)):
        values = column_values(case, j)
        block, _ = make_data(seed=int(rng.integers(1 << 30)), n_rows=values.shape[0])
        block[:, j] = values
        blocks.append(block)
    return np.concatenate(blocks)


# --- agreement ---------------------------------------------------------------------------

ALL = pytest.mark.parametrize("name", list(SPECS))


@ALL
def test_agrees_on_thresholds_and_their_neighbours(cases, name):
    case = cases[name]
    assert_agrees(case, threshold_rows(case, np.random.default_rng(1)))


@ALL
def test_agrees_on_mixed_adversarial_rows(cases, name):
    case = cases[name]
    X = adversarial_rows(case, np.random.default_rng(2))
    X[:20] = np.nan
    X[20:40] = 0.0
    X[40:60] = -BAND
    X[60:80] = BAND
    X[80:100] = np.inf
    X[100:120] = -np.inf
    assert_agrees(case, X)


@pytest.mark.parametrize("name", list(SPECS))
def test_forest_shape(cases, name):
    case, spec = cases[name], SPECS[name]
    forest = case.forest
    assert forest.source_format == "lightgbm-booster" and forest.sha256 == ""
    assert forest.feature_names == tuple(FEATURE_NAMES) and forest.num_features == 6
    assert forest.num_trees == case.booster.num_trees() == len(case.leaves)
    outputs = dict(spec.params).get("num_class", 1)
    np.testing.assert_array_equal(forest.tree_group, np.arange(forest.num_trees) % outputs)
    # LightGBM folds the initial score into the first tree's leaves.
    np.testing.assert_array_equal(forest.base_margin, np.zeros(outputs))
    assert forest.value.dtype == np.float64 and forest.threshold.dtype == np.float32
    leaves = np.sort(np.concatenate([list(t.values()) for t in case.leaves]))
    np.testing.assert_array_equal(np.sort(forest.value[forest.feature < 0]), leaves)
    assert forest.link == LINKS[forest.objective]


def test_models_exercise_every_node_kind(cases):
    """The registry reaches each rule it is meant to test (so a pass means something)."""
    decisions = {}
    for name, case in cases.items():
        text = case.booster.model_to_string()
        types = [
            int(v)
            for line in text.splitlines()
            if line.startswith("decision_type=")
            for v in line[14:].split()
        ]
        decisions[name] = {(d & 1, (d >> 2) & 3) for d in types}
    assert (0, 2) in decisions["binary"] and (0, 0) in decisions["binary"]  # NaN and None
    assert {d[1] for d in decisions["no-missing"]} == {0}
    assert (0, 1) in decisions["zero-as-missing"]
    assert any(d[0] for d in decisions["categorical"])
    assert cases["zero-as-missing"].forest.has_zero_missing
    assert cases["categorical"].forest.has_categorical
    # Some bitset holds category 0, so truncated (-1, 0) values and NaN tell apart.
    forest = cases["categorical"].forest
    starts = forest.cat_start[forest.categorical != 0]
    assert (forest.cat_bits[starts] & 1).any()
    # LightGBM splits NaN apart from every number with ``x <= +inf`` (dumped as 1e300).
    assert any((t >= 1e300).any() for t in cases["binary"].numeric)
    # A split sits on LightGBM's zero-band edge, where its predict's rounding to 0 matters.
    thresholds = np.concatenate(cases["binary"].numeric + cases["no-missing"].numeric)
    assert np.isin([ZERO_BAND], np.abs(thresholds)).all()


def test_missing_type_none_sends_nan_where_zero_goes(cases):
    forest = cases["no-missing"].forest
    inner = forest.feature >= 0
    np.testing.assert_array_equal(
        forest.default_left[inner], (F32(0.0) < forest.threshold[inner]).astype(np.uint8)
    )


def test_categorical_nan_goes_right(cases):
    for name in ("categorical", "categorical-no-missing"):
        forest = cases[name].forest
        assert not forest.default_left[forest.categorical != 0].any(), name


@pytest.mark.parametrize("layout", ["perfect", "sparse", "reference"])
@pytest.mark.parametrize("name", ["binary", "no-missing", "multiclass", "poisson"])
def test_every_cpu_layout_agrees(cases, name, layout):
    """Every layout is exact, NaN-apart splits (``x <= +inf``, stored as ``x < -inf``)
    included: the branch-free tile reads NaN as NaN for left-going nodes."""
    from dataclasses import replace

    from kernels._numba_cpu import CpuLauncher

    case = cases[name]
    kernel = kernels.Kernel(
        case.forest, backend="numba", launcher=CpuLauncher(case.forest, layout=layout)
    )
    X = np.concatenate(
        [
            threshold_rows(case, np.random.default_rng(3)),
            adversarial_rows(case, np.random.default_rng(4)),
        ]
    )
    assert_agrees(replace(case, kernel=kernel), X)


def test_single_leaf_trees():
    booster = train({"objective": "regression", "min_data_in_leaf": 300}, 3)
    forest = forest_from_booster(booster)
    assert forest.num_nodes == forest.num_trees >= 1
    X, _ = make_data(7, 50)
    kernel = kernels.compile_model(forest, backend="numba")
    np.testing.assert_allclose(kernel.predict(X), booster.predict(X), **MARGIN_TOL)


@pytest.mark.parametrize(
    ("objective", "link", "kind"),
    [
        ("regression_l1", "identity", "real"),
        ("huber", "identity", "real"),
        ("quantile", "identity", "real"),
        ("gamma", "exp", "positive"),
        ("tweedie", "exp", "count"),
        ("cross_entropy", "sigmoid", "binary"),
    ],
)
def test_other_objectives(objective, link, kind):
    booster = train({"objective": objective, "num_leaves": 7}, 5, kind=kind)
    forest = forest_from_booster(booster)
    assert (forest.objective, forest.link) == (objective, link)
    X, _ = make_data(8, 300)
    kernel = kernels.compile_model(forest, backend="numba")
    tol = PROBABILITY_TOL if link == "sigmoid" else MARGIN_TOL
    np.testing.assert_allclose(kernel.predict(X), booster.predict(X), **tol)
    np.testing.assert_allclose(
        kernel.predict(X, output="margin"), booster.predict(X, raw_score=True), **MARGIN_TOL
    )


@pytest.mark.parametrize(
    ("params", "kind", "scale"),
    [
        ({"objective": "binary", "sigmoid": 2.0}, "binary", 2.0),
        ({"objective": "binary", "sigmoid": 0.5, "boosting": "rf", "bagging_freq": 1,
          "bagging_fraction": 0.5}, "binary", 0.5 / 6),
        ({"objective": "regression", "boosting": "rf", "bagging_freq": 1,
          "bagging_fraction": 0.5}, "real", 1 / 6),
        ({"objective": "multiclassova", "num_class": 3, "sigmoid": 1.5}, "class", 1.5),
    ],
)  # fmt: skip
def test_link_scale_sigmoid_and_random_forests(params, kind, scale):
    """prediction = link(scale * raw): LightGBM's sigmoid parameter, and the average of a
    random forest's trees; the margin stays the raw sum, like ``raw_score=True``."""
    booster = train({**params, "num_leaves": 7}, 6, kind=kind)
    forest = forest_from_booster(booster)
    assert forest.link_scale == pytest.approx(scale, rel=1e-15)
    X, _ = make_data(10, 300)
    kernel = kernels.compile_model(forest, backend="numba")
    tol = PROBABILITY_TOL if forest.link == "sigmoid" else MARGIN_TOL
    np.testing.assert_allclose(kernel.predict(X), booster.predict(X), **tol)
    np.testing.assert_allclose(
        kernel.predict(X, output="margin"), booster.predict(X, raw_score=True), **MARGIN_TOL
    )


def test_custom_objective_predicts_the_raw_score():
    """A model trained with a Python objective has no ``objective=`` line."""

    def logloss(preds, data):
        p = 1.0 / (1.0 + np.exp(-preds))
        return p - data.get_label(), p * (1.0 - p)

    booster = train({"objective": logloss, "num_leaves": 7}, 5, kind="binary")
    assert "\nobjective=" not in booster.model_to_string()
    forest = forest_from_booster(booster)
    assert (forest.objective, forest.link) == ("custom", "identity")
    X, _ = make_data(9, 200)
    kernel = kernels.compile_model(forest, backend="numba")
    np.testing.assert_allclose(kernel.predict(X), booster.predict(X), **MARGIN_TOL)


# --- files -------------------------------------------------------------------------------


def test_saved_file_loads_like_the_booster(cases, tmp_path):
    case = cases["categorical"]
    path = tmp_path / "model.txt"
    case.booster.save_model(path)
    data = path.read_bytes()
    assert detect_format(data, path.name) == "lightgbm-text"
    assert detect_format(data.replace(b"\n", b"\r\n"), "m") == "lightgbm-text"
    forest = kernels.load_model(path, cache=False)
    assert forest.source_format == "lightgbm-text" and len(forest.sha256) == 64
    assert forest.fingerprint() == case.forest.fingerprint()
    windows = load_lightgbm_text(data.replace(b"\n", b"\r\n"))
    assert windows.fingerprint() == case.forest.fingerprint()


def test_feature_names_and_infos_are_kept(cases):
    forest = cases["binary"].forest
    assert forest.feature_names == tuple(FEATURE_NAMES)
    assert len(forest.metadata["feature_infos"].split(" ")) == 6


UNSUPPORTED = {
    "linear-tree": ({"objective": "regression", "linear_tree": True}, "linear trees"),
    "cross-entropy-lambda": ({"objective": "cross_entropy_lambda"}, "cross_entropy_lambda"),
    "regression-sqrt": ({"objective": "regression", "reg_sqrt": True}, "sqrt"),
}


@pytest.mark.parametrize("kind", sorted(UNSUPPORTED))
def test_unsupported_models(kind, tmp_path):
    params, message = UNSUPPORTED[kind]
    kind_of_target = "binary" if params["objective"].startswith(("binary", "cross")) else "real"
    booster = train({**params, "num_leaves": 7}, 3, kind=kind_of_target)
    path = tmp_path / f"{kind}.txt"
    booster.save_model(path)
    with pytest.raises(kernels.UnsupportedModelError) as excinfo:
        kernels.load_model(path, cache=False)
    assert str(path) in str(excinfo.value) and message in str(excinfo.value)


def _edit(text: str, key: str, change) -> str:
    """Apply ``change`` to the list of words of field ``key`` in the first tree."""
    head, _, tail = text.partition("\nTree=0\n")
    before, _, after = tail.partition(f"\n{key}=")
    value, _, after = after.partition("\n")
    words = " ".join(change(value.split()))
    return f"{head}\nTree=0\n{before}\n{key}={words}\n{after}"


def _first(word: str):
    return lambda words: [word, *words[1:]]


@pytest.fixture(scope="module")
def model_text(cases) -> str:
    return cases["categorical"].booster.model_to_string()


CORRUPT = {
    "truncated": lambda t: t[: len(t) // 2],
    "header-only": lambda t: "tree\nversion=v4\nnum_class=1\n",
    "no-max-feature-idx": lambda t: t.replace("max_feature_idx=5\n", ""),
    "names-short": lambda t: t.replace("feature_names=age ", "feature_names="),
    "child-out-of-range": lambda t: _edit(t, "left_child", _first("99")),
    "leaf-out-of-range": lambda t: _edit(t, "left_child", _first("-99")),
    "root-as-child": lambda t: _edit(t, "right_child", _first("0")),
    "feature-out-of-range": lambda t: _edit(t, "split_feature", _first("6")),
    "leaf-count": lambda t: _edit(t, "leaf_value", lambda w: w[:-1]),
    "not-a-number": lambda t: _edit(t, "threshold", _first("x")),
    "bad-category-index": lambda t: t.replace("cat_boundaries=0 ", "cat_boundaries=5 ", 1),
    "trees-not-a-multiple": lambda t: t.replace("per_iteration=1", "per_iteration=7"),
    "not-utf8": lambda t: "tree\nversion=v4\nfeature_names=\udcff\n",
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(CORRUPT))
def test_corrupt_text_raises_model_format_error(model_text, tmp_path, kind):
    text = CORRUPT[kind](model_text)
    assert text != model_text
    path = tmp_path / "model.txt"
    path.write_bytes(text.encode("utf-8", errors="surrogateescape"))
    with pytest.raises(kernels.ModelFormatError) as excinfo:
        kernels.load_model(path, cache=False)
    assert str(path) in str(excinfo.value)


# --- the threshold rewrite ---------------------------------------------------------------


def _check_smallest_above(t: np.ndarray, r: np.ndarray) -> None:
    """``r`` is the smallest float32 above ``t``: ``x <= t`` iff ``x < r`` for float32 x."""
    assert r.dtype == np.float32
    with np.errstate(over="ignore"):
        below = np.nextafter(r, F32(-np.inf))
    assert (r.astype(np.float64) > t).all()
    assert (below.astype(np.float64) <= t).all()


EDGE_THRESHOLDS = [
    (0.0, 1e-45), (-0.0, 1e-45), (1.5, np.nextafter(F32(1.5), F32(2))),
    (0.1, F32(0.1)), (-0.1, np.nextafter(F32(-0.1), F32(0))), (1e300, np.inf),
    (F32_MAX, np.inf), (-1e300, -F32_MAX), (-np.inf, -F32_MAX),
    (-F32_MAX, np.nextafter(F32(-F32_MAX), F32(0))),
    (1e-46, 1e-45), (-1e-46, -0.0), (2.0**-149, 2.0**-148),
]  # fmt: skip


@pytest.mark.parametrize(("t", "expected"), EDGE_THRESHOLDS)
def test_float32_above_edge_values(t, expected):
    got = float32_above(np.array([t]))
    assert got[0] == F32(expected) and got.dtype == np.float32
    _check_smallest_above(np.array([t]), got)


def test_float32_above_exhaustively_on_edge_values():
    """Every float32 class: ±0, subnormals, normals, the largest values; each as an exact
    threshold, half a float32 step either side, and the float64 neighbours."""
    rng = np.random.default_rng(0)
    bits = np.concatenate(
        [
            np.arange(0, 4096, dtype=np.uint32),  # zero and the smallest subnormals
            np.arange(0x007FF000, 0x00801000, dtype=np.uint32),  # subnormal/normal edge
            np.arange(0x3F7FF000, 0x3F801000, dtype=np.uint32),  # around 1.0
            np.arange(0x7F7FF000, 0x7F800000, dtype=np.uint32),  # up to float32 max
            rng.integers(0, 0x7F800000, 50_000, dtype=np.uint32),
        ]
    )
    values = bits.view(F32).astype(np.float64)
    values = np.concatenate([values, -values])
    with np.errstate(over="ignore"):  # the step above float32 max is inf
        step = np.spacing(np.abs(values).astype(F32)).astype(np.float64)
    thresholds = np.concatenate(
        [
            values,
            values + step / 2,
            values - step / 2,
            np.nextafter(values, np.inf),
            np.nextafter(values, -np.inf),
        ]
    )
    finite = np.abs(thresholds) < F32_MAX
    got = float32_above(thresholds[finite])
    _check_smallest_above(thresholds[finite], got)
    # Past the float32 range: every finite float32 is below, so only +inf is above.
    beyond = thresholds[~finite & (thresholds > 0)]
    assert beyond.size and np.isposinf(float32_above(beyond)).all()


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(t=st.floats(min_value=-F32_MAX, max_value=F32_MAX, allow_nan=False))
def test_float32_above_matches_the_rule_on_neighbours(t):
    r = float32_above(np.array([t]))[0]
    xs = [r, np.nextafter(r, F32(-np.inf)), np.nextafter(r, F32(np.inf)), F32(t)]
    for x in xs:
        assert (float(x) <= t) == (x < r), (t, x, r)


def test_numeric_thresholds_read_the_zero_band_as_zero():
    """LightGBM's dense predict turns |x| <= float32(1e-35) into 0.0 before ``x <= t``."""
    k = ZERO_BAND
    thresholds = np.array(
        [-k, np.nextafter(-k, 0), -1e-36, -0.0, 0.0, 1e-36, np.nextafter(k, 0), k,
         np.nextafter(k, 1), np.nextafter(-k, -1), 1.0, -1.0, 2e-35, -2e-35]
    )  # fmt: skip
    xs = np.concatenate([SPECIALS[1:], around(thresholds), np.array([1e-38, -1e-38], F32)])
    seen = np.where(np.abs(xs.astype(np.float64)) <= k, 0.0, xs.astype(np.float64))
    ir = numeric_thresholds(thresholds)
    lightgbm_left = seen[:, None] <= thresholds[None, :]
    np.testing.assert_array_equal(xs[:, None] < ir[None, :], lightgbm_left)


def test_zero_band_constant_is_lightgbms():
    """kZeroThreshold is ``1e-35f`` widened to double (include/LightGBM/meta.h)."""
    assert ZERO_BAND == float(F32(1e-35)) != 1e-35
    assert F32(ZERO_BAND) == F32(1e-35)
