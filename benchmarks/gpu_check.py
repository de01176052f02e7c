"""Check the CUDA backend on a real GPU in one short call: exactness, then throughput.

The GPU machine has no XGBoost and no network, so the inputs are made beforehand, here:

    .venv/bin/python benchmarks/gpu_check.py prepare      # writes .gpucheck/ (needs xgboost)

``.gpucheck/`` holds two models with rows and XGBoost's own predictions for them: a small
one scored on rows with NaN, +-inf and values exactly on thresholds, and the DESIGN
reference model (binary:logistic, 500 trees, depth 8, 50 features, seed 0). Then, on the
GPU machine, from the repository root (``.gpucheck`` carried along):

    python3 benchmarks/gpu_check.py run [--rows 10000000]    # JSON to $OUT/gpu_check.json

It reports the GPU, then for every launcher variant in :data:`VARIANTS` (the walk, the
perfect traversal and its options) the largest absolute difference from XGBoost's
predictions on both models, how many margins differ from the walk's (none: both add
leaves in tree order) and how far they are from the ``numba`` CPU backend's; then rows/s of
the reference model on random rows with 2% NaN: each variant's kernel alone on rows already
on the device (CUDA events, median of 5 after a warm-up), the launcher from host memory to
host memory (transfers included) for the walk, the default and the fastest variant, and
``Kernel.predict``. With the simulator (``NUMBA_ENABLE_CUDASIM=1``) ``--check-rows 300
--rows 300 --model small`` runs every step in a few minutes.

The GPU machine's numba-cuda 0.30.4 cannot compile under its numpy 2.5 (see the
``np.row_stack`` shim below); carrying a numpy 2.4 wheel there also works.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# numba-cuda 0.30.4 registers an overload of np.row_stack, which numpy 2.5 removed: bring
# the alias back (the same function) so it can import under numpy 2.5 too.
if not hasattr(np, "row_stack"):
    np.row_stack = np.vstack
sys.path.insert(0, str(REPO))

from kernels import compile_model, load_model  # noqa: E402
from kernels.ir import Forest  # noqa: E402

#: name -> (XGBoost params, rounds, training rows, features, rows checked for exactness)
MODELS: dict[str, tuple[dict[str, Any], int, int, int, int]] = {
    "small": ({"objective": "binary:logistic", "max_depth": 6}, 20, 5_000, 10, 20_000),
    "reference": ({"objective": "binary:logistic", "max_depth": 8}, 500, 100_000, 50, 20_000),
}


def _rows(n_rows: int, n_features: int, rng: np.random.Generator, nan: float) -> np.ndarray:
    X = rng.standard_normal((n_rows, n_features), dtype=np.float32)
    X[rng.random((n_rows, n_features), dtype=np.float32) < nan] = np.nan
    return X


def _hard_rows(forest: Forest, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Put thresholds, one float32 step below them, and +-inf into ``X``."""
    inner = forest.feature >= 0
    feature, threshold = forest.feature[inner], forest.threshold[inner]
    n = X.shape[0]
    for values in (threshold, np.nextafter(threshold, np.float32(-np.inf))):
        pick = rng.integers(0, feature.size, size=n * 2)
        X[rng.integers(0, n, size=pick.size), feature[pick]] = values[pick]
    draw = rng.random(X.shape)
    X[draw < 0.02] = np.inf
    X[(draw >= 0.02) & (draw < 0.04)] = -np.inf
    return X


def prepare(data: Path) -> None:
    """Train both models, save them as UBJSON with rows and XGBoost's predictions."""
    import xgboost as xgb

    data.mkdir(exist_ok=True)
    for name, (params, rounds, n_train, n_features, n_check) in MODELS.items():
        rng = np.random.default_rng(0)
        X = _rows(n_train, n_features, rng, nan=0.02)
        Z = np.nan_to_num(X)
        logit = Z[:, 0] * Z[:, 1] + np.sin(2 * Z[:, 2]) + Z[:, 3:8].sum(axis=1) * 0.5
        y = (logit + rng.normal(scale=0.5, size=n_train) > 0).astype(np.float32)
        start = time.perf_counter()
        booster = xgb.train({**params, "seed": 0, "tree_method": "hist"}, xgb.DMatrix(X, y), rounds)
        booster.save_model(data / f"{name}.ubj")
        X_check = _rows(n_check, n_features, rng, nan=0.02)
        if name == "small":
            X_check = _hard_rows(load_model(data / f"{name}.ubj"), X_check, rng)
        np.save(data / f"{name}.X.npy", X_check)
        np.save(data / f"{name}.expected.npy", booster.inplace_predict(X_check))
        print(f"{name}: trained in {time.perf_counter() - start:.1f} s")


#: Launcher variants, label -> CudaLauncher keywords: the walk (the first CUDA kernel), the
#: perfect traversal with its defaults, other block sizes, and one tree at a time.
VARIANTS: dict[str, dict[str, Any]] = {
    "walk_128": {"traversal": "walk", "threads_per_block": 128},
    "perfect_128": {},
    "perfect_64": {"threads_per_block": 64},
    "perfect_96": {"threads_per_block": 96},
    "perfect_32": {"threads_per_block": 32},
    "perfect_single_128": {"pair_trees": False},
}


