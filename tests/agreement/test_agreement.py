"""Every registry model scores as its own library does: family x objective x data x backend.

For each :data:`~agreement.registry.REGISTRY` entry, each file format it is saved in, each
dataset of :mod:`agreement.data` that applies to it and each backend of :data:`BACKENDS`:
``kernels.compile_model(kernels.load_model(file), backend=...).predict(X)`` must match the
native predict, and ``predict(X, output="margin")`` the native raw score where the library
gives one. Where the registry knows how the library routes rows (XGBoost and LightGBM's
``pred_leaf``), the kernel's margin must also be the float64 sum of exactly those leaves.
Hypothesis draws further rows per model, and every CPU layout is checked on its own.

Tolerances
----------
By how the native library sums (the entry's ``tolerance`` class) and what is compared
(margins, and the entry's ``output``); the kernel sums leaves in float64 and rounds once
to float32.

=============  ======================  ==================  ===============  =========
class          native library          margin, value       probability      class
                                       (positive: exp)
=============  ======================  ==================  ===============  =========
float32-sum    XGBoost (float32 sums)  rtol 1e-5, atol     atol 1e-6        exact
                                       1e-5 (positive:
                                       rtol 1e-5, atol
                                       1e-6)
float64-sum    LightGBM, sklearn trees rtol 2**-23,        atol 1e-7        exact
               (float64 sums)          atol 1e-9
linear         sklearn linear models   rtol 1e-6, atol     atol 1e-6        exact
               (scalers unfolded)      1e-6
routing        leaves the library      rtol 2**-23, atol 1e-9 (one float32 rounding)
               routes to, in float64
=============  ======================  ==================  ===============  =========

Why: XGBoost adds each leaf to a float32 running sum (an error up to about ``n_trees *
2**-24 * |partial sum|``, measured at most 4.8e-6 on margins up to 19); the sigmoid's slope
is at most 1/4 and softmax's 1/2, so probabilities err less; ``exp`` turns a margin error
``d`` into a relative error ``d``. LightGBM and scikit-learn sum in float64 (in another
order for forests, which divide each leaf rather than the sum): one float32 rounding,
measured at most 6e-8 on probabilities. Linear models differ by where the scaler is
applied (folded into the coefficients here), about 1e-7 relative. A wrong branch moves a
score by a whole leaf difference over the tree count (typically 1e-3 to 1), far above all
of these; the routing check catches the rest.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kernels
from agreement import data
from agreement.registry import BY_NAME, REGISTRY, ModelCase, Zoo

#: The backend axis. A new backend is one more name here (e.g. "tl2cgen"); a backend that
#: refuses a model kind (a KernelError from compile_model) is skipped for that model.
BACKENDS = ("numba", "cuda", "tl2cgen")
#: compile_model options per backend. One CPU thread: the suite shares small machines with
#: other tests, where thread start-up costs 20x the scoring, and the thread count never
#: changes a result (tests/test_kernel_inputs.py checks that).
BACKEND_OPTIONS: dict[str, dict[str, Any]] = {"numba": {"n_threads": 1}}
#: The backend that must score every model the loaders accept: a refusal fails.
STRICT = "numba"
#: Without a GPU, CUDA runs in Numba's CUDA simulator, in one child process, for these
#: entries (a model kind of each family, and ones it must refuse) on every dataset, each
#: cut to :data:`SIMULATED_ROWS` rows: the simulator runs every GPU thread in Python.
HAS_GPU = os.path.exists("/dev/nvidiactl")
SIMULATED: frozenset[str] = frozenset() if HAS_GPU else frozenset({"cuda"})
SIMULATED_CASES = (
    "xgb-binary-logistic",
    "xgb-multi-softprob",
    "xgb-deep",
    "lgb-regression",
    "lgb-zero-as-missing",
    "sk-hgb-categorical",
    "sk-hgb-binary",
    "sk-logistic-multiclass",
)
SIMULATED_ROWS = 32
#: TL2cgen compiles each model to C with gcc (seconds per model, cached by the kernel
#: cache): these entries, one per family and output kind, in their primary format.
COMPILED_CASES = {
    "tl2cgen": (
        "xgb-binary-logistic",
        "xgb-reg-squarederror",
        "xgb-count-poisson",
        "xgb-multi-softprob",
        "lgb-binary",
        "lgb-regression",
        "lgb-multiclass",
        "sk-forest-binary",
        "sk-gb-binary",
        "sk-hgb-binary",
        "sk-logistic-binary",
        "sk-pipeline-scaler-logistic",
    )
}

F32_ONE_ROUNDING = {"rtol": 2**-23, "atol": 1e-9}
TOLERANCES: dict[tuple[str, str], dict[str, float]] = {
    ("float32-sum", "margin"): {"rtol": 1e-5, "atol": 1e-5},
    ("float32-sum", "value"): {"rtol": 1e-5, "atol": 1e-5},
    ("float32-sum", "positive"): {"rtol": 1e-5, "atol": 1e-6},
    ("float32-sum", "probability"): {"rtol": 0.0, "atol": 1e-6},
    ("float64-sum", "margin"): F32_ONE_ROUNDING,
    ("float64-sum", "value"): F32_ONE_ROUNDING,
    ("float64-sum", "positive"): F32_ONE_ROUNDING,
    ("float64-sum", "probability"): {"rtol": 0.0, "atol": 1e-7},
    ("linear", "margin"): {"rtol": 1e-6, "atol": 1e-6},
    ("linear", "value"): {"rtol": 1e-6, "atol": 1e-6},
    ("linear", "positive"): {"rtol": 1e-6, "atol": 1e-6},
    ("linear", "probability"): {"rtol": 0.0, "atol": 1e-6},
}
ROUTING = F32_ONE_ROUNDING


def applies(dataset: str, case: ModelCase) -> bool:
    """Whether the native predict takes the dataset (NaN, +-inf) and it means something."""
    if dataset == "nan":
        return case.nan
    if dataset == "inf":
        return case.inf
    if dataset == "categories":
        return bool(case.train.categorical)
    return True


def _params() -> list[Any]:
    params = []
    for case in REGISTRY:
        for backend in BACKENDS:
            simulated = backend in SIMULATED
            if simulated and case.name not in SIMULATED_CASES:
                continue
            subset = COMPILED_CASES.get(backend)
            if subset is not None and case.name not in subset:
                continue
            formats = [case.primary] if simulated or subset else list(case.formats)
            marks = [pytest.mark.slow] if simulated else []
            for fmt in formats:
                for dataset in data.DATASETS:
                    if applies(dataset, case):
                        params.append(
                            pytest.param(
                                case.name, fmt, dataset, backend,
                                id=f"{case.name}-{fmt}-{dataset}-{backend}", marks=marks,
                            )
                        )  # fmt: skip
    return params


# --- scoring -------------------------------------------------------------------------------


def kernel_for(zoo: Zoo, case: ModelCase, fmt: str, backend: str) -> kernels.Kernel:
    """The compiled kernel; a backend other than :data:`STRICT` that refuses it skips."""
    try:
        kernel = zoo.kernel(case, fmt, backend, **BACKEND_OPTIONS.get(backend, {}))
    except kernels.KernelError as exc:
        if backend == STRICT:
            raise
        pytest.skip(f"{backend} refuses {case.name}: {exc}")
    assert kernel.backend == backend
    return kernel


@dataclass
class Simulated:
    """The CUDA simulator's outputs by job key, and the models it refused."""

    work: Path
    refused: dict[str, str]

    def outputs(self, key: str) -> dict[str, np.ndarray]:
        if key in self.refused:
            pytest.skip(f"cuda refuses it: {self.refused[key]}")
        return {o: np.load(self.work / f"{key}.{o}.npy") for o in ("prediction", "margin")}


