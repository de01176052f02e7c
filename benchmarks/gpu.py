"""The GPU benchmark: the DESIGN reference model, CUDA against the CPU kernel, then rows/s.

One call on a GPU machine with only numpy, numba, numba-cuda and this repository (nothing
to install, no network, no prepared inputs), from the repository root:

    python3 benchmarks/gpu.py --json $OUT/gpu.json

1. Builds the reference model as a :class:`kernels.ir.Forest` from seed 0: 500 complete
   trees of depth 8 over 50 float32 features (``binary:logistic``-like: sigmoid link,
   small leaf values), thresholds drawn from the data's quantiles, ``default_left``
   random; and from it the variants the CUDA backend scores differently: the walk
   traversal, three outputs (softmax, argmax), ``exp`` with a link scale, ``-inf``
   thresholds, categorical splits of all three modes with LightGBM's zero band.
2. Agreement on ``--check-rows`` rows (100k) with 2% NaN, +-inf, zeros, whole numbers and
   values exactly on (and one float32 step below) thresholds: ``Kernel.predict`` of the
   ``cuda`` backend against the ``numba`` CPU backend. Both output float32 from float64
   margins that agree to float64 rounding (the CPU adds the base margin last), so the
   tolerance is 1e-6 on probabilities (TOLERANCE); the margins and the rows written are
   reported too. Any variant over it makes the exit status 1, after the timings.
3. Rows/s for each ``--rows`` count (1M, 10M, 100M) of the reference model: the kernel
   alone on rows already on the device (CUDA events; more rows than DEVICE_ROWS go
   through one device buffer in turns), the launcher from host to host (margins), and
   ``Kernel.predict`` from a host numpy matrix (probabilities, link on the device); at
   1M rows also from a feature-major matrix, as the engine builds them.
4. The copy and compute split on up to DEVICE_ROWS rows, each step alone with CUDA
   events: staging into pinned memory (host clock), the copy to the device, the kernel,
   the link, the copies back (float32 predictions, float64 margins).
5. Tuning: the kernel alone with other block sizes, one tree at a time, and the walk.

Prints a table and writes the JSON report (``--json``; default ``$OUT/gpu.json`` where
``OUT`` is set). In Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) the timings are
host-clock times of Python threads, not throughput; ``--rows 2000 --check-rows 500
--trees 20`` runs every step there.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# numba-cuda 0.30.4 registers an overload of np.row_stack, which numpy 2.5 (the GPU
# machine's) removed: bring the alias back (the same function) before numba.cuda loads.
if not hasattr(np, "row_stack"):
    np.row_stack = np.vstack
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kernels import compile_model  # noqa: E402
from kernels.ir import Forest  # noqa: E402

#: Largest absolute difference of predictions (probabilities) between the backends.
TOLERANCE = 1e-6
#: Rows kept on the device at once for the kernel-only and split timings (2 GB of X).
DEVICE_ROWS = 10_000_000
#: Distinct random rows; larger counts repeat them (1M rows are 200 MB, past any cache).
BASE_ROWS = 1_000_000


def make_rows(n_rows: int, n_features: int, seed: int, nan: float = 0.02) -> np.ndarray:
    """Standard normal float32 rows with a share ``nan`` of NaN cells."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, n_features), dtype=np.float32)
    X[rng.random((n_rows, n_features), dtype=np.float32) < nan] = np.nan
    return X


