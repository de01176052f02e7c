"""Fixtures of the benchmark suite: the DESIGN reference model, its data, a ratio table.

Reference model (DESIGN.md, "Performance targets"): XGBoost binary:logistic, 500 trees,
max_depth 8, 50 float32 features with 2% NaN. It is trained once (100k rows, seed 0,
``tree_method="hist"``) and cached under ``benchmarks/.cache/``, keyed by its parameters and
the XGBoost version, so repeated runs skip training. Scoring data: 1M fresh rows from the
same distribution (seed 1).

Environment overrides:

- ``LAKESCORE_BENCH_ROWS``: rows to score (default 1,000,000; a smoke run uses 20000);
- ``LAKESCORE_BENCH_ROUNDS``: timed rounds per contender (default 3).

Run with ``pytest benchmarks`` (``testpaths`` keeps plain ``pytest`` away from here).
"""

from __future__ import annotations

# As in ``lakescore``: engine's first import sets Arrow's allocator (cluster.arrow_allocator)
# before XGBoost loads pyarrow; every contender in this process runs with it.
import engine  # noqa: F401

# isort: split
import hashlib
import json
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
import xgboost as xgb

import kernels

ROWS = int(os.environ.get("LAKESCORE_BENCH_ROWS", "1000000"))
ROUNDS = int(os.environ.get("LAKESCORE_BENCH_ROUNDS", "3"))
CACHE_DIR = Path(__file__).parent / ".cache"
# TL2cgen libraries (minutes to compile) and parsed models persist across benchmark runs.
os.environ.setdefault("LAKESCORE_CACHE_DIR", str(CACHE_DIR / "lakescore"))

N_FEATURES = 50
NAN_RATE = 0.02
TRAIN_ROWS = 100_000
TRAIN_PARAMS = {
    "objective": "binary:logistic",
    "max_depth": 8,
    "eta": 0.1,
    "tree_method": "hist",
    "seed": 0,
}
N_TREES = 500
LAKE_FILES = 8

T = TypeVar("T")


# --- the reference model and data --------------------------------------------------------


def make_features(n_rows: int, seed: int) -> np.ndarray:
    """C-contiguous float32 (n_rows, 50) standard normal with 2% NaN."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, N_FEATURES), dtype=np.float32)
    X[rng.random((n_rows, N_FEATURES), dtype=np.float32) < NAN_RATE] = np.nan
    return X


def make_labels(X: np.ndarray, seed: int) -> np.ndarray:
    """Noisy binary labels from a nonlinear function of most features (deep, full trees)."""
    rng = np.random.default_rng(seed)
    Z = np.nan_to_num(X[:, :40]).astype(np.float64)
    logit = (
        Z[:, :10].sum(axis=1) * 0.4
        + np.sin(2.0 * Z[:, 10:20]).sum(axis=1) * 0.5
        + (Z[:, 20:30] * Z[:, 30:40]).sum(axis=1) * 0.3
        + np.isnan(X[:, 0]) * 0.8
    )
    return (logit + rng.logistic(size=X.shape[0]) > 0).astype(np.float32)


def reference_model_path() -> Path:
    """The cached reference model, trained first if the cache lacks it."""
    key = json.dumps(
        {
            "params": TRAIN_PARAMS,
            "trees": N_TREES,
            "rows": TRAIN_ROWS,
            "features": N_FEATURES,
            "nan": NAN_RATE,
            "xgboost": xgb.__version__,
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    path = CACHE_DIR / f"reference-{digest}.ubj"
    if path.exists():
        return path
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    X = make_features(TRAIN_ROWS, seed=0)
    dtrain = xgb.DMatrix(X, label=make_labels(X, seed=0), missing=np.nan)
    params = dict(TRAIN_PARAMS, nthread=os.cpu_count() or 1)
    booster = xgb.train(params, dtrain, num_boost_round=N_TREES)
    partial = path.with_suffix(f".{os.getpid()}.ubj")
    booster.save_model(partial)
    partial.replace(path)  # atomic: a concurrent or interrupted run never sees half a file
    return path


@pytest.fixture(scope="session")
def reference_path() -> Path:
    return reference_model_path()


@pytest.fixture(scope="session")
def reference_booster(reference_path: Path) -> xgb.Booster:
    booster = xgb.Booster(model_file=str(reference_path))
    if booster.num_boosted_rounds() != N_TREES:
        raise RuntimeError(f"{reference_path}: expected {N_TREES} trees; delete the cache")
    return booster


@pytest.fixture(scope="session")
def reference_forest(reference_path: Path) -> kernels.Forest:
    return kernels.load_model(reference_path)


@pytest.fixture(scope="session")
def bench_X() -> np.ndarray:
    """The rows every contender scores: ``ROWS`` x 50 float32, 2% NaN, seed 1."""
    return make_features(ROWS, seed=1)


@pytest.fixture(scope="session")
def reference_lake(tmp_path_factory: pytest.TempPathFactory, bench_X: np.ndarray) -> Path:
    """The benchmark rows plus a ``customer_id`` in 8 hive-partitioned Parquet files
    (row groups of 65,536 rows): the end-to-end benchmarks' source."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path_factory.mktemp("reference-lake")
    for i, rows in enumerate(np.array_split(np.arange(bench_X.shape[0]), LAKE_FILES)):
        columns = {"customer_id": pa.array(rows.astype(np.int64))}
        for j in range(N_FEATURES):
            col = bench_X[rows, j]
            columns[f"f{j}"] = pa.array(col, mask=np.isnan(col))
        part = root / f"region=r{i}"
        part.mkdir()
        pq.write_table(pa.table(columns), part / "part-0.parquet", row_group_size=65_536)
    return root


