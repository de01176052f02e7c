"""Kernel input handling: dtypes, shapes, strides, empty and read-only inputs, threads.

The models are registry entries (``tests/agreement/registry.py``); their agreement with the
native library on float32 rows is the agreement suite's job. Here every other input form
must score exactly as its float32 C-contiguous copy does (and, where XGBoost takes that
form itself, as XGBoost does, within the suite's float32-sum tolerance).
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from agreement.data import neighbours
from agreement.registry import BY_NAME

import kernels

#: The agreement suite's tolerance for XGBoost margins (tests/agreement/test_agreement.py).
XGB_MARGIN_TOL = {"rtol": 1e-5, "atol": 1e-5}


class Case:
    """A registry XGBoost model: its booster, forest, default numba kernel, thresholds."""

    def __init__(self, zoo, name: str) -> None:
        entry = BY_NAME[f"xgb-{name}"]
        self.booster = zoo.trained(entry).model
        self.forest = zoo.forest(entry, "json")
        self.kernel = zoo.kernel(entry, "json", "numba")
        self.thresholds = zoo.info(entry).thresholds
        self.num_features = self.forest.num_features


@pytest.fixture(scope="module")
def cases(zoo):
    return {n: Case(zoo, n) for n in ("binary-logistic", "reg-squarederror-named-exact",
                                      "reg-tweedie", "reg-squarederror", "binary-logistic-named",
                                      "reg-gamma-lossguide")}  # fmt: skip


def assert_agrees(case: Case, X: np.ndarray) -> None:
    """Predictions and margins match XGBoost's ``inplace_predict`` on the same matrix."""
    for output, predict_type in (("prediction", "value"), ("margin", "margin")):
        np.testing.assert_allclose(
            case.kernel.predict(X, output=output),
            case.booster.inplace_predict(X, predict_type=predict_type),
            **XGB_MARGIN_TOL,
        )


def threshold_rows(case: Case, rng: np.random.Generator) -> np.ndarray:
    """For each threshold of each feature: a row with it, others random."""
    blocks = []
    for j, thresholds in enumerate(case.thresholds):
        if thresholds.size:
            block = rng.normal(size=(thresholds.size, case.num_features)).astype(np.float32)
            block[:, j] = thresholds
            blocks.append(block)
    return np.concatenate(blocks)


def all_thresholds_rows(case: Case, rng: np.random.Generator, n: int) -> np.ndarray:
    """Rows whose every cell is a threshold of its column or a float32 neighbour of one."""
    X = rng.normal(size=(n, case.num_features)).astype(np.float32)
    for j, thresholds in enumerate(case.thresholds):
        if thresholds.size:
            X[:, j] = rng.choice(neighbours(thresholds, steps=1), size=n)
    return X


# --- input handling ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["binary-logistic", "reg-squarederror-named-exact"])
@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint16])
def test_integer_input_matches_float32(cases, name, dtype):
    case = cases[name]
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


def test_large_integers_round_like_float32(cases):
    case = cases["binary-logistic"]
    X = np.full((3, case.num_features), 2**24 + 1, dtype=np.int64)
    X[1] = -(2**40) - 1
    X[2] = np.iinfo(np.int64).max
    np.testing.assert_array_equal(case.kernel.predict(X), case.kernel.predict(X.astype(np.float32)))
    assert_agrees(case, X)


@pytest.mark.parametrize("name", ["binary-logistic", "reg-squarederror-named-exact", "reg-tweedie"])
def test_float64_input_matches_float32(cases, name):
    case = cases[name]
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
def test_thread_count_does_not_change_results(cases, name):
    forest = cases[name].forest
    default = cases[name].kernel
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
def test_zero_rows(cases, output):
    case = cases["binary-logistic"]
    X = np.empty((0, case.num_features), dtype=np.float32)
    got = case.kernel.predict(X, output=output)
    assert got.dtype == np.float32
    assert got.shape == (0,) == case.booster.inplace_predict(X).shape


@pytest.mark.parametrize(
    "shape", [(6,), (10, 5), (10, 7), (10, 0), (2, 3, 6), ()], ids=lambda s: f"shape{s}"
)
def test_wrong_shape_raises(cases, shape):
    case = cases["binary-logistic"]
    assert case.num_features == 6
    with pytest.raises(kernels.InputShapeError):
        case.kernel.predict(np.zeros(shape, dtype=np.float32))


@pytest.mark.parametrize("dtype", [object, "U3", np.complex64])
def test_non_numeric_dtype_raises(cases, dtype):
    case = cases["binary-logistic"]
    with pytest.raises(kernels.InputShapeError):
        case.kernel.predict(np.zeros((4, case.num_features), dtype=dtype))


def test_unknown_output_raises(cases):
    case = cases["binary-logistic"]
    with pytest.raises(kernels.InputShapeError, match="output"):
        case.kernel.predict(np.zeros((4, case.num_features), np.float32), output="proba")


def test_input_errors_are_value_errors():
    assert issubclass(kernels.InputShapeError, kernels.KernelError)
    assert issubclass(kernels.KernelError, ValueError)


def test_kernel_refuses_pickling(cases):
    kernel = cases["binary-logistic"].kernel
    with pytest.raises(TypeError, match="compile per worker"):
        pickle.dumps(kernel)


def test_non_contiguous_inputs(cases):
    case = cases["reg-squarederror"]
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


def test_read_only_input_is_scored_and_left_untouched(cases):
    """Zero-copy Arrow buffers reach the kernel as read-only arrays."""
    case = cases["binary-logistic"]
    X = np.random.default_rng(9).normal(size=(300, case.num_features)).astype(np.float32)
    X[::7, 2] = np.nan
    before = X.copy()
    X.setflags(write=False)
    np.testing.assert_array_equal(case.kernel.predict(X), case.kernel.predict(before))
    np.testing.assert_array_equal(X, before)


def test_feature_major_input_is_scored_in_place(cases, monkeypatch):
    """The engine hands the kernel a transposed view of a (features, rows) buffer; it must
    score identically to row-major input and reach the launcher without a transposing copy."""
    case = cases["binary-logistic"]
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
