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
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from conftest import ROUNDS

import engine
import engine.coordinator
from engine.quality.profile_job import build_profile

_RECORDS: dict[str, list[dict]] = {}  # run records by contender, for the summary


@pytest.fixture(scope="module")
def reference_profile(reference_path, reference_lake, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("quality") / "reference.json"
    build_profile(model=str(reference_path), source=str(reference_lake)).save(path)
    return path


def score_rounds(contender, run_contender, reference_path, reference_lake, reference, tmp_path):
    sinks = iter(range(1_000_000))
    records = _RECORDS.setdefault(contender, [])

    def score() -> engine.ScoreResult:
        result = engine.score(
            model=reference_path, source=reference_lake, sink=tmp_path / f"sink-{next(sinks)}",
            id_column="customer_id", workers=2, reference=str(reference),
        )  # fmt: skip
        records.append(result.record)
        return result

    return run_contender("quality cost", contender, 2, score)


def test_end_to_end_with_statistics(
    run_contender, reference_path, reference_lake, reference_profile, tmp_path
):  # fmt: skip
    result = score_rounds("lakescore-e2e+stats", run_contender, reference_path, reference_lake,
                          reference_profile, tmp_path)  # fmt: skip
    assert result.record["reference"] == str(reference_profile)
    assert set(result.record["drift_status"].values()) == {"ok"}  # same distribution


def test_end_to_end_without_statistics(
    run_contender, bench_results, reference_path, reference_lake, reference_profile,
    tmp_path, monkeypatch, capsys,
):  # fmt: skip
    monkeypatch.setattr(engine.coordinator, "profile_spec", lambda *a, **k: None)
    result = score_rounds("lakescore-e2e-nostats", run_contender, reference_path,
                          reference_lake, reference_profile, tmp_path)  # fmt: skip
    assert result.record["stage_seconds"]["stats"] < 0.01
    on = bench_results.get(("quality cost", 2, "lakescore-e2e+stats"))
    if on is None:  # run alone (-k): nothing to compare with
        return
    off = bench_results[("quality cost", 2, "lakescore-e2e-nostats")]
    best = min(_RECORDS["lakescore-e2e+stats"], key=lambda r: r["seconds"])
    stages = best["stage_seconds"]
    share = stages["stats"] / sum(stages.values())
    overhead = min(on.seconds) / min(off.seconds) - 1
    with capsys.disabled():
        print(
            f"\nquality statistics, {best['rows']:,} rows x {len(best['features'])} features, "
            f"2 workers: stats stage {stages['stats']:.3f} s of {sum(stages.values()):.3f} s "
            f"worker stage time ({share:.1%}); end to end best of rounds "
            f"{min(on.seconds):.2f} s with stats vs {min(off.seconds):.2f} s without "
            f"({overhead:+.1%})"
        )


def test_cost_in_alternating_rounds(
    benchmark, reference_path, reference_lake, reference_profile, tmp_path, monkeypatch, capsys
):  # fmt: skip
    """The cost again, robust to a shared machine whose speed drifts over a minute:
    ``ROUNDS`` pairs of one run with statistics and one without, back to back (which goes
    first alternates), the cost taken per pair; prints the median pair's and every pair's
    extra wall and CPU seconds, as shares, and the CPU the statistics' own code took (the
    run record's ``stage_cpu_seconds["stats"]`` and ``quality_cpu_seconds``) as a share of
    the run's CPU: a ratio within one run, which a machine's drift cannot skew."""
    real = engine.coordinator.profile_spec
    sinks = iter(range(1_000_000))
    pairs: list[tuple[float, float, float, float]] = []  # with: wall, CPU; without: wall, CPU
    accounted: list[float] = []  # statistics' own CPU seconds over the run's, per run with

    def run(stats: bool) -> tuple[float, float]:
        spec = real if stats else (lambda *a, **k: None)
        monkeypatch.setattr(engine.coordinator, "profile_spec", spec)
        start, start_cpu = time.perf_counter(), time.process_time()
        record = engine.score(
            model=reference_path, source=reference_lake, sink=tmp_path / f"s{next(sinks)}",
            id_column="customer_id", workers=2, reference=str(reference_profile),
        ).record  # fmt: skip
        wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        if stats:  # the workers' stats stage and the driver's merge, drift, checks, tables
            own = record["stage_cpu_seconds"]["stats"] + record["quality_cpu_seconds"]
            accounted.append(own / cpu)
        return wall, cpu

    def alternate() -> None:
        run(True), run(False)  # warm both paths
        accounted.clear()
        for k in range(max(ROUNDS, 3)):
            first = k % 2 == 0
            a = run(first)
            b = run(not first)
            on, off = (a, b) if first else (b, a)
            pairs.append((*on, *off))

    benchmark.pedantic(alternate, rounds=1, iterations=1)
    wall = sorted(on / off - 1 for on, _, off, _ in pairs)
    cpu = sorted(on / off - 1 for _, on, _, off in pairs)
    with capsys.disabled():
        print(
            f"\nquality statistics in {len(pairs)} alternating pairs: median "
            f"{wall[len(wall) // 2]:+.1%} wall ({', '.join(f'{x:+.1%}' for x in wall)}), "
            f"{cpu[len(cpu) // 2]:+.1%} CPU ({', '.join(f'{x:+.1%}' for x in cpu)}); "
            f"statistics' own CPU (stage_cpu_seconds.stats + quality_cpu_seconds) "
            f"{sorted(accounted)[len(accounted) // 2]:.1%} of the run's CPU (median)"
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