@pytest.fixture(scope="session")
def checked_kernels(
    reference_forest: kernels.Forest, reference_booster: xgb.Booster, bench_X: np.ndarray
) -> dict[int, kernels.Kernel]:
    """The numba kernel per thread count, compiled, warmed up and checked against XGBoost
    on the first 10k rows (a fast wrong kernel would make every ratio meaningless)."""
    compiled = {}
    sample = bench_X[:10_000]
    expected = reference_booster.inplace_predict(sample)
    for n_threads in (1, 2):
        kernel = kernels.compile_model(reference_forest, backend="numba", n_threads=n_threads)
        np.testing.assert_allclose(kernel.predict(sample), expected, rtol=0, atol=1e-5)
        compiled[n_threads] = kernel
    return compiled


# --- results and the table ---------------------------------------------------------------


@dataclass
class Timing:
    model: str
    contender: str
    n_threads: int
    rows: int
    seconds: list[float] = field(default_factory=list)
    peak_rss_mib: float = float("nan")
    ready_s: float = float("nan")
    note: str = ""

    @property
    def rows_per_s(self) -> float:
        return self.rows / min(self.seconds) if self.seconds else float("nan")


_RESULTS = pytest.StashKey[dict[tuple[str, int, str], Timing]]()


@pytest.fixture(scope="session")
def bench_results(pytestconfig: pytest.Config) -> dict[tuple[str, int, str], Timing]:
    """Best-of-rounds timings by (model, n_threads, contender), tabled at the end."""
    return pytestconfig.stash.setdefault(_RESULTS, {})


def peak_rss_mib() -> float:
    """This process's peak resident set size since :func:`reset_peak_rss` (or its start)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reset_peak_rss() -> None:
    """Start a new peak-RSS window (Linux: writing 5 to clear_refs resets VmHWM)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass  # the window then covers the whole process


class Runner:
    """``run(model, contender, n_threads, score, rows=ROWS, ready_s=nan, note="")``: time
    ``score`` with ``benchmark.pedantic`` (``ROUNDS`` rounds, one call each), record rows/s,
    the peak RSS while it ran and the file-to-first-prediction time for the table; returns
    ``score``'s last result."""

    def __init__(self, benchmark, results: dict[tuple[str, int, str], Timing]) -> None:
        self.benchmark = benchmark
        self.results = results

    def __call__(
        self,
        model: str,
        contender: str,
        n_threads: int,
        score: Callable[[], T],
        rows: int = ROWS,
        ready_s: float = float("nan"),
        note: str = "",
    ) -> T:
        timing = Timing(model, contender, n_threads, rows, ready_s=ready_s, note=note)

        def timed() -> T:  # own clock: also works under --benchmark-disable
            start = time.perf_counter()
            result = score()
            timing.seconds.append(time.perf_counter() - start)
            return result

        self.benchmark.group = f"{model}, {n_threads} thread(s)"
        reset_peak_rss()
        result = self.benchmark.pedantic(timed, rounds=ROUNDS, iterations=1)
        timing.peak_rss_mib = peak_rss_mib()
        self.results[(model, n_threads, contender)] = timing
        self.benchmark.extra_info.update(
            model=model,
            contender=contender,
            n_threads=n_threads,
            rows=rows,
            rows_per_s=round(timing.rows_per_s),
            peak_rss_mib=round(timing.peak_rss_mib, 1),
            ready_s=round(ready_s, 3),
        )
        return result


@pytest.fixture
def run_contender(benchmark, bench_results) -> Runner:
    return Runner(benchmark, bench_results)


_COMPILE = pytest.StashKey[list[dict[str, object]]]()


@pytest.fixture(scope="session")
def compile_results(pytestconfig: pytest.Config) -> list[dict[str, object]]:
    """Fresh-process compile-time measurements (``compile_time.py``), tabled at the end."""
    return pytestconfig.stash.setdefault(_COMPILE, [])


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    from report import compile_table, end_to_end_shares, markdown_table

    results = config.stash.get(_RESULTS, {})
    compiled = config.stash.get(_COMPILE, [])
    if not (results or compiled):
        return
    terminalreporter.section("lakescore benchmarks")
    if results:
        for line in markdown_table(list(results.values())):
            terminalreporter.write_line(line)
        shares = end_to_end_shares(list(results.values()))
        if shares:  # the kernel alone is the faster of its two layouts
            terminalreporter.write_line("")
            for line in shares:
                terminalreporter.write_line(line)
    if compiled:
        terminalreporter.write_line("")
        terminalreporter.write_line("Model file -> ready kernel, fresh process (seconds):")
        terminalreporter.write_line("")
        for line in compile_table(compiled):
            terminalreporter.write_line(line)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    terminalreporter.write_line("")
    terminalreporter.write_line(
        f"best of {ROUNDS} round(s); load average at the end {load} on {os.cpu_count()} CPUs"
    )