def _describe(launcher: Any) -> dict[str, Any]:
    """What a launcher actually runs (a variant may fall back to the walk)."""
    keys = ("traversal", "threads_per_block", "pair_trees", "rows_in_shared", "_copy_threads")
    return {k: getattr(launcher, k, None) for k in keys} | {
        "shared_bytes": launcher._shared_bytes,
        "kernel": launcher._kernel.__name__,
    }


def _margins(launcher: Any, X: np.ndarray, n_outputs: int) -> np.ndarray:
    out = np.full((X.shape[0], n_outputs), np.nan)  # poisoned: every row must be written
    launcher(X, out)
    return out


def _exactness(data: Path, name: str, max_rows: int | None = None) -> dict[str, Any]:
    """Every variant against XGBoost's predictions, the walk's margins and the CPU's."""
    from kernels._numba_cpu import CpuLauncher
    from kernels._numba_cuda import CudaLauncher
    from kernels.kernel import apply_link

    forest = load_model(data / f"{name}.ubj")
    X = np.load(data / f"{name}.X.npy")[:max_rows]
    expected = np.load(data / f"{name}.expected.npy")[:max_rows].reshape(X.shape[0], -1)
    start = time.perf_counter()
    kernel = compile_model(forest, backend="cuda")
    result: dict[str, Any] = {
        "backend": kernel.backend,
        "rows": X.shape[0],
        "compile_s": round(time.perf_counter() - start, 3),
        "max_abs_err_vs_xgboost_predict": float(
            np.abs(kernel.predict(X).reshape(expected.shape) - expected).max()
        ),
    }
    cpu_margins = _margins(CpuLauncher(forest), X, forest.num_outputs)
    walk = None
    for label, options in VARIANTS.items():
        launcher = CudaLauncher(forest, **options)
        margins = _margins(launcher, X, forest.num_outputs)
        walk = margins if walk is None else walk
        err = np.abs(apply_link(margins, forest.link) - expected)
        result[label] = {
            "max_abs_err_vs_xgboost": float(np.nanmax(err)) if err.size else 0.0,
            "unwritten_margins": int(np.isnan(margins).sum()),
            "margins_differing_from_walk": int((margins != walk).sum()),
            "max_abs_margin_diff_vs_cpu": float(np.abs(margins - cpu_margins).max()),
            "launcher": _describe(launcher),
        }
    return result


def _median_s(timed: Callable[[], float], reps: int = 5, budget_s: float = 4.0) -> float:
    """Median of up to ``reps`` timings after one warm-up, stopping once over budget."""
    timed()
    times: list[float] = []
    while len(times) < reps and sum(times) < budget_s:
        times.append(timed())
    return float(np.median(times))


