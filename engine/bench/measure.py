"""Kernel throughput: each backend and the native library, on the same rows, side by side.

Every contender of a point (a thread count and a batch size) scores the same consecutive
``batch_rows`` slices of one matrix ``X`` (views of it: no copy, no second data set), one
after the other in the same process, for about ``seconds`` each after one untimed warm-up
batch. ``rows/s`` is rows scored over the time spent scoring them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

import kernels
from engine.bench.machine import peak_rss_mib
from engine.bench.native import Native, as_comparable

log = logging.getLogger("lakescore.bench")

Scorer = Callable[[np.ndarray], np.ndarray]


@dataclass
class Measurement:
    contender: str  # a backend name, or "native"
    library: str  # "lakescore" or the native library's name
    threads: int | None  # None: a GPU
    batch_rows: int
    rows: int
    batches: int
    seconds: float
    peak_rss_mib: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rows_per_s"] = self.rows_per_s
        d["rows_per_s_per_core"] = self.rows_per_s / self.threads if self.threads else None
        return d


def time_scorer(
    score: Scorer, X: np.ndarray, *, batch_rows: int, seconds: float
) -> tuple[int, int, float]:
    """Score ``batch_rows`` slices of ``X`` in turn (wrapping around) for ``seconds``.

    Returns ``(rows, batches, elapsed)``; at least one timed batch, after one untimed one.
    """
    n = X.shape[0]
    starts = list(range(0, n, batch_rows))
    score(X[starts[0] : starts[0] + batch_rows])  # warm-up: first-call costs stay out
    rows = batches = 0
    begin = time.perf_counter()
    elapsed = 0.0
    i = 0
    while batches == 0 or elapsed < seconds:
        s = starts[i % len(starts)]
        part = X[s : s + batch_rows]
        score(part)
        rows += part.shape[0]
        batches += 1
        i += 1
        elapsed = time.perf_counter() - begin
    return rows, batches, elapsed


def agreement(ours: Scorer, theirs: Scorer, X: np.ndarray) -> dict[str, Any]:
    """Both contenders' outputs on the same rows ``X``: the largest difference and whether
    it is within tolerance (1e-4 of the output's scale, or 1e-5 for probabilities)."""
    a = np.asarray(ours(X), dtype=np.float64)
    b = as_comparable(theirs(X), a)
    if a.shape != b.shape:
        return {
            "rows": int(X.shape[0]),
            "max_abs_diff": None,
            "tolerance": None,
            "agree": False,
            "detail": f"shapes differ: {a.shape} vs {b.shape}",
        }
    finite = np.isfinite(b)
    scale = float(np.abs(b[finite]).max()) if finite.any() else 1.0
    tolerance = 1e-5 if scale <= 1.0 else 1e-4 * scale
    diff = np.abs(a - b)
    same_nonfinite = bool(np.array_equal(np.isfinite(a), finite))
    worst = float(diff[finite].max()) if finite.any() else 0.0
    return {
        "rows": int(X.shape[0]),
        "max_abs_diff": worst,
        "tolerance": tolerance,
        "agree": same_nonfinite and worst <= tolerance,
        "detail": None,
    }


def measure_point(
    X: np.ndarray,
    contenders: dict[str, tuple[str, int | None, Scorer]],
    *,
    batch_rows: int,
    seconds: float,
) -> list[Measurement]:
    """Time each contender (``name -> (library, threads, scorer)``) on the same ``X``."""
    out = []
    for name, (library, threads, score) in contenders.items():
        rows, batches, elapsed = time_scorer(score, X, batch_rows=batch_rows, seconds=seconds)
        m = Measurement(name, library, threads, batch_rows, rows, batches, elapsed, peak_rss_mib())
        log.info("%s, %s thread(s), batch %d: %.0f rows/s", name, threads, batch_rows, m.rows_per_s)
        out.append(m)
    return out


def sweep_points(threads: list[int], batches: list[int], default_batch: int) -> list[tuple]:
    """(threads, batch) points: every thread count at the default batch, then every batch
    size at the most threads (a full grid would multiply the run time for little)."""
    points = [(t, default_batch) for t in threads]
    top = max(threads)
    points += [(top, b) for b in batches if b != default_batch]
    return points


def run_sweep(
    X: np.ndarray,
    forest: kernels.Forest,
    backends: list[str],
    native: Native | None,
    *,
    threads: list[int],
    batches: list[int],
    default_batch: int,
    seconds: float,
) -> list[Measurement]:
    """Every available backend (a CPU backend at each point; a GPU one per batch size) and
    the native library at the same points, on the same ``X``."""
    results: list[Measurement] = []
    compiled: dict[tuple[str, int], kernels.Kernel] = {}

    def cpu_kernel(backend: str, t: int) -> kernels.Kernel:
        if (backend, t) not in compiled:
            compiled[(backend, t)] = kernels.compile_model(forest, backend=backend, n_threads=t)
        return compiled[(backend, t)]

    cpu = [b for b in backends if b != "cuda"]
    for t, batch in sweep_points(threads, batches, default_batch):
        contenders: dict[str, tuple[str, int | None, Scorer]] = {}
        for b in cpu:
            contenders[b] = ("lakescore", t, cpu_kernel(b, t).predict)
        if native is not None:
            contenders["native"] = (native.library, t, lambda Xb, t=t: native.predict(Xb, t))
        results += measure_point(X, contenders, batch_rows=batch, seconds=seconds)
    if "cuda" in backends:
        gpu = kernels.compile_model(forest, backend="cuda")
        for batch in sorted({*batches, default_batch}):
            contenders = {"cuda": ("lakescore", None, gpu.predict)}
            results += measure_point(X, contenders, batch_rows=batch, seconds=seconds)
    return results


def ratios(results: list[Measurement]) -> list[dict[str, Any]]:
    """lakescore rows/s over the native library's at each point both were measured (a GPU
    against the native library with the most threads, at the same batch size)."""
    native = {(m.threads, m.batch_rows): m for m in results if m.contender == "native"}
    top = max((t for t, _ in native), default=None)
    out = []
    for m in results:
        other = native.get((m.threads if m.threads is not None else top, m.batch_rows))
        if m.contender == "native" or other is None or other.rows_per_s <= 0:
            continue
        out.append(
            {
                "backend": m.contender,
                "threads": m.threads,
                "batch_rows": m.batch_rows,
                "lakescore_rows_per_s": m.rows_per_s,
                "native_rows_per_s": other.rows_per_s,
                "ratio": m.rows_per_s / other.rows_per_s,
            }
        )
    return out
