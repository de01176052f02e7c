"""Check the CUDA backend on a real GPU in one short call: exactness, then throughput.

The GPU machine has no XGBoost and no network, so the inputs are made beforehand, here:

    .venv/bin/python benchmarks/gpu_check.py prepare      # writes .gpucheck/ (needs xgboost)

``.gpucheck/`` holds two models with rows and XGBoost's own predictions for them: a small
one scored on rows with NaN, +-inf and values exactly on thresholds, and the DESIGN
reference model (binary:logistic, 500 trees, depth 8, 50 features, seed 0). Then, on the
GPU machine, from the repository root (``.gpucheck`` carried along):

    python3 benchmarks/gpu_check.py run [--rows 10000000]    # JSON to $OUT/gpu_check.json

It reports the GPU, the largest absolute difference from XGBoost and how far margins are
from the ``numba`` CPU backend's (bitwise equal when both add leaves in tree order), then
rows/s of the reference model on random rows with 2% NaN: the kernel alone on rows already
on the device (timed with CUDA events) per launch variant, the launcher from host memory to
host memory (transfers included) per copy setting, and ``Kernel.predict``.

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


def _margins(launcher: Any, X: np.ndarray, n_outputs: int) -> np.ndarray:
    out = np.full((X.shape[0], n_outputs), np.nan)  # poisoned: every row must be written
    launcher(X, out)
    return out


def _exactness(data: Path, name: str) -> dict[str, Any]:
    from kernels._numba_cpu import CpuLauncher
    from kernels._numba_cuda import CudaLauncher

    forest = load_model(data / f"{name}.ubj")
    X = np.load(data / f"{name}.X.npy")
    expected = np.load(data / f"{name}.expected.npy")
    start = time.perf_counter()
    kernel = compile_model(forest, backend="cuda")
    compile_s = time.perf_counter() - start
    got = kernel.predict(X)
    cuda_margins = _margins(CudaLauncher(forest), X, forest.num_outputs)
    cpu_margins = _margins(CpuLauncher(forest), X, forest.num_outputs)
    return {
        "backend": kernel.backend,
        "rows": X.shape[0],
        "compile_s": round(compile_s, 3),
        "max_abs_err_vs_xgboost": float(np.abs(got - expected).max()),
        "margins_differing_from_cpu": int((cuda_margins != cpu_margins).sum()),
        "max_abs_margin_diff_vs_cpu": float(np.abs(cuda_margins - cpu_margins).max()),
        "unwritten_margins": int(np.isnan(cuda_margins).sum()),
    }


def _median_s(timed: Callable[[], float], reps: int = 5, budget_s: float = 4.0) -> float:
    """Median of up to ``reps`` timings after one warm-up, stopping once over budget."""
    timed()
    times: list[float] = []
    while len(times) < reps and sum(times) < budget_s:
        times.append(timed())
    return float(np.median(times))


def _throughput(data: Path, n_rows: int) -> dict[str, Any]:
    from numba import cuda

    from kernels import _numba_cuda
    from kernels._numba_cuda import CudaLauncher

    forest = load_model(data / "reference.ubj")
    start = time.perf_counter()
    X = _rows(n_rows, forest.num_features, np.random.default_rng(1), nan=0.02)
    result: dict[str, Any] = {"rows": n_rows, "make_rows_s": round(time.perf_counter() - start, 1)}

    # The kernel alone, on rows already on the device, timed with CUDA events.
    d_X = cuda.to_device(X)
    d_out = cuda.device_array((n_rows, forest.num_outputs), np.float64)
    device_only: dict[str, float] = {}
    reference = None
    for label, options in {
        "shared_128": {},
        "shared_256": {"threads_per_block": 256},
        "shared_64": {"threads_per_block": 64},
        "global_128": {"rows_in_shared": False},
    }.items():
        launcher = CudaLauncher(forest, **options)

        def timed(launcher: CudaLauncher = launcher) -> float:
            begin, end = cuda.event(), cuda.event()  # timing events by default
            begin.record()
            launcher.predict_device(d_X, d_out)
            end.record()
            end.synchronize()
            return begin.elapsed_time(end) / 1e3  # ms -> s

        device_only[label] = round(n_rows / _median_s(timed))
        margins = d_out.copy_to_host()
        reference = margins if reference is None else reference
        if not np.array_equal(margins, reference):
            device_only[label + "_MISMATCH"] = 1
        print(f"device only {label}: {device_only[label] / 1e6:.1f} M rows/s", flush=True)
    result["rows_per_s_device_only"] = device_only

    # From host memory to host memory: staging copies, transfers, kernel, copies back.
    with_transfers: dict[str, float] = {}
    chunk = CudaLauncher(forest).chunk_rows
    for label, options in {
        "copy1": {"copy_threads": 1},
        "copy4": {},
        "copy8": {"copy_threads": 8},
        "copy8_chunk4x": {"copy_threads": 8, "chunk_rows": 4 * chunk},
    }.items():
        launcher = CudaLauncher(forest, **options)
        out = np.full((n_rows, forest.num_outputs), np.nan)

        def timed(launcher: CudaLauncher = launcher, out: np.ndarray = out) -> float:
            start = time.perf_counter()
            launcher(X, out)
            return time.perf_counter() - start

        with_transfers[label] = round(n_rows / _median_s(timed, reps=3))
        if not np.array_equal(out, reference):
            with_transfers[label + "_MISMATCH"] = 1
        print(f"with transfers {label}: {with_transfers[label] / 1e6:.1f} M rows/s", flush=True)
    result["rows_per_s_with_transfers"] = with_transfers

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
    for kern in (_numba_cuda._predict_shared, _numba_cuda._predict_global):
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


def run(data: Path, n_rows: int) -> None:
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
        "cpu_count": os.cpu_count(),
    }
    out_dir = Path(os.environ.get("OUT", "."))
    path = out_dir / "gpu_check.json"
    for key, step in [
        ("small", lambda: _exactness(data, "small")),
        ("reference", lambda: _exactness(data, "reference")),
        ("throughput", lambda: _throughput(data, n_rows)),
    ]:
        try:
            report[key] = step()
        except Exception as exc:  # report what failed and carry on with the next step
            report[key] = {"error": f"{type(exc).__name__}: {exc}"}
        path.write_text(json.dumps(report, indent=2))
        print(key, json.dumps(report[key]), flush=True)


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
    args = parser.parse_args()
    prepare(args.data) if args.step == "prepare" else run(args.data, args.rows)


if __name__ == "__main__":
    main()