def _device_only(forest: Forest, X: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
    """Each variant on rows already on the device, timed with CUDA events; the walk's
    margins (the first variant's) to compare the others with."""
    from numba import cuda

    from kernels._numba_cuda import CudaLauncher

    n_rows = X.shape[0]
    d_X = cuda.to_device(X)
    d_out = cuda.device_array((n_rows, forest.num_outputs), np.float64)
    poison = np.full((n_rows, forest.num_outputs), np.nan)
    device_only: dict[str, Any] = {}
    reference = None
    for label, options in VARIANTS.items():
        launcher = CudaLauncher(forest, **options)

        def timed(launcher: CudaLauncher = launcher) -> float:
            begin, end = cuda.event(), cuda.event()  # timing events by default
            begin.record()
            launcher.predict_device(d_X, d_out)
            end.record()
            end.synchronize()
            return max(begin.elapsed_time(end), 1e-6) / 1e3  # ms -> s (0 in the simulator)

        d_out.copy_to_device(poison)
        rate = round(n_rows / _median_s(timed))
        margins = d_out.copy_to_host()
        reference = margins if reference is None else reference
        device_only[label] = {
            "rows_per_s": rate,
            "margins_differing_from_walk": int((margins != reference).sum()),
            "launcher": _describe(launcher),
        }
        print(f"device only {label}: {rate / 1e6:.1f} M rows/s", flush=True)
    if reference is None:
        raise RuntimeError("no variant ran")
    return device_only, reference


def _throughput(data: Path, n_rows: int, model: str = "reference") -> dict[str, Any]:
    from numba import cuda

    from kernels import _numba_cuda
    from kernels._numba_cuda import CudaLauncher

    forest = load_model(data / f"{model}.ubj")
    start = time.perf_counter()
    X = _rows(n_rows, forest.num_features, np.random.default_rng(1), nan=0.02)
    result: dict[str, Any] = {"rows": n_rows, "make_rows_s": round(time.perf_counter() - start, 1)}

    device_only, reference = _device_only(forest, X)
    result["device_only"] = device_only
    fastest = max(device_only, key=lambda k: device_only[k]["rows_per_s"])
    result["fastest_device_only"] = fastest

    # From host memory to host memory: staging copies, transfers, kernel, copies back.
    with_transfers: dict[str, Any] = {}
    chunk = CudaLauncher(forest).chunk_rows
    for label, options in {
        "walk_128_copy4": {**VARIANTS["walk_128"], "copy_threads": 4},
        "default_copy4": {"copy_threads": 4},
        "default": {},
        f"{fastest}_copy16": {**VARIANTS[fastest], "copy_threads": 16},
        f"{fastest}_chunk4x": {**VARIANTS[fastest], "chunk_rows": 4 * chunk},
    }.items():
        launcher = CudaLauncher(forest, **options)
        out = np.full((n_rows, forest.num_outputs), np.nan)

        def timed(launcher: CudaLauncher = launcher, out: np.ndarray = out) -> float:
            start = time.perf_counter()
            launcher(X, out)
            return time.perf_counter() - start

        rate = round(n_rows / _median_s(timed, reps=3))
        with_transfers[label] = {
            "rows_per_s": rate,
            "margins_differing_from_walk": int((out != reference).sum()),
        }
        print(f"with transfers {label}: {rate / 1e6:.1f} M rows/s", flush=True)
    result["with_transfers"] = with_transfers

    # The public API: adds the margin buffer, the link and the float32 result.
    kernel = compile_model(forest, backend="cuda")

    def timed_predict() -> float:
        start = time.perf_counter()
        kernel.predict(X)
        return time.perf_counter() - start

    result["rows_per_s_kernel_predict"] = round(n_rows / _median_s(timed_predict, reps=3))

    # Context: the pinned host-to-device bus, and one thread copying into pinned memory.
    rows = min(n_rows, chunk)
    host = cuda.pinned_array((rows, forest.num_features), np.float32)
    dev = cuda.device_array_like(host)
    start = time.perf_counter()
    np.copyto(host, X[:rows])
    result["one_thread_copy_to_pinned_GB_per_s"] = round(
        host.nbytes / (time.perf_counter() - start) / 1e9, 1
    )
    start = time.perf_counter()
    for _ in range(5):
        dev.copy_to_device(host)
    cuda.synchronize()
    result["pinned_h2d_GB_per_s"] = round(5 * host.nbytes / (time.perf_counter() - start) / 1e9, 1)
    for kern in (_numba_cuda._predict_shared, _numba_cuda._predict_perfect):
        if hasattr(kern, "get_regs_per_thread"):  # not in the simulator
            result[f"{kern.__name__}_regs_local_bytes"] = [
                list(kern.get_regs_per_thread().values()),
                list(kern.get_local_mem_per_thread().values()),
            ]

    cpu = compile_model(forest, backend="numba")
    cpu.predict(X[:1000])
    n_cpu = min(n_rows, 1_000_000)
    start = time.perf_counter()
    cpu.predict(X[:n_cpu])
    result["cpu_numba_rows_per_s"] = round(n_cpu / (time.perf_counter() - start))
    return result


def run(
    data: Path, n_rows: int, *, check_rows: int | None = None, model: str = "reference"
) -> None:
    """Exactness of every variant on both models, then throughput on ``model``."""
    from numba import cuda

    device = cuda.get_current_device()
    name = getattr(device, "name", "simulator")
    name = name.decode() if isinstance(name, bytes) else str(name)
    report: dict[str, Any] = {
        "gpu": name,
        "compute_capability": list(getattr(device, "compute_capability", ())),
        "python": platform.python_version(),
        "numba": __import__("numba").__version__,
        "numba_cuda": _version("numba-cuda"),
        "numpy": np.__version__,
        "cpu_count": os.cpu_count(),
        "variants": VARIANTS,
    }
    out_dir = Path(os.environ.get("OUT", "."))
    path = out_dir / "gpu_check.json"
    for key, step in [
        ("small", lambda: _exactness(data, "small", check_rows)),
        ("reference", lambda: _exactness(data, "reference", check_rows)),
        ("throughput", lambda: _throughput(data, n_rows, model)),
    ]:
        start = time.perf_counter()
        try:
            report[key] = step()
        except Exception as exc:  # report what failed and carry on with the next step
            report[key] = {"error": f"{type(exc).__name__}: {exc}"}
        report[key]["step_s"] = round(time.perf_counter() - start, 1)
        path.write_text(json.dumps(report, indent=2))
        print(key, json.dumps(_summary(report[key])), flush=True)


def _summary(report: Any) -> Any:
    """``report`` without the launcher descriptions (they are in the JSON file)."""
    if isinstance(report, dict):
        return {k: _summary(v) for k, v in report.items() if k != "launcher"}
    return report


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("prepare", "run"))
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--data", type=Path, default=REPO / ".gpucheck")
    parser.add_argument("--check-rows", type=int, help="rows per exactness check (all)")
    parser.add_argument("--model", default="reference", help="model timed (reference)")
    args = parser.parse_args()
    if args.step == "prepare":
        prepare(args.data)
    else:
        run(args.data, args.rows, check_rows=args.check_rows, model=args.model)


if __name__ == "__main__":
    main()
