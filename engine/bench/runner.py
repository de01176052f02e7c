"""``run_bench``: the steps of ``lakescore bench`` in order, and the bench.json document."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kernels
from engine.bench import backends as backends_mod
from engine.bench.end_to_end import run_end_to_end
from engine.bench.machine import describe_machine, peak_rss_mib, versions
from engine.bench.measure import agreement, ratios, run_sweep
from engine.bench.native import Native, NativeUnavailable, load_native
from engine.bench.plan import Measured, project
from engine.bench.rows import Rows, generate_rows, sample_source
from engine.errors import BadInputError

log = logging.getLogger("lakescore.bench")

SCHEMA = "lakescore-bench/1"


@dataclass
class BenchOptions:
    """What to measure; the CLI's flags (see ``lakescore bench --help``)."""

    model: Path
    model_arg: str = ""
    trust_pickle: bool = False
    source: str | None = None
    sample_rows: int = 262_144
    nan_rate: float | None = None  # None: 2%, or 0 for scikit-learn models
    seed: int = 0
    threads: list[int] = field(default_factory=lambda: [1])
    batches: list[int] = field(default_factory=lambda: [16_384, 65_536, 262_144])
    default_batch: int = 65_536
    seconds: float = 2.0
    backends: list[str] | None = None
    e2e_rows: int = 500_000
    e2e_backend: str = "numba"
    workers: int = 2
    cluster: str | None = None
    plan: tuple[int, float, float] | None = None  # rows, deadline seconds, headroom
    quick: bool = False
    check_rows: int = 10_000
    argv: list[str] = field(default_factory=list)


def default_threads(cores: int) -> list[int]:
    """1, 2, 4, ... up to ``cores``, and ``cores`` itself."""
    out, t = [], 1
    while t < cores:
        out.append(t)
        t *= 2
    return [*out, cores]


def run_bench(opts: BenchOptions, forest: kernels.Forest) -> dict[str, Any]:
    """Measure everything ``opts`` asks for; returns the bench.json document."""
    started = dt.datetime.now(dt.UTC)
    native, native_reason = _native(opts)
    statuses = backends_mod.discover(forest, opts.backends)
    available = [s.name for s in statuses if s.available]
    if not available:
        reasons = "; ".join(f"{s.name}: {s.reason}" for s in statuses)
        raise BadInputError(f"no backend can compile {opts.model_arg or opts.model}: {reasons}")
    rows = _rows(opts, forest)
    X = rows.X

    compile_figures = [
        backends_mod.compile_times(
            opts.model, b, trust_pickle=opts.trust_pickle, cold=not opts.quick
        )
        for b in available
    ]
    checks, native, native_reason = _agreement(statuses, native, native_reason, X, opts)
    measurements = run_sweep(
        X,
        forest,
        available,
        native,
        threads=opts.threads,
        batches=opts.batches,
        default_batch=opts.default_batch,
        seconds=opts.seconds,
    )

    def end_to_end(cluster: str) -> dict[str, Any]:
        return run_end_to_end(
            opts.model,
            forest,
            X,
            rows=opts.e2e_rows,
            cluster=cluster,
            backend=opts.e2e_backend,
            workers=opts.workers,
            trust_pickle=opts.trust_pickle,
        )

    e2e = end_to_end("local")
    e2e_cluster = end_to_end(opts.cluster) if opts.cluster else None
    gpu = [m.rows_per_s for m in measurements if m.contender == "cuda"]
    plan = None
    if opts.plan is not None:
        basis = e2e_cluster or e2e
        measured = Measured(
            rows_per_s=basis["rows_per_s"],
            cores=basis["cores"],
            nodes=basis["nodes"],
            stage_seconds=basis["stage_seconds"],
            gpu_rows_per_s=max(gpu) if gpu else None,
            source="end_to_end_cluster" if e2e_cluster else "end_to_end",
            rows=basis["rows"],
        )
        plan = project(*opts.plan, measured)
    gpu_name = _gpu_name() if "cuda" in available else None
    info = forest.describe()
    return {
        "schema": SCHEMA,
        "created_at": started.isoformat(),
        "seconds": (dt.datetime.now(dt.UTC) - started).total_seconds(),
        "command": opts.argv,
        "quick": opts.quick,
        "machine": describe_machine(gpu_name),
        "versions": versions(),
        "model": {
            "path": str(opts.model),
            "name": opts.model_arg or str(opts.model),
            "format": info["format"],
            "objective": info["objective"],
            "trees": info["trees"],
            "max_depth": info["max_depth"],
            "leaves": info["leaves"],
            "features": info["features"],
            "outputs": info["outputs"],
            "sha256": forest.sha256,
        },
        "rows": rows.describe(),
        "settings": {
            "threads": opts.threads,
            "batch_rows": opts.batches,
            "default_batch_rows": opts.default_batch,
            "seconds_per_measurement": opts.seconds,
            "e2e_rows": opts.e2e_rows,
            "workers": opts.workers,
        },
        "backends": [s.to_dict() for s in statuses],
        "native": {
            "available": native is not None,
            "library": native.library if native else None,
            "call": native.call if native else None,
            "version": native.version if native else None,
            "reason": native_reason,
        },
        "agreement": checks,
        "compile": compile_figures,
        "kernel": [m.to_dict() for m in measurements],
        "ratios": ratios(measurements),
        "end_to_end": e2e,
        "end_to_end_cluster": e2e_cluster,
        "plan": plan,
        "peak_rss_mib": peak_rss_mib(),
    }


def _agreement(
    statuses: list[backends_mod.BackendStatus],
    native: Native | None,
    reason: str | None,
    X: Any,
    opts: BenchOptions,
) -> tuple[list[dict[str, Any]], Native | None, str | None]:
    """Each backend against the native library on the first ``check_rows`` rows of ``X``
    (with the most threads); a native library that fails there is dropped, with why."""
    if native is None:
        return [], None, reason
    check = X[: opts.check_rows]
    threads = max(opts.threads)

    def theirs(rows: Any) -> Any:
        return native.predict(rows, threads)

    checks = []
    for s in statuses:
        if s.kernel is None:
            continue
        try:
            checks.append({"backend": s.name, **agreement(s.kernel.predict, theirs, check)})
        except Exception as exc:  # a native library that fails is a finding, not a crash
            return [], None, f"native predict failed: {type(exc).__name__}: {exc}"
    return checks, native, reason


def _native(opts: BenchOptions) -> tuple[Native | None, str | None]:
    try:
        return load_native(opts.model, trust_pickle=opts.trust_pickle), None
    except NativeUnavailable as exc:
        log.warning("native library: %s", exc)
        return None, str(exc)


def _rows(opts: BenchOptions, forest: kernels.Forest) -> Rows:
    if opts.source:
        return sample_source(opts.source, forest, opts.sample_rows)
    nan_rate = opts.nan_rate
    if nan_rate is None:  # most scikit-learn estimators refuse NaN in predict
        nan_rate = 0.0 if forest.source_format.startswith("sklearn") else 0.02
    return generate_rows(forest, opts.sample_rows, seed=opts.seed, nan_rate=nan_rate)


def _gpu_name() -> str | None:
    try:
        from numba import cuda

        name = cuda.get_current_device().name
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception:  # a name is decoration: never fail the bench for it
        return None