def reference_forest(sample: np.ndarray, *, n_trees: int, depth: int, seed: int) -> Forest:
    """Complete trees of ``depth`` over ``sample``'s columns, breadth-first (children of
    node i at 2i+1 and 2i+2), thresholds at random quantiles of the split column."""
    rng = np.random.default_rng(seed)
    n_features = sample.shape[1]
    n_inner = (1 << depth) - 1
    n_nodes = 2 * n_inner + 1
    inner = np.arange(n_nodes) < n_inner
    feature = np.where(inner, rng.integers(0, n_features, (n_trees, n_nodes)), -1)
    ordered = np.sort(sample, axis=0)  # NaN sorts last
    valid = (~np.isnan(sample)).sum(axis=0)
    column = np.maximum(feature, 0)
    rank = (rng.random((n_trees, n_nodes)) * (valid[column] - 1)).astype(np.int64)
    threshold = np.where(inner, ordered[rank, column], 0).astype(np.float32)
    child = np.where(inner, 2 * np.arange(n_nodes) + 1, -1)
    leaf = rng.normal(scale=0.05, size=(n_trees, n_nodes)).astype(np.float32)  # as XGBoost's
    return Forest(
        feature=feature.ravel().astype(np.int32),
        threshold=threshold.ravel(),
        left=np.tile(child, n_trees).astype(np.int32),
        right=np.tile(np.where(inner, child + 1, -1), n_trees).astype(np.int32),
        default_left=(inner & (rng.random((n_trees, n_nodes)) < 0.5)).ravel().astype(np.uint8),
        value=np.where(inner, 0.0, leaf.astype(np.float64)).ravel(),
        tree_offsets=np.arange(n_trees + 1, dtype=np.int64) * n_nodes,
        tree_group=np.zeros(n_trees, np.int32),
        base_margin=np.zeros(1),
        link="sigmoid",
        num_features=n_features,
        feature_names=tuple(f"f{j}" for j in range(n_features)),
        objective="binary:logistic",
        source_format="synthetic",
    )


def hard_rows(forest: Forest, X: np.ndarray, seed: int) -> np.ndarray:
    """``X`` with thresholds and the float32 just below them, +-inf, zeros, values in the
    zero band, and whole numbers (categories) planted in its cells."""
    rng = np.random.default_rng(seed)
    X = X.copy()
    inner = (forest.feature >= 0) & np.isfinite(forest.threshold)
    feature, threshold = forest.feature[inner], forest.threshold[inner]
    n = X.shape[0]
    for values in (threshold, np.nextafter(threshold, np.float32(-np.inf))):
        pick = rng.integers(0, feature.size, size=n * 2)
        X[rng.integers(0, n, size=pick.size), feature[pick]] = values[pick]
    draw = rng.random(X.shape)
    X[draw < 0.01] = np.inf
    X[(draw >= 0.01) & (draw < 0.02)] = -np.inf
    X[(draw >= 0.02) & (draw < 0.03)] = 0.0
    X[(draw >= 0.03) & (draw < 0.035)] = np.float32(1e-36)
    whole = (draw >= 0.035) & (draw < 0.08)
    X[whole] = np.round(X[whole] * 20)
    return X


