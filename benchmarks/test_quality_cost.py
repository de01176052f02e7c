"""What quality statistics cost end to end (DESIGN: at most 10% of the 1M-row reference job).

The reference lake (``test_end_to_end.py``) is profiled once with ``lakescore profile``'s
function, then scored against that reference (histograms on its bins, drift, checks, the
four tables) in fresh sinks, and again with profiling switched off (the workers get no
:class:`~engine.quality.ProfileSpec`), in the same session, 2 worker threads each:

- ``lakescore-e2e+stats``: the real job;
- ``lakescore-e2e-nostats``: the same job measuring nothing.

Printed after the tests: the stats stage's share of the workers' stage time (from the
run record's ``stage_seconds``) and the end-to-end difference between the two contenders.
"""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
from test_end_to_end import reference_lake  # noqa: F401 (a fixture)

import engine
import engine.coordinator
from engine.quality.profile_job import build_profile


def test_quality_statistics_cost(
    run_contender, bench_results, reference_path, reference_lake, tmp_path, monkeypatch, capsys  # noqa: F811
):  # fmt: skip
    reference = tmp_path / "reference.json"
    build_profile(model=str(reference_path), source=str(reference_lake)).save(reference)
    sinks = iter(range(1_000_000))
    records: list[dict] = []

    def score() -> engine.ScoreResult:
        result = engine.score(
            model=reference_path, source=reference_lake, sink=tmp_path / f"sink-{next(sinks)}",
            id_column="customer_id", workers=2, reference=str(reference),
        )  # fmt: skip
        records.append(result.record)
        return result

    with_stats = run_contender("lakescore-e2e+stats", 2, score)
    assert with_stats.record["reference"] == str(reference)
    assert set(with_stats.record["drift_status"].values()) == {"ok"}  # same distribution
    stats_records = list(records)

    monkeypatch.setattr(engine.coordinator, "profile_spec", lambda *a, **k: None)
    records.clear()
    without = run_contender("lakescore-e2e-nostats", 2, score)
    assert without.record["stage_seconds"].get("stats", 0.0) < 0.01

    best = min(stats_records, key=lambda r: r["seconds"])
    stages = best["stage_seconds"]
    share = stages["stats"] / sum(stages.values())
    on = bench_results[(2, "lakescore-e2e+stats")]
    off = bench_results[(2, "lakescore-e2e-nostats")]
    overhead = min(on.seconds) / min(off.seconds) - 1
    with capsys.disabled():
        print(
            f"\nquality statistics, {best['rows']:,} rows x {len(best['features'])} features, "
            f"2 workers: stats stage {stages['stats']:.3f} s of {sum(stages.values()):.3f} s "
            f"worker stage time ({share:.1%}); end to end best of rounds "
            f"{min(on.seconds):.2f} s with stats vs {min(off.seconds):.2f} s without "
            f"({overhead:+.1%})"
        )


def test_stats_stage_alone(benchmark, bench_X, capsys):
    """The workers' stats stage by itself, one thread: the benchmark rows in batches of
    65,536 (the default), profiled against reference bins made from the same rows."""
    from engine.quality.profiler import ProfileSpec, TaskProfiler
    from engine.quality.reference import bin_edges

    names = tuple(f"f{j}" for j in range(bench_X.shape[1]))
    kinds = ("continuous",) * len(names)
    buffer = np.ascontiguousarray(bench_X.T)  # feature-major, as FeatureMatrixBuilder fills it
    batches = [(lo, min(lo + 65_536, buffer.shape[1])) for lo in range(0, buffer.shape[1], 65_536)]
    nulls = [pa.nulls(0)] * len(names)  # only null_count is read (O(1) metadata)

    def profile(spec: ProfileSpec) -> TaskProfiler:
        profiler = TaskProfiler(spec)
        for lo, hi in batches:
            profiler.add_features(np.ascontiguousarray(buffer[:, lo:hi]).T, nulls)
        return profiler

    reference = profile(ProfileSpec(names, kinds)).result()["features"]
    spec = ProfileSpec(names, kinds, {n: bin_edges(p) for n, p in reference.items()})
    seconds: list[float] = []
    cpu: list[float] = []

    def timed() -> None:  # own clocks: also works under --benchmark-disable
        start, start_cpu = time.perf_counter(), time.thread_time()
        profile(spec).result()
        seconds.append(time.perf_counter() - start)
        cpu.append(time.thread_time() - start_cpu)  # this thread's CPU: robust to a busy box

    benchmark.pedantic(timed, rounds=3, iterations=1)
    best = min(cpu)
    with capsys.disabled():
        print(
            f"\nstats stage alone: {bench_X.shape[0]:,} rows x {len(names)} features in "
            f"{len(batches)} batches, 1 thread: {best:.3f} s CPU "
            f"({best / bench_X.size * 1e9:.2f} ns per value; best wall {min(seconds):.3f} s)"
        )
