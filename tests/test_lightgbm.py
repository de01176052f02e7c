"""The LightGBM loader: text models and Boosters -> Forest, against LightGBM's own dump.

The forest's structure is checked against ``lightgbm.Booster.dump_model()`` and the model
text (node kinds, missing types, thresholds, leaf values, link and its scale); scoring
against ``Booster.predict`` on every LightGBM registry entry (NaN, +-inf, thresholds and
their float32 neighbours, LightGBM's zero band, categories seen and unseen) is the
agreement suite's (``lgb-*`` in tests/agreement/lgb_cases.py). Also here: the text format's
files, corrupt and unsupported models, and the float64 -> float32 threshold rewrite.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from agreement import lgb_cases, registry
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

F32 = np.float32
F32_MAX = float(np.finfo(F32).max)
BAND = F32(ZERO_BAND)
#: Values at and around LightGBM's zero band, and other specials, as float32.
SPECIALS = np.array(
    [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-36, -1e-36, 1e-45, -1e-45, F32_MAX, -F32_MAX]
    + [v for b in (BAND, -BAND) for v in (b, np.nextafter(b, F32(0)), np.nextafter(b, b))],
    dtype=F32,
)
FEATURE_NAMES = list(lgb_cases.FEATURE_NAMES)
LINKS = {
    "binary": "sigmoid",
    "regression": "identity",
    "multiclass": "softmax",
    "multiclassova": "sigmoid",
    "poisson": "exp",
    "regression_l1": "identity",
    "huber": "identity",
    "quantile": "identity",
    "gamma": "exp",
    "tweedie": "exp",
    "cross_entropy": "sigmoid",
    "custom": "identity",
}


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


@dataclass
class Case:
    name: str
    booster: Any
    forest: kernels.Forest
    numeric: list[np.ndarray]  # per feature: float64 thresholds, from dump_model()
    leaves: list[dict[int, float]]  # per tree: leaf index -> value, from dump_model()


def _walk(node: dict[str, Any]):
    yield node
    for key in ("left_child", "right_child"):
        if key in node:
            yield from _walk(node[key])


@pytest.fixture(scope="module")
def cases(zoo) -> dict[str, Case]:
    """Every LightGBM registry entry (without its ``lgb-`` prefix), read from the Booster."""
    out = {}
    for entry in registry.family("lightgbm"):
        booster = zoo.trained(entry).model
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
        name = entry.name.removeprefix("lgb-")
        out[name] = Case(
            name=name,
            booster=booster,
            forest=forest_from_booster(booster),
            numeric=[np.unique(np.asarray(t, dtype=np.float64)) for t in numeric],
            leaves=leaves,
        )
    return out


@pytest.mark.parametrize("name", [e.name.removeprefix("lgb-") for e in registry.family("lightgbm")])
def test_forest_shape(cases, name):
    case = cases[name]
    forest = case.forest
    assert forest.source_format == "lightgbm-booster" and forest.sha256 == ""
    assert forest.feature_names == tuple(FEATURE_NAMES) and forest.num_features == 6
    assert forest.num_trees == case.booster.num_trees() == len(case.leaves)
    outputs = case.booster.num_model_per_iteration()
    np.testing.assert_array_equal(forest.tree_group, np.arange(forest.num_trees) % outputs)
    # LightGBM folds the initial score into the first tree's leaves.
    np.testing.assert_array_equal(forest.base_margin, np.zeros(outputs))
    assert forest.value.dtype == np.float64 and forest.threshold.dtype == np.float32
    leaves = np.sort(np.concatenate([list(t.values()) for t in case.leaves]))
    np.testing.assert_array_equal(np.sort(forest.value[forest.feature < 0]), leaves)
    assert forest.link == LINKS[forest.objective]
    if name == "single-leaf":
        assert forest.num_nodes == forest.num_trees >= 1


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
    assert any((t >= 1e300).any() for name in ("binary", "regression") for t in cases[name].numeric)
    # A split sits on LightGBM's zero-band edge, where its predict's rounding to 0 matters.
    thresholds = np.concatenate([t for case in cases.values() for t in case.numeric])
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


@pytest.mark.parametrize(
    ("name", "scale"),
    [("sigmoid-2", 2.0), ("rf-binary", 0.5 / 6), ("rf-regression", 1 / 6),
     ("multiclassova-sigmoid", 1.5)],
)  # fmt: skip
def test_link_scale_sigmoid_and_random_forests(cases, name, scale):
    """prediction = link(scale * raw): LightGBM's sigmoid parameter, and the average of a
    random forest's trees (the margin stays the raw sum, like ``raw_score=True``)."""
    assert cases[name].forest.link_scale == pytest.approx(scale, rel=1e-15)


def test_custom_objective_predicts_the_raw_score(cases):
    """A model trained with a Python objective has no ``objective=`` line."""
    case = cases["custom-objective"]
    assert "\nobjective=" not in case.booster.model_to_string()
    assert (case.forest.objective, case.forest.link) == ("custom", "identity")


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


def train(params: dict[str, Any], rounds: int, binary: bool) -> Any:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6))
    y = X[:, 0] + rng.normal(scale=0.3, size=300)
    y = (y > 0).astype(float) if binary else y
    base = {"verbose": -1, "seed": 0, "num_threads": 1, "min_data_in_leaf": 5}
    return lgb.train({**base, **params}, lgb.Dataset(X, y, params=base), rounds)


@pytest.mark.parametrize("kind", sorted(UNSUPPORTED))
def test_unsupported_models(kind, tmp_path):
    params, message = UNSUPPORTED[kind]
    binary = params["objective"].startswith(("binary", "cross"))
    booster = train({**params, "num_leaves": 7}, 3, binary)
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
    with np.errstate(over="ignore"):  # above float32's largest value is +inf: meant here
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