def _simulated_rows(X: np.ndarray) -> np.ndarray:
    keep = np.unique(np.linspace(0, X.shape[0] - 1, SIMULATED_ROWS).astype(int))
    return np.ascontiguousarray(X[keep])


@pytest.fixture(scope="session")
def simulated(zoo: Zoo, tmp_path_factory: pytest.TempPathFactory) -> Simulated:
    """Runs every simulated (case, dataset) in one child process with NUMBA_ENABLE_CUDASIM=1."""
    work = tmp_path_factory.mktemp("cudasim")
    jobs = []
    for name in SIMULATED_CASES:
        case = BY_NAME[name]
        for dataset in data.DATASETS:
            if applies(dataset, case):
                key = f"{name}-{dataset}"
                np.save(work / f"{key}.npy", _simulated_rows(zoo.dataset(case, dataset)))
                jobs.append({
                    "key": key,
                    "path": str(zoo.trained(case).files[case.primary]),
                    "trust_pickle": case.formats[case.primary].trust_pickle,
                })  # fmt: skip
    (work / "jobs.json").write_text(json.dumps(jobs))
    tests = Path(__file__).resolve().parents[1]
    path = os.pathsep.join([str(tests.parent), str(tests)])
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "PYTHONPATH": path}
    proc = subprocess.run(
        [sys.executable, "-m", "agreement.cudasim", str(work)],
        env=env, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return Simulated(work, json.loads((work / "refused.json").read_text()))


def score(
    request: pytest.FixtureRequest,
    zoo: Zoo,
    case: ModelCase,
    fmt: str,
    dataset: str,
    backend: str,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The rows scored and the backend's prediction and margin for them."""  # fmt: skip
    X = zoo.dataset(case, dataset)
    if backend in SIMULATED:
        sim: Simulated = request.getfixturevalue("simulated")
        return _simulated_rows(X), sim.outputs(f"{case.name}-{dataset}")
    kernel = kernel_for(zoo, case, fmt, backend)
    return X, {o: kernel.predict(X, output=o) for o in ("prediction", "margin")}


# --- the oracle ----------------------------------------------------------------------------


def assert_agrees(
    zoo: Zoo, case: ModelCase, fmt: str, X: np.ndarray, got: dict[str, np.ndarray]
) -> None:
    """Prediction, margin and routing against the native library (module docstring)."""
    model = zoo.trained(case).model
    comparable = case.formats[fmt].comparable
    rows = comparable(X) if comparable else np.ones(X.shape[0], bool)
    # The kernel returns float32: the native output is compared after the same cast (which
    # only matters past the float32 range, where both become inf).
    with np.errstate(over="ignore"):
        expected = np.asarray(case.predict(model, X)).astype(np.float32)
    prediction = got["prediction"]
    assert prediction.dtype == np.float32 and got["margin"].dtype == np.float32
    assert prediction.shape == expected.shape, (prediction.shape, expected.shape)
    where = f"{case.name} [{fmt}]"
    if case.output == "class":
        np.testing.assert_array_equal(prediction[rows], expected[rows], err_msg=where)
    else:
        np.testing.assert_allclose(
            prediction[rows], expected[rows], **TOLERANCES[(case.tolerance, case.output)],
            err_msg=f"{where}: prediction differs from the native library",
        )  # fmt: skip
    if case.margin is not None:
        with np.errstate(over="ignore"):
            native = np.asarray(case.margin(model, X)).astype(np.float32)
        assert got["margin"].shape == native.shape
        np.testing.assert_allclose(
            got["margin"][rows], native[rows], **TOLERANCES[(case.tolerance, "margin")],
            err_msg=f"{where}: margin differs from the native raw score",
        )  # fmt: skip
    if case.routed is not None:
        routed = case.routed(model, X, zoo.forest(case, fmt))
        np.testing.assert_allclose(
            got["margin"][rows], routed[rows], **ROUTING,
            err_msg=f"{where}: the kernel reaches other leaves than the native library",
        )  # fmt: skip


# --- agreement -----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "fmt", "dataset", "backend"), _params())
def test_agrees_with_native_predict(request, zoo, name, fmt, dataset, backend):
    case = BY_NAME[name]
    X, got = score(request, zoo, case, fmt, dataset, backend)
    assert_agrees(zoo, case, fmt, X, got)


GENERATED = settings(
    max_examples=6,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture,
    ],
)  # fmt: skip
IN_PROCESS = [b for b in BACKENDS if b not in SIMULATED]


@pytest.mark.parametrize("backend", IN_PROCESS)
@pytest.mark.parametrize("name", [case.name for case in REGISTRY])
@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")  # native math on huge values
@GENERATED
@given(draw=st.data())
def test_agrees_on_generated_rows(zoo, name, backend, draw):
    case = BY_NAME[name]
    kernel = kernel_for(zoo, case, case.primary, backend)
    X = draw.draw(data.rows(zoo.info(case)), label="X")
    got = {o: kernel.predict(X, output=o) for o in ("prediction", "margin")}
    assert_agrees(zoo, case, case.primary, X, got)


@pytest.mark.parametrize("layout", ["perfect", "sparse", "reference"])
@pytest.mark.parametrize("name", [case.name for case in REGISTRY])
def test_every_cpu_layout_agrees(zoo, name, layout):
    """``compile_model`` picks one CPU layout per forest; each layout that can hold the
    forest must be exact on its own, so the choice is only ever about speed."""
    from kernels._cpu_layout import MAX_PERFECT_DEPTH
    from kernels._numba_cpu import CpuLauncher

    case = BY_NAME[name]
    forest = zoo.forest(case, case.primary)
    if layout != "reference" and (
        forest.num_trees == 0 or forest.has_categorical or forest.has_zero_missing
    ):
        pytest.skip("categorical splits, zero_as_missing and linear models: reference only")
    if layout == "perfect" and int(forest.tree_depths().max()) > MAX_PERFECT_DEPTH:
        pytest.skip("deeper than the complete-tree layout allows")
    kernel = kernels.Kernel(
        forest, backend="numba", launcher=CpuLauncher(forest, layout=layout, n_threads=1)
    )
    X = np.concatenate([zoo.dataset(case, d) for d in data.DATASETS if applies(d, case)])
    got = {o: kernel.predict(X, output=o) for o in ("prediction", "margin")}
    assert_agrees(zoo, case, case.primary, X, got)


# --- the registry and the axes -----------------------------------------------------------


def test_every_backend_is_on_the_axis():
    """A backend kernels offers is one the suite scores with (add it to BACKENDS)."""
    assert set(kernels.BACKENDS) - {"auto"} <= set(BACKENDS)


@pytest.mark.parametrize("name", [case.name for case in REGISTRY])
def test_every_format_loads_one_forest(zoo, name):
    """Every file of a model (treelite's import aside, which re-encodes it) and the fitted
    object itself load to the same forest; skops and LightGBM/XGBoost files need no trust
    flag, and pickles are refused without it."""
    case = BY_NAME[name]
    trained = zoo.trained(case)
    in_memory = kernels.load_model(trained.model)
    for fmt, spec in case.formats.items():
        forest = zoo.forest(case, fmt)
        assert len(forest.sha256) == 64
        if fmt != "treelite":
            assert forest.fingerprint() == in_memory.fingerprint(), fmt
        else:
            assert forest.source_format == "treelite"
        if spec.trust_pickle:
            with pytest.raises(kernels.UntrustedModelError, match="--trust-pickle"):
                kernels.load_model(trained.files[fmt], cache=False)


@pytest.mark.parametrize("name", [case.name for case in REGISTRY])
def test_inspect_describes_every_entry(zoo, name):
    """``lakescore inspect``'s summary for every family: format, objective, classes,
    trees, depth, leaves, features and their types, sha256, JSON-ready."""
    case = BY_NAME[name]
    trained = zoo.trained(case)
    forest = zoo.forest(case, case.primary)
    summary = forest.describe()
    json.dumps(summary)
    assert summary["format"] == forest.source_format != ""
    assert summary["objective"] and summary["features"] == trained.X.shape[1]
    assert len(summary["feature_names"]) == len(summary["feature_types"]) == trained.X.shape[1]
    if case.train.names:
        assert summary["feature_names"] == list(case.train.names)
    assert summary["trees"] == forest.num_trees
    assert summary["leaves"] == int((forest.feature < 0).sum())
    assert summary["linear_term"] == (forest.num_trees == 0)
    if case.family != "sklearn":  # sklearn's categorical entry need not split on it
        assert (summary["categorical_splits"] > 0) == bool(case.train.categorical)
    assert summary["outputs"] == forest.num_outputs
    classifier = case.target in ("binary", "multiclass") and case.output != "value"
    if classifier and case.objective != "cross_entropy":  # LightGBM's is a regression
        assert summary["classes"] is not None
        assert len(summary["classes"]) == (3 if case.target == "multiclass" else 2)
    digest = hashlib.sha256(trained.files[case.primary].read_bytes()).hexdigest()
    assert summary["sha256"] == digest
