"""The Numba kernel agrees with XGBoost's own predict on every registry model.

The oracle is ``xgboost.Booster.inplace_predict`` (``predict_type="value"`` and
``"margin"``) on the same float32 matrix. Inputs cover random values with NaN (default
directions), +inf and -inf, and values exactly on every split threshold and one float32
step either side of it; Hypothesis mixes all of these (derandomized, bounded examples).

Tolerances
----------
XGBoost adds leaf values to a float32 running sum, tree by tree; the kernel adds them in
float64 and rounds once. Each float32 addition is exact to half an ulp of the running sum,
so the two differ by up to about ``n_trees * 2**-24 * |partial sum|``: about 2.4e-5 at
worst for 25 trees whose partial sums reach 16, and far less in practice because the
rounding errors cancel. Measured over 20,000 adversarial rows per registry model (NaN,
+-inf, thresholds and their float32 neighbours): margins differ by at most 4.8e-6
(|margin| <= 19), sigmoid probabilities by at most 1.8e-7, exp-link predictions by at most
1e-6 relative. Hence, per output kind:

- margins, and predictions of identity-link objectives: ``rtol=1e-5, atol=1e-5``;
- probabilities (sigmoid link: binary:logistic, reg:logistic): ``atol=1e-6`` (the
  logistic's slope is at most 1/4, so margin errors shrink);
- exp-link predictions (count:poisson, reg:gamma, reg:tweedie): ``rtol=1e-5, atol=1e-6``
  (a margin error ``d`` is a relative error ``~d`` after ``exp``).

Taking a different branch changes the margin by a whole leaf difference (typically 1e-3 to
1), which these tolerances catch. Branching is also checked exactly: the leaves each row
reaches in XGBoost (``pred_leaf=True``), summed in float64, must give the kernel's margin to
within one float32 rounding (``rtol=2**-23``: room for another float64 summation order,
none for another leaf).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass

import models
import numpy as np
import pytest
import xgboost as xgb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import kernels

#: Tolerances for ``np.testing.assert_allclose`` by (output, link); see the module docstring.
TOLERANCES: dict[tuple[str, str], dict[str, float]] = {
    ("margin", "identity"): {"rtol": 1e-5, "atol": 1e-5},
    ("margin", "sigmoid"): {"rtol": 1e-5, "atol": 1e-5},
    ("margin", "exp"): {"rtol": 1e-5, "atol": 1e-5},
    ("prediction", "identity"): {"rtol": 1e-5, "atol": 1e-5},
    ("prediction", "sigmoid"): {"rtol": 0.0, "atol": 1e-6},
    ("prediction", "exp"): {"rtol": 1e-5, "atol": 1e-6},
}

#: Bounded, reproducible Hypothesis runs: a few seconds for the whole registry.
AGREEMENT_SETTINGS = settings(
    max_examples=20,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

F32_MAX = np.finfo(np.float32).max
CASES = [
    pytest.param(name, fmt, id=f"{name}-{fmt}") for name in models.NAMES for fmt in models.FORMATS
]


@dataclass
class Case:
    """One registry model in one file format: the native booster and the compiled kernel."""

    model: models.TrainedModel
    forest: kernels.Forest
    kernel: kernels.Kernel
    thresholds: list[np.ndarray]  # per feature, from XGBoost's own JSON
    leaf_values: list[np.ndarray]  # per tree, by XGBoost node id

    @property
    def booster(self) -> xgb.Booster:
        return self.model.booster

    @property
    def num_features(self) -> int:
        return self.forest.num_features


@pytest.fixture(scope="session")
def agreement_cases(
    trained_models, loaded_forests, compiled_kernels
) -> dict[tuple[str, str], Case]:
    """Every registry model in both formats, with its thresholds and leaves from XGBoost."""
    out = {}
    for (name, fmt), kernel in compiled_kernels.items():
        model = trained_models[name]
        doc = model.model_json()
        forest = loaded_forests[(name, fmt)]
        out[(name, fmt)] = Case(
            model=model,
            forest=forest,
            kernel=kernel,
            thresholds=models.thresholds_by_feature(doc, forest.num_features),
            leaf_values=models.leaf_values(doc),
        )
    return out


# --- oracles -----------------------------------------------------------------------------


def assert_agrees(case: Case, X: np.ndarray) -> None:
    """Kernel predictions and margins match ``inplace_predict`` within :data:`TOLERANCES`."""
    for output, predict_type in (("prediction", "value"), ("margin", "margin")):
        expected = case.booster.inplace_predict(X, predict_type=predict_type)
        got = case.kernel.predict(X, output=output)
        assert got.dtype == np.float32
        assert got.shape == expected.shape == (X.shape[0],)
        np.testing.assert_allclose(
            got,
            expected,
            **TOLERANCES[(output, case.forest.link)],
            err_msg=f"{case.model.name} {output} differs from xgboost",
        )


def assert_same_leaves(case: Case, X: np.ndarray) -> None:
    """The kernel's margin is the float64 sum of the leaves XGBoost routes to, up to one
    float32 rounding (so a backend may sum in another order, but not reach another leaf).

    ``DMatrix`` rejects infinities, so +-inf are replaced by +-float32 max for XGBoost: that
    routes identically for every finite threshold other than -float32 max itself.
    """
    finite_thresholds = np.concatenate([t for t in case.thresholds if t.size] or [[0.0]])
    assert np.isfinite(finite_thresholds).all() and (finite_thresholds > -F32_MAX).all()
    routed = np.where(np.isposinf(X), F32_MAX, np.where(np.isneginf(X), -F32_MAX, X))
    leaves = case.booster.predict(
        xgb.DMatrix(
            routed.astype(np.float32), missing=np.nan, feature_names=case.booster.feature_names
        ),
        pred_leaf=True,
    )
    leaves = leaves.reshape(X.shape[0], -1).astype(np.int64)
    expected = np.full(X.shape[0], case.forest.base_margin[0], dtype=np.float64)
    for t, values in enumerate(case.leaf_values):
        expected += values[leaves[:, t]].astype(np.float64)
    got = case.kernel.predict(X, output="margin")
    np.testing.assert_allclose(got, expected, rtol=2**-23, atol=1e-9, err_msg=case.model.name)


# --- input builders ----------------------------------------------------------------------


def neighbours(values: np.ndarray) -> np.ndarray:
    """``values`` and the float32 just below and just above each."""
    values = values.astype(np.float32)
    down = np.nextafter(values, np.float32(-np.inf))
    up = np.nextafter(values, np.float32(np.inf))
    return np.concatenate([values, down, up])


def threshold_rows(case: Case, rng: np.random.Generator) -> np.ndarray:
    """For each feature and each of its thresholds ``t``: rows with that feature at ``t``,
    at the float32 below and at the float32 above; other columns random, 10% NaN."""
    blocks = []
    for j, thresholds in enumerate(case.thresholds):
        if not thresholds.size:
            continue
        values = neighbours(thresholds)
        block = rng.normal(scale=1.5, size=(values.shape[0], case.num_features))
        block[rng.random(block.shape) < 0.1] = np.nan
        block[:, j] = values
        blocks.append(block.astype(np.float32))
    return np.concatenate(blocks)


def all_thresholds_rows(case: Case, rng: np.random.Generator, n: int) -> np.ndarray:
    """Rows whose every cell is a threshold of its column or a float32 neighbour of one."""
    X = rng.normal(size=(n, case.num_features)).astype(np.float32)
    for j, thresholds in enumerate(case.thresholds):
        if thresholds.size:
            X[:, j] = rng.choice(neighbours(thresholds), size=n)
    return X


@st.composite
def feature_matrices(draw: st.DrawFn, thresholds: list[np.ndarray], max_rows: int = 40):
    """float32 matrices whose cells are NaN, +-inf, 0, -0, arbitrary float32 values, values
    near the data, or (often) a split threshold of that column or its float32 neighbours."""
    n_rows = draw(st.integers(1, max_rows))
    columns = []
    for column_thresholds in thresholds:
        special = [np.nan, np.inf, -np.inf, 0.0, -0.0]
        special += [float(v) for v in neighbours(column_thresholds)]
        elements = st.one_of(
            st.sampled_from(special),
            st.sampled_from(special),  # twice: weight specials and thresholds up
            st.floats(-4.0, 4.0, width=32),
            st.floats(width=32),
        )
        columns.append(draw(hnp.arrays(np.float32, n_rows, elements=elements)))
    return np.column_stack(columns).astype(np.float32)


# --- agreement ---------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "fmt"), CASES)
def test_random_data_with_nan(agreement_cases, name, fmt):
    case = agreement_cases[(name, fmt)]
    rng = np.random.default_rng(1)
    X = rng.normal(scale=1.5, size=(3000, case.num_features)).astype(np.float32)
    X[rng.random(X.shape) < 0.2] = np.nan
    X[:50] = np.nan  # all-missing rows follow default directions only
    X[50:100, ::2] = np.nan
    assert_agrees(case, X)
    assert_same_leaves(case, X)


@pytest.mark.parametrize(("name", "fmt"), CASES)
def test_infinities(agreement_cases, name, fmt):
    case = agreement_cases[(name, fmt)]
    rng = np.random.default_rng(2)
    d = case.num_features
    X = rng.normal(size=(400, d)).astype(np.float32)
    X[0], X[1] = np.inf, -np.inf
    X[2, ::2], X[2, 1::2] = np.inf, -np.inf
    X[3, ::2], X[3, 1::2] = -np.inf, np.inf
    X[4:] = np.where(
        rng.random((396, d)) < 0.3, rng.choice([np.inf, -np.inf, np.nan], (396, d)), X[4:]
    )
    assert_agrees(case, X)
    assert_same_leaves(case, X)


@pytest.mark.parametrize(("name", "fmt"), CASES)
def test_values_exactly_on_thresholds(agreement_cases, name, fmt):
    case = agreement_cases[(name, fmt)]
    rng = np.random.default_rng(3)
    X = np.concatenate([threshold_rows(case, rng), all_thresholds_rows(case, rng, 500)])
    assert_agrees(case, X)
    assert_same_leaves(case, X)


@pytest.mark.parametrize("name", models.NAMES)
@AGREEMENT_SETTINGS
@given(data=st.data())
def test_agrees_on_generated_matrices(agreement_cases, name, data):
    # JSON only: the UBJ forest is asserted identical to the JSON one (test_loaders.py and
    # test_json_and_ubj_kernels_score_identically), so the generated runs stay within budget.
    case = agreement_cases[(name, "json")]
    X = data.draw(feature_matrices(case.thresholds), label="X")
    assert_agrees(case, X)
    assert_same_leaves(case, X)


@pytest.mark.parametrize("name", models.NAMES)
def test_json_and_ubj_kernels_score_identically(agreement_cases, name):
    from_json, from_ubj = agreement_cases[(name, "json")], agreement_cases[(name, "ubj")]
    X = all_thresholds_rows(from_json, np.random.default_rng(10), 1000)
    X[::5, 0] = np.nan
    for output in ("prediction", "margin"):
        np.testing.assert_array_equal(
            from_json.kernel.predict(X, output=output), from_ubj.kernel.predict(X, output=output)
        )


def test_registry_exercises_both_default_directions(loaded_forests):
    for (name, _fmt), forest in loaded_forests.items():
        inner = forest.feature >= 0
        assert set(np.unique(forest.default_left[inner])) == {0, 1}, name


def test_identity_link_prediction_is_the_margin(agreement_cases):
    case = agreement_cases[("binary-logitraw", "json")]
    X = np.random.default_rng(4).normal(size=(200, case.num_features)).astype(np.float32)
    np.testing.assert_array_equal(case.kernel.predict(X), case.kernel.predict(X, output="margin"))


# --- input handling ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["binary-logistic", "reg-squarederror-named-exact"])
@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint16])
def test_integer_input_matches_float32(agreement_cases, name, dtype):
    case = agreement_cases[(name, "json")]
    rng = np.random.default_rng(5)
    # Integer-valued columns were trained on integers: thresholds sit on these values.
    X = rng.integers(0 if dtype == np.uint16 else -4, 6, size=(500, case.num_features))
    X = X.astype(dtype)
    as_f32 = X.astype(np.float32)
    for output in ("prediction", "margin"):
        np.testing.assert_array_equal(
            case.kernel.predict(X, output=output), case.kernel.predict(as_f32, output=output)
        )
    assert_agrees(case, X)


def test_large_integers_round_like_float32(agreement_cases):
    case = agreement_cases[("binary-logistic", "json")]
    X = np.full((3, case.num_features), 2**24 + 1, dtype=np.int64)
    X[1] = -(2**40) - 1
    X[2] = np.iinfo(np.int64).max
    np.testing.assert_array_equal(case.kernel.predict(X), case.kernel.predict(X.astype(np.float32)))
    assert_agrees(case, X)


@pytest.mark.parametrize("name", ["binary-logistic", "reg-squarederror-named-exact", "reg-tweedie"])
def test_float64_input_matches_float32(agreement_cases, name):
    case = agreement_cases[(name, "json")]
    rng = np.random.default_rng(6)
    X = rng.normal(scale=1.5, size=(2000, case.num_features))
    X[rng.random(X.shape) < 0.15] = np.nan
    X[rng.random(X.shape) < 0.02] = np.inf
    # float64 values a fraction of a float32 step from each threshold: they round onto the
    # threshold or its neighbour, as XGBoost's own float32 cast rounds them.
    near = threshold_rows(case, rng).astype(np.float64)
    for j, thresholds in enumerate(case.thresholds):
        for t in thresholds:
            step = float(np.spacing(np.float32(t)))
            row = near[0].copy()
            for frac in (-0.75, -0.5, -0.25, 0.25, 0.5, 0.75):
                row[j] = float(t) + frac * step
                near = np.vstack([near, row])
    X = np.concatenate([X, near])
    as_f32 = X.astype(np.float32)
    for output in ("prediction", "margin"):
        np.testing.assert_array_equal(
            case.kernel.predict(X, output=output), case.kernel.predict(as_f32, output=output)
        )
    assert_agrees(case, X)


@pytest.mark.parametrize("name", ["binary-logistic-named", "reg-gamma-lossguide"])
def test_thread_count_does_not_change_results(loaded_forests, compiled_kernels, name):
    forest = loaded_forests[(name, "json")]
    default = compiled_kernels[(name, "json")]
    one = kernels.compile_model(forest, backend="numba", n_threads=1)
    two = kernels.compile_model(forest, backend="numba", n_threads=2)
    rng = np.random.default_rng(7)
    X = rng.normal(size=(10_007, forest.num_features)).astype(np.float32)  # not a block multiple
    X[rng.random(X.shape) < 0.1] = np.nan
    for output in ("prediction", "margin"):
        expected = default.predict(X, output=output)
        np.testing.assert_array_equal(one.predict(X, output=output), expected)
        np.testing.assert_array_equal(two.predict(X, output=output), expected)


@pytest.mark.parametrize("output", ["prediction", "margin"])
def test_zero_rows(agreement_cases, output):
    case = agreement_cases[("binary-logistic", "json")]
    X = np.empty((0, case.num_features), dtype=np.float32)
    got = case.kernel.predict(X, output=output)
    assert got.dtype == np.float32
    assert got.shape == (0,) == case.booster.inplace_predict(X).shape


@pytest.mark.parametrize(
    "shape", [(6,), (10, 5), (10, 7), (10, 0), (2, 3, 6), ()], ids=lambda s: f"shape{s}"
)
def test_wrong_shape_raises(agreement_cases, shape):
    case = agreement_cases[("binary-logistic", "json")]
    assert case.num_features == 6
    with pytest.raises(kernels.InputShapeError):
        case.kernel.predict(np.zeros(shape, dtype=np.float32))


@pytest.mark.parametrize("dtype", [object, "U3", np.complex64])
def test_non_numeric_dtype_raises(agreement_cases, dtype):
    case = agreement_cases[("binary-logistic", "json")]
    with pytest.raises(kernels.InputShapeError):
        case.kernel.predict(np.zeros((4, case.num_features), dtype=dtype))


def test_unknown_output_raises(agreement_cases):
    case = agreement_cases[("binary-logistic", "json")]
    with pytest.raises(kernels.InputShapeError, match="output"):
        case.kernel.predict(np.zeros((4, case.num_features), np.float32), output="proba")


def test_input_errors_are_value_errors():
    assert issubclass(kernels.InputShapeError, kernels.KernelError)
    assert issubclass(kernels.KernelError, ValueError)


def test_kernel_refuses_pickling(agreement_cases):
    kernel = agreement_cases[("binary-logistic", "json")].kernel
    with pytest.raises(TypeError, match="compile per worker"):
        pickle.dumps(kernel)


def test_non_contiguous_inputs(agreement_cases):
    case = agreement_cases[("reg-squarederror", "json")]
    d = case.num_features
    rng = np.random.default_rng(8)
    wide = rng.normal(size=(2001, 3 * d)).astype(np.float32)
    wide[rng.random(wide.shape) < 0.1] = np.nan
    views = {
        "fortran": np.asfortranarray(wide[:, :d]),
        "column-slice": wide[:, d : 2 * d],
        "row-stride": wide[::3, :d],
        "column-stride": wide[:, ::3],
        "reversed": wide[::-1, -d:],
        "transposed": np.ascontiguousarray(wide[:, :d].T).T,
    }
    for label, X in views.items():
        assert not X.flags.c_contiguous, label
        np.testing.assert_array_equal(
            case.kernel.predict(X), case.kernel.predict(np.ascontiguousarray(X)), err_msg=label
        )
        assert_agrees(case, np.ascontiguousarray(X))


def test_read_only_input_is_scored_and_left_untouched(agreement_cases):
    """Zero-copy Arrow buffers reach the kernel as read-only arrays."""
    case = agreement_cases[("binary-logistic", "json")]
    X = np.random.default_rng(9).normal(size=(300, case.num_features)).astype(np.float32)
    X[::7, 2] = np.nan
    before = X.copy()
    X.setflags(write=False)
    np.testing.assert_array_equal(case.kernel.predict(X), case.kernel.predict(before))
    np.testing.assert_array_equal(X, before)


# --- every CPU layout --------------------------------------------------------------------

CPU_LAYOUTS = ("perfect", "sparse", "reference")


@pytest.mark.parametrize("layout", CPU_LAYOUTS)
@pytest.mark.parametrize("name", models.NAMES)
def test_every_cpu_layout_agrees(agreement_cases, name, layout):
    """``compile_model`` picks one layout per forest; each must be exact on its own, with
    NaN, +-inf and values on thresholds, so the choice is only ever about speed."""
    from dataclasses import replace

    from kernels._cpu_layout import MAX_PERFECT_DEPTH
    from kernels._numba_cpu import CpuLauncher

    case = agreement_cases[(name, "json")]
    if layout == "perfect" and int(case.forest.tree_depths().max()) > MAX_PERFECT_DEPTH:
        pytest.skip("deeper than the complete-tree layout allows")
    kernel = kernels.Kernel(
        case.forest, backend="numba", launcher=CpuLauncher(case.forest, layout=layout)
    )
    rng = np.random.default_rng(11)
    X = np.concatenate([threshold_rows(case, rng), all_thresholds_rows(case, rng, 300)])
    X[rng.random(X.shape) < 0.1] = np.nan
    X[rng.random(X.shape) < 0.03] = np.inf
    X[rng.random(X.shape) < 0.03] = -np.inf
    assert_agrees(replace(case, kernel=kernel), X)
    assert_same_leaves(replace(case, kernel=kernel), X)


@pytest.mark.parametrize("layout", CPU_LAYOUTS)
def test_infinite_thresholds_keep_nan_on_its_default_side(loaded_forests, layout):
    """A ``-inf`` threshold with NaN going left (LightGBM's NaN-apart split) and a ``+inf``
    one with NaN going right: every layout must agree with the reference walk."""
    from dataclasses import replace

    from kernels._numba_cpu import CpuLauncher, choose_layout

    forest = loaded_forests[(models.NAMES[0], "json")]
    inner = np.flatnonzero(forest.feature >= 0)
    threshold, default_left = forest.threshold.copy(), forest.default_left.copy()
    threshold[inner[0::2]], default_left[inner[0::2]] = -np.inf, 1
    threshold[inner[1::2]], default_left[inner[1::2]] = np.inf, 0
    edited = replace(forest, threshold=threshold, default_left=default_left)
    assert choose_layout(edited) == "perfect"
    rng = np.random.default_rng(13)
    X = rng.normal(size=(500, edited.num_features)).astype(np.float32)
    X[rng.random(X.shape) < 0.3] = np.nan
    X[rng.random(X.shape) < 0.1] = np.inf
    X[rng.random(X.shape) < 0.1] = -np.inf
    reference = kernels.Kernel(
        edited, backend="numba", launcher=CpuLauncher(edited, layout="reference")
    )
    if layout == "perfect" or int(edited.tree_depths().max()) <= 10:
        kernel = kernels.Kernel(
            edited, backend="numba", launcher=CpuLauncher(edited, layout=layout)
        )
        np.testing.assert_array_equal(
            kernel.predict(X, output="margin"), reference.predict(X, output="margin")
        )


def test_deep_trees_use_the_sparse_layout_and_agree(tmp_path):
    from kernels._numba_cpu import choose_layout

    rng = np.random.default_rng(5)
    X = rng.normal(size=(6000, 8)).astype(np.float32)
    X[rng.random(X.shape) < 0.1] = np.nan
    y = np.sin(np.nan_to_num(X[:, 0]) * 3) + np.nan_to_num(X[:, 1]) * np.nan_to_num(X[:, 2])
    booster = xgb.train(
        {"objective": "reg:squarederror", "max_depth": 16, "min_child_weight": 0,
         "lambda": 0, "seed": 0, "nthread": 1},
        xgb.DMatrix(X, y), 4,
    )  # fmt: skip
    path = tmp_path / "deep.json"
    booster.save_model(path)
    forest = kernels.load_model(path, cache=False)
    assert int(forest.tree_depths().max()) > 10
    assert choose_layout(forest) == "sparse"
    kernel = kernels.compile_model(forest, backend="numba")
    X[rng.random(X.shape) < 0.02] = np.inf
    X[rng.random(X.shape) < 0.02] = -np.inf
    np.testing.assert_allclose(
        kernel.predict(X, output="margin"),
        booster.inplace_predict(X, predict_type="margin"),
        rtol=1e-5, atol=1e-5,
    )  # fmt: skip


def test_feature_major_input_is_scored_in_place(agreement_cases, monkeypatch):
    """The engine hands the kernel a transposed view of a (features, rows) buffer; it must
    score identically to row-major input and reach the launcher without a transposing copy."""
    case = agreement_cases[(models.NAMES[0], "json")]
    rng = np.random.default_rng(12)
    columns = rng.normal(size=(case.num_features, 777)).astype(np.float32)
    columns[rng.random(columns.shape) < 0.1] = np.nan
    X = columns.T
    assert X.flags.f_contiguous and not X.flags.c_contiguous
    seen = []
    launcher = case.kernel._launcher
    original = type(launcher).__call__

    def spy(self, matrix, out):
        seen.append(matrix)
        return original(self, matrix, out)

    monkeypatch.setattr(type(launcher), "__call__", spy)
    got = case.kernel.predict(X)
    np.testing.assert_array_equal(got, case.kernel.predict(np.ascontiguousarray(X)))
    assert np.shares_memory(seen[0], columns)
    assert_agrees(case, X)