def variants(forest: Forest, seed: int) -> dict[str, tuple[Forest, dict[str, Any]]]:
    """name -> (forest, CudaLauncher options): every path the CUDA backend takes."""
    rng = np.random.default_rng(seed)
    inner = np.flatnonzero(forest.feature >= 0)
    three = {
        "tree_group": (np.arange(forest.num_trees) % 3).astype(np.int32),
        "base_margin": np.array([0.2, -0.1, 0.0]),
    }
    threshold = forest.threshold.copy()
    threshold[rng.choice(inner, inner.size // 20, replace=False)] = -np.inf
    # Categorical nodes of modes 1, 2 and 3, each with 2 words of random bits (categories
    # 0..63); a tenth of the other nodes count LightGBM's zero band as missing.
    cat = rng.choice(inner, inner.size // 10, replace=False)
    categorical = np.zeros(forest.num_nodes, np.uint8)
    categorical[cat] = 1 + np.arange(cat.size) % 3
    cat_start = np.zeros(forest.num_nodes, np.int32)
    cat_start[cat] = 2 * np.arange(cat.size)
    cat_len = np.where(categorical != 0, 2, 0).astype(np.int32)
    zero_missing = (forest.feature >= 0) & (categorical == 0) & (rng.random(forest.num_nodes) < 0.1)
    cat_bits = rng.integers(0, 1 << 32, size=2 * cat.size, dtype=np.uint64).astype(np.uint32)
    rep = dataclasses.replace
    return {
        "reference": (forest, {}),
        "reference_walk": (forest, {"traversal": "walk"}),
        "softmax_3": (rep(forest, **three, link="softmax", objective="multi:softprob"), {}),
        "argmax_3": (rep(forest, **three, link="argmax", objective="multi:softmax"), {}),
        "exp_scaled": (rep(forest, link="exp", link_scale=0.5, objective="count:poisson"), {}),
        "neg_inf_thresholds": (rep(forest, threshold=threshold), {}),
        "categorical_zero_band": (
            rep(
                forest,
                categorical=categorical,
                cat_start=cat_start,
                cat_len=cat_len,
                cat_bits=cat_bits,
                zero_missing=zero_missing.astype(np.uint8),
            ),
            {},
        ),
    }


def agreement(forest: Forest, X: np.ndarray, seed: int) -> dict[str, Any]:
    """Each variant's CUDA predictions and margins against the CPU backend's."""
    from kernels._numba_cpu import CpuLauncher
    from kernels._numba_cuda import CudaLauncher
    from kernels.kernel import Kernel

    report: dict[str, Any] = {}
    for name, (variant, options) in variants(forest, seed).items():
        launcher = CudaLauncher(variant, **options)
        gpu = Kernel(variant, backend="cuda", launcher=launcher)
        cpu = compile_model(variant, backend="numba")
        margins = np.full((X.shape[0], variant.num_outputs), np.nan)  # poisoned
        launcher(X, margins)
        got, want = gpu.predict(X), cpu.predict(X)
        cpu_margins = np.empty_like(margins)
        CpuLauncher(variant)(X, cpu_margins)
        report[name] = {
            "traversal": launcher.traversal,
            "max_abs_diff": float(np.abs(got.astype(np.float64) - want).max()),
            "rows_differing": int((got != want).reshape(X.shape[0], -1).any(axis=1).sum()),
            "max_abs_margin_diff": float(np.abs(margins - cpu_margins).max()),
            "unwritten_margins": int(np.isnan(margins).sum()),
            "nan_predictions": int(np.isnan(got).sum()),
        }
        report[name]["ok"] = bool(
            report[name]["max_abs_diff"] <= TOLERANCE
            and not report[name]["unwritten_margins"]
            and not report[name]["nan_predictions"]
        )
    return report


def _timer() -> Callable[[Callable[[], None]], float]:
    """Seconds one call of ``fn`` keeps the GPU busy: CUDA events on a GPU, the host clock
    (synchronous) in the simulator, whose events record no time."""
    from numba import cuda

    from kernels._numba_cuda import is_simulated

    def timed(fn: Callable[[], None]) -> float:
        if is_simulated():
            start = time.perf_counter()
            fn()
            return time.perf_counter() - start
        begin, end = cuda.event(), cuda.event()
        begin.record()
        fn()
        end.record()
        end.synchronize()
        return begin.elapsed_time(end) / 1e3

    return timed


def _median(fn: Callable[[], float], repeats: int) -> float:
    """The median of ``repeats`` timings after a warm-up (compilation, allocations, first
    touch); in the simulator one run and no warm-up, as its timings mean nothing."""
    from kernels._numba_cuda import is_simulated

    if is_simulated():
        return fn()
    fn()
    return float(np.median([fn() for _ in range(repeats)]))


def _wall(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def throughput(forest: Forest, base: np.ndarray, n_rows: int, repeats: int) -> dict[str, Any]:
    """Rows/s of the kernel alone, the launcher host to host and ``Kernel.predict``."""
    from numba import cuda

    from kernels._numba_cuda import CudaLauncher
    from kernels.kernel import Kernel

    launcher = CudaLauncher(forest)
    kernel = Kernel(forest, backend="cuda", launcher=launcher)
    X = np.resize(base, (n_rows, base.shape[1]))  # base's rows, repeated
    block = min(n_rows, DEVICE_ROWS)
    d_X = cuda.to_device(X[:block])
    d_out = cuda.device_array((block, forest.num_outputs), np.float64)

    def device_only() -> None:
        for start in range(0, n_rows, block):
            m = min(block, n_rows - start)
            launcher.predict_device(d_X[:m], d_out[:m])

    timed = _timer()
    out = np.empty((n_rows, forest.num_outputs))
    seconds = {
        "kernel_only": _median(lambda: timed(device_only), repeats),
        "launcher_host_to_host": _median(lambda: _wall(lambda: launcher(X, out)), repeats),
        "kernel_predict": _median(lambda: _wall(lambda: kernel.predict(X)), repeats),
    }
    if n_rows <= BASE_ROWS:
        # The engine builds feature-major matrices from Arrow columns, and the launcher
        # stages and scores them as they are (no transpose on the host).
        X_f = np.asfortranarray(X)
        seconds["kernel_predict_feature_major"] = _median(
            lambda: _wall(lambda: kernel.predict(X_f)), repeats
        )
    return {"rows": n_rows} | {f"{k}_rows_per_s": round(n_rows / v) for k, v in seconds.items()}


def split(forest: Forest, base: np.ndarray, n_rows: int, repeats: int) -> dict[str, Any]:
    """Each step of moving ``n_rows`` through the GPU alone, in seconds (median)."""
    from numba import cuda

    from kernels._numba_cuda import CudaLauncher

    launcher = CudaLauncher(forest)
    X = np.resize(base, (n_rows, base.shape[1]))
    k = forest.num_outputs
    pinned = cuda.pinned_array(X.shape, np.float32)
    d_X = cuda.device_array(X.shape, np.float32)
    d_margin = cuda.device_array((n_rows, k), np.float64)
    d_pred = cuda.device_array((n_rows, k), np.float32)
    h_margin = cuda.pinned_array((n_rows, k), np.float64)
    h_pred = cuda.pinned_array((n_rows, k), np.float32)
    timed = _timer()
    steps: dict[str, Callable[[], float]] = {
        "stage_to_pinned": lambda: _wall(lambda: launcher._stage(pinned, X)),
        "h2d": lambda: timed(lambda: d_X.copy_to_device(pinned)),
        "kernel": lambda: timed(lambda: launcher.predict_device(d_X, d_margin)),
        "link": lambda: timed(lambda: launcher.finish_device(d_margin, forest.link, 1.0, d_pred)),
        "d2h_pred_f32": lambda: timed(lambda: d_pred.copy_to_host(h_pred)),
        "d2h_margin_f64": lambda: timed(lambda: d_margin.copy_to_host(h_margin)),
    }
    seconds = {name: _median(step, repeats) for name, step in steps.items()}
    report: dict[str, Any] = {"rows": n_rows, "seconds": seconds}
    report["h2d_GB_per_s"] = round(X.nbytes / max(seconds["h2d"], 1e-9) / 1e9, 1)
    report["stage_GB_per_s"] = round(X.nbytes / max(seconds["stage_to_pinned"], 1e-9) / 1e9, 1)
    report["kernel_rows_per_s"] = round(n_rows / max(seconds["kernel"], 1e-9))
    return report


#: Launcher options timed against each other, kernel only (last H100 run: 96-thread
#: blocks 169.0M rows/s against 156.5M for the default 128).
TUNING: dict[str, dict[str, Any]] = {
    "perfect_128": {},
    "perfect_96": {"threads_per_block": 96},
    "perfect_64": {"threads_per_block": 64},
    "perfect_single_tree": {"pair_trees": False},
    "walk_128": {"traversal": "walk"},
}


def tuning(forest: Forest, base: np.ndarray, n_rows: int, repeats: int) -> dict[str, Any]:
    """Kernel-only rows/s of each :data:`TUNING` option, with the kernels' registers."""
    from numba import cuda

    from kernels._numba_cuda import CudaLauncher

    d_X = cuda.to_device(np.resize(base, (n_rows, base.shape[1])))
    d_out = cuda.device_array((n_rows, forest.num_outputs), np.float64)
    timed = _timer()
    report: dict[str, Any] = {"rows": n_rows}
    for name, options in TUNING.items():
        launcher = CudaLauncher(forest, **options)

        def launch(launcher: CudaLauncher = launcher) -> None:
            launcher.predict_device(d_X, d_out)

        seconds = _median(lambda: timed(launch), repeats)
        report[name] = round(n_rows / max(seconds, 1e-9))
        kern = launcher._kernel
        if hasattr(kern, "get_regs_per_thread"):  # not in the simulator
            report[f"{kern.__name__}_registers"] = list(kern.get_regs_per_thread().values())
    return report


def describe_machine() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    import numba
    from numba import cuda

    from kernels._numba_cuda import is_simulated

    device = cuda.get_current_device()
    name = getattr(device, "name", "simulator")
    try:
        numba_cuda = version("numba-cuda")
    except PackageNotFoundError:
        numba_cuda = "not installed"
    return {
        "gpu": "CUDA simulator"
        if is_simulated()
        else (name.decode() if isinstance(name, bytes) else str(name)),
        "compute_capability": list(getattr(device, "compute_capability", ())),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "numba_cuda": numba_cuda,
        "cpu_count": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000, 100_000_000])
    parser.add_argument("--check-rows", type=int, default=100_000)
    parser.add_argument("--trees", type=int, default=500)
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs, median (3)")
    default_json = Path(os.environ["OUT"]) / "gpu.json" if os.environ.get("OUT") else None
    parser.add_argument("--json", type=Path, default=default_json, help="report file")
    args = parser.parse_args(argv)

    report: dict[str, Any] = {
        "machine": describe_machine(),
        "args": vars(args) | {"json": str(args.json)},
    }
    started = time.perf_counter()
    sample = make_rows(20_000, args.features, seed=0)
    forest = reference_forest(sample, n_trees=args.trees, depth=args.depth, seed=0)
    X_check = hard_rows(forest, make_rows(args.check_rows, args.features, seed=1), seed=2)
    report["agreement"] = agreement(forest, X_check, seed=3)
    _save(report, args.json)
    print(f"agreement done at {time.perf_counter() - started:.0f} s", flush=True)
    base = make_rows(min(BASE_ROWS, max(args.rows)), args.features, seed=4)
    report["throughput"] = []
    for n_rows in args.rows:
        report["throughput"].append(throughput(forest, base, n_rows, args.repeats))
        _save(report, args.json)
        print(f"{n_rows:,} rows done at {time.perf_counter() - started:.0f} s", flush=True)
    report["split"] = split(forest, base, min(max(args.rows), DEVICE_ROWS), args.repeats)
    _save(report, args.json)
    # The simulator runs each option once on a few rows: enough to run the code.
    tune_rows = 256 if report["machine"]["gpu"] == "CUDA simulator" else DEVICE_ROWS
    report["tuning"] = tuning(forest, base, min(max(args.rows), tune_rows), args.repeats)
    report["total_s"] = round(time.perf_counter() - started, 1)
    _save(report, args.json)
    print(_table(report))
    return 0 if all(v["ok"] for v in report["agreement"].values()) else 1


def _save(report: dict[str, Any], path: Path | None) -> None:
    if path is not None:
        path.write_text(json.dumps(report, indent=2))


def _table(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [f"{m['gpu']} | numba {m['numba']} numba-cuda {m['numba_cuda']} numpy {m['numpy']}"]
    if m["gpu"] == "CUDA simulator":
        lines.append("(simulator: timings are Python threads, not throughput)")
    lines.append(f"\nagreement with the CPU backend (tolerance {TOLERANCE:g} on predictions)")
    lines.append(f"{'variant':24}{'traversal':>10}{'max diff':>11}{'margin diff':>13}  ok")
    for name, r in report["agreement"].items():
        lines.append(
            f"{name:24}{r['traversal']:>10}{r['max_abs_diff']:>11.2e}"
            f"{r['max_abs_margin_diff']:>13.2e}  {'yes' if r['ok'] else 'NO'}"
        )
    lines.append(
        f"\n{'rows':>12}{'kernel only':>14}{'host to host':>14}{'Kernel.predict':>16}  (M rows/s)"
    )
    for r in report["throughput"]:
        lines.append(
            f"{r['rows']:>12,}{r['kernel_only_rows_per_s'] / 1e6:>14.1f}"
            f"{r['launcher_host_to_host_rows_per_s'] / 1e6:>14.1f}"
            f"{r['kernel_predict_rows_per_s'] / 1e6:>16.1f}"
        )
    for r in report["throughput"]:
        if "kernel_predict_feature_major_rows_per_s" in r:
            rate = r["kernel_predict_feature_major_rows_per_s"] / 1e6
            lines.append(f"Kernel.predict, feature-major input, {r['rows']:,} rows: {rate:.1f}")
    s = report["split"]
    lines.append(f"\ncopy and compute, each alone, {s['rows']:,} rows (ms)")
    lines.append("  ".join(f"{k} {v * 1e3:.1f}" for k, v in s["seconds"].items()))
    lines.append(f"h2d {s['h2d_GB_per_s']} GB/s, staging {s['stage_GB_per_s']} GB/s")
    t = report["tuning"]
    lines.append(f"\nkernel only, {t['rows']:,} rows (M rows/s)")
    lines.append("  ".join(f"{k} {t[k] / 1e6:.1f}" for k in TUNING))
    lines.append(f"total {report['total_s']} s")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
