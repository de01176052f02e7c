"""Ray's overhead: the same 1M-row job through the local executor and through Ray on the
same 2 CPUs, where Ray's extra time goes, and memory as the data grows (issue 5, items 4
and 7).

Contenders, on the benchmarks' reference lake (``conftest.py``) with ``test_end_to_end``'s
Ray Data contender (imported, so all run in one session on the same data) and a private
2-CPU Ray started for the module:

- ``lakescore score``: ``engine.score`` with the local executor, 2 threads;
- ``ray, new actors``: ``engine.score(cluster="ray")``: each run starts its actor (on this
  one-node Ray, by default one of 2 CPUs running two tasks at once), which loads its
  kernel (Numba's on-disk cache, the parsed-model cache);
- ``ray, new actors of 1 CPU each`` (alternating pairs only): ``actor_cpus=1``, 2 actors;
- ``ray, standing actors``: the default inside ``cluster.keep_actors()``: the first run
  starts the actor, the later ones reuse it (a Python backfill of many runs);
- ``ray data``: ``read_parquet -> map_batches(XGBoost) -> write_parquet``.

The machine these run on is shared, so wall time alone misleads: each Ray run also
reports CPU seconds (the driver's, the actors' and Ray's daemons'), and where the actors'
time went (start, kernel load, tasks, waiting for tasks), from the actors' own figures
in the run record and from Ray's timeline; ``-s`` prints them at the end of the module.

``test_memory_is_flat_as_the_data_grows`` scores 1M and 4M rows (the 1M lake's files
linked four times) through Ray and prints the driver's and the actors' peak RSS.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

# The e2e lake and its Ray Data contender (collected here too, so the ratio below compares
# runs of one session on one Ray).
import test_end_to_end
from conftest import ROUNDS, ROWS, peak_rss_mib, reset_peak_rss
from test_end_to_end import test_ray_data_xgboost_pipeline  # noqa: F401

import cluster
import engine

_REPORT: list[str] = []


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A private 2-CPU Ray for the module (``address="local"``: never a cluster another
    process started on this machine); its start is not timed."""
    import ray

    # Actors cannot import the e2e module: ship its Ray Data scorer class by value.
    ray.cloudpickle.register_pickle_by_value(test_end_to_end)
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield
    ray.shutdown()


_TICK = os.sysconf("SC_CLK_TCK")


def _proc_stats() -> dict[int, tuple[int, float]]:
    """Every process's parent pid and CPU seconds, from ``/proc``."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # after the name: state, ppid, ..., utime (12th) and stime (13th)
        out[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK)
    return out


def _cpu_by_pid() -> dict[int, float]:
    """CPU seconds of this session's raylet and GCS and everything they started."""
    import ray

    node = ray._private.worker._global_node  # private: only for this benchmark's figures
    wanted = {p.process.pid for ps in node.all_processes.values() for p in ps}
    procs = _proc_stats()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    todo = list(wanted)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in wanted:
                wanted.add(child)
                todo.append(child)
    return {pid: procs[pid][1] for pid in wanted if pid in procs}


def _driver_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timeline_totals() -> dict[str, float]:
    """Seconds per event name in Ray's timeline so far (task execution, argument fetch,
    result store, actor creation)."""
    import ray

    totals: dict[str, float] = {}
    for event in ray.timeline():
        if "dur" in event:
            name = str(event.get("name", "?"))
            totals[name] = totals.get(name, 0.0) + float(event["dur"]) / 1e6
    return totals


class CpuMeter:
    """CPU seconds of one run: the driver's, and Ray's processes' (an actor killed at the
    run's end counts with the figure it reported just before)."""

    def __init__(self) -> None:
        self.driver0 = _driver_cpu()
        self.ray0 = _cpu_by_pid()

    def stop(self, actor_stats: dict[str, dict[str, Any]]) -> dict[str, float]:
        driver = _driver_cpu() - self.driver0
        after = _cpu_by_pid()
        final = {int(doc["pid"]): float(doc["cpu_seconds"]) for doc in actor_stats.values()}
        actors = sum(final.get(pid, after.get(pid, 0.0)) - self.ray0.get(pid, 0.0) for pid in final)
        rest = sum(after[pid] - self.ray0.get(pid, 0.0) for pid in after if pid not in final)
        return {
            "driver": driver,
            "actors": actors,
            "ray_other": rest,
            "total": driver + actors + rest,
        }


def _score(model: Path, lake: Path, sink: Path, cluster_spec: str,
           actor_cpus: int | None = None) -> engine.ScoreResult:  # fmt: skip
    return engine.score(
        model=model, source=lake, sink=sink, id_column="customer_id", workers=2,
        cluster=cluster_spec, actor_cpus=actor_cpus,
    )  # fmt: skip


def _run_rounds(run_contender, name: str, score: Callable[[], engine.ScoreResult],
                breakdown: list[dict[str, Any]]) -> engine.ScoreResult:  # fmt: skip
    """Time ``score`` as contender ``name``; keep each round's CPU and actor figures."""

    def measured() -> engine.ScoreResult:
        meter = CpuMeter()
        started = time.perf_counter()
        result = score()
        wall = time.perf_counter() - started
        stats = result.record.get("executor_stats", {})
        actors = stats.get("actor_stats", {})
        cpu = meter.stop(actors)
        breakdown.append(
            {
                "wall": round(wall, 3),
                "cpu": {k: round(v, 3) for k, v in cpu.items()},
                "actor_start_s": stats.get("actor_start_seconds"),
                "actors_reused": stats.get("actors_reused", 0),
                "build_s": [a["build_seconds"] for a in actors.values()],
                "busy_s": [a["busy_seconds"] for a in actors.values()],
                "idle_s": [a["idle_seconds"] for a in actors.values()],
                "stage_s": result.record.get("stage_seconds"),
            }
        )
        return result

    # Ray's timeline is read once around all rounds (reading it takes a second or more).
    timeline0 = _timeline_totals()
    result = run_contender("ray overhead", name, 2, measured, note=name)
    after = _timeline_totals()
    timeline = {k: round(v - timeline0.get(k, 0.0), 3) for k, v in after.items()}
    _TIMELINES[name] = {k: v for k, v in timeline.items() if v > 0}
    return result


_FIGURES: dict[str, list[dict[str, Any]]] = {}
_TIMELINES: dict[str, dict[str, float]] = {}
LOCAL, NEW, STANDING = "lakescore score", "ray, new actors", "ray, standing actors"
NEW_PER_CPU = "ray, new actors of 1 CPU each"  # --actor-cpus 1 (the default: one of 2 CPUs)


@pytest.mark.usefixtures("local_ray")
@pytest.mark.parametrize("name", [LOCAL, NEW, STANDING])
def test_local_and_ray(
    run_contender,
    name: str,
    reference_path: Path,
    reference_lake: Path,
    tmp_path: Path,
) -> None:
    sinks = iter(range(1_000_000))
    _FIGURES[name] = []
    spec = "local" if name == LOCAL else "ray"
    with cluster.keep_actors() if name == STANDING else contextlib.nullcontext():
        result = _run_rounds(
            run_contender,
            name,
            lambda: _score(reference_path, reference_lake, tmp_path / f"s{next(sinks)}", spec),
            _FIGURES[name],
        )
    assert result.rows_scored == ROWS
    if name == STANDING and len(_FIGURES[name]) > 1:  # (one round under --benchmark-disable)
        assert result.record["executor_stats"].get("actors_reused", 0) >= 1


@pytest.mark.usefixtures("local_ray")
@pytest.mark.parametrize("name", [NEW, NEW_PER_CPU, STANDING])
def test_overhead_in_alternating_rounds(
    benchmark, name: str, reference_path: Path, reference_lake: Path, tmp_path: Path
) -> None:
    """Ray's overhead again, robust to a machine whose speed drifts by 20-30% over a minute
    (as ``test_end_to_end``'s alternating share): ``ROUNDS`` pairs of one local run and one
    Ray run back to back, the order swapped every pair, the overhead taken per pair (wall,
    and CPU of every process: driver, actors, Ray's daemons). Reports the median pair."""
    sinks = iter(range(1_000_000))
    pairs: list[tuple[tuple[float, float], tuple[float, float]]] = []  # (wall, CPU) each
    actor_cpus = 1 if name == NEW_PER_CPU else None

    def timed(spec: str) -> tuple[float, float]:
        meter = CpuMeter()
        started = time.perf_counter()
        sink = tmp_path / f"s{next(sinks)}"
        result = _score(reference_path, reference_lake, sink, spec, actor_cpus=actor_cpus)
        wall = time.perf_counter() - started
        cpu = meter.stop(result.record.get("executor_stats", {}).get("actor_stats", {}))
        assert result.rows_scored == ROWS
        return wall, cpu["total"]

    def alternate() -> None:
        timed("local")  # warm: kernel loaded, modules imported
        timed("ray")  # and for standing actors, the actors started
        pairs.extend(_alternating_pairs(lambda: timed("local"), lambda: timed("ray"), 5))

    with cluster.keep_actors() if name == STANDING else contextlib.nullcontext():
        benchmark.pedantic(alternate, rounds=1, iterations=1)
    _REPORT.append(f"  {name}, {_overhead_line(pairs)}")


@pytest.mark.usefixtures("local_ray")
def test_cli_runs_in_alternating_rounds(
    benchmark, reference_path: Path, reference_lake: Path, tmp_path: Path
) -> None:
    """Both contenders as a nightly job runs them: a fresh ``lakescore score`` process,
    ``--cluster local`` against ``--cluster ADDRESS`` (this module's Ray, as a standing
    cluster). Each pays a fresh process's start-up (imports, first-touch memory); the Ray
    run also connects and starts its actors. ``ROUNDS`` pairs, order swapped every pair;
    wall and CPU (the CLI process and Ray's: actors, daemons) per pair."""
    import ray

    address = ray.get_runtime_context().gcs_address
    sinks = iter(range(1_000_000))
    pairs: list[tuple[tuple[float, float], tuple[float, float]]] = []
    command = [sys.executable, "-m", "engine.cli", "score", "--model", str(reference_path),
               "--source", str(reference_lake), "--id-column", "customer_id",
               "--workers", "2", "--json"]  # fmt: skip

    def timed(cluster_spec: str) -> tuple[float, float]:
        sink = tmp_path / f"s{next(sinks)}"
        meter = CpuMeter()
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run([*command, "--sink", str(sink), "--cluster", cluster_spec],
                       check=True, capture_output=True)  # fmt: skip
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cli_cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
        [record_path] = (sink / "_lakescore" / "run_records").glob("*.json")
        record = json.loads(record_path.read_text())
        assert record["rows"] == ROWS
        ray_cpu = meter.stop(record.get("executor_stats", {}).get("actor_stats", {}))
        return wall, cli_cpu + ray_cpu["actors"] + ray_cpu["ray_other"]

    def alternate() -> None:
        timed("local")  # warm the page cache and the kernel cache
        pairs.extend(_alternating_pairs(lambda: timed("local"), lambda: timed(address), 5))

    benchmark.pedantic(alternate, rounds=1, iterations=1)
    _REPORT.append(f"  CLI runs (fresh processes), {_overhead_line(pairs)}")


@pytest.mark.usefixtures("local_ray")
def test_new_actors_on_a_larger_job(
    benchmark, reference_path: Path, reference_lake: Path, tmp_path: Path
) -> None:
    """New actors cost a fixed start-up per run (Ray's connection, the actors' processes
    and imports, their first tasks on cold memory), so their overhead falls as the job
    grows: the lake's files linked ``LAKESCORE_BENCH_RAY_FACTOR`` times (default 10: 10M
    rows), local run and new-actor Ray run in alternating pairs (at least 3)."""
    factor = int(os.environ.get("LAKESCORE_BENCH_RAY_FACTOR", "10"))
    lake = _linked_lake(reference_lake, tmp_path / f"lake-{factor}x", factor)
    sinks = iter(range(1_000_000))
    pairs: list[tuple[tuple[float], tuple[float]]] = []  # (wall,) each

    def timed(spec: str) -> tuple[float]:
        started = time.perf_counter()
        result = _score(reference_path, lake, tmp_path / f"s{next(sinks)}", spec)
        assert result.rows_scored == factor * ROWS
        return (time.perf_counter() - started,)

    def alternate() -> None:
        pairs.extend(_alternating_pairs(lambda: timed("local"), lambda: timed("ray"), 3))

    benchmark.pedantic(alternate, rounds=1, iterations=1)
    _REPORT.append(f"  new actors, {factor * ROWS:,} rows, {_overhead_line(pairs)}")


@pytest.mark.usefixtures("local_ray")
def test_rays_own_floor_two_empty_actors(
    benchmark, reference_path: Path, reference_lake: Path, tmp_path: Path
) -> None:
    """What Ray itself costs a run that starts its actors, with no lakescore in them: two
    actors of an empty class, 1 CPU each, from ``.remote()`` until both answered, once
    the previous two are killed and their CPUs are back (as a new-actor run finds Ray).
    Alternated with local 1M-row runs: the floor as a share of the job, per pair."""
    import ray

    class Empty:  # defined here: Ray ships it by value (actors cannot import this module)
        def ping(self) -> int:
            return os.getpid()

    empty = ray.remote(num_cpus=1, max_restarts=0)(Empty)
    sinks = iter(range(1_000_000))
    pairs: list[tuple[tuple[float], tuple[float]]] = []  # (local wall,), (floor,)

    def local() -> tuple[float]:
        started = time.perf_counter()
        _score(reference_path, reference_lake, tmp_path / f"s{next(sinks)}", "local")
        return (time.perf_counter() - started,)

    def two_empty_actors() -> tuple[float]:
        started = time.perf_counter()
        actors = [empty.remote() for _ in range(2)]
        ray.get([a.ping.remote() for a in actors])
        seconds = time.perf_counter() - started
        for actor in actors:
            ray.kill(actor)
        deadline = time.monotonic() + 5.0
        while ray.available_resources().get("CPU", 0.0) < 2.0 and time.monotonic() < deadline:
            time.sleep(0.02)
        return (seconds,)

    def alternate() -> None:
        local()  # warm
        two_empty_actors()  # the first pair may find workers Ray started ahead
        pairs.extend(_alternating_pairs(local, two_empty_actors, 5))

    benchmark.pedantic(alternate, rounds=1, iterations=1)
    floors = sorted(floor[0] for _, floor in pairs)
    shares = sorted(100 * floor[0] / run[0] for run, floor in pairs)
    _REPORT.append(
        f"  Ray's floor: two empty actors ready in {floors[len(floors) // 2]:.2f} s median "
        f"({', '.join(f'{x:.2f}' for x in floors)}), {shares[len(shares) // 2]:.0f}% of the "
        f"local run in its pair ({', '.join(f'{x:.0f}' for x in shares)})"
    )


T = TypeVar("T", bound=tuple)


def _alternating_pairs(local: Callable[[], T], ray_run: Callable[[], T],
                       least: int) -> list[tuple[T, T]]:  # fmt: skip
    """``max(ROUNDS, least)`` pairs of a local run and a Ray run back to back, the order
    swapped every pair (the machine drifts: each pair sees the same minute)."""
    pairs = []
    for i in range(max(ROUNDS, least)):
        if i % 2 == 0:
            first = local()
            pairs.append((first, ray_run()))
        else:
            second = ray_run()
            pairs.append((local(), second))
    return pairs


def _overhead_line(pairs: list[tuple[T, T]]) -> str:
    """Ray's median overhead over the pairs, per measure (wall, then CPU when measured),
    with every pair's, and the local run's median wall."""
    local_wall = sorted(local[0] for local, _ in pairs)
    parts = [f"local {local_wall[len(local_wall) // 2]:.2f} s median, {len(pairs)} alternating "
             "pairs: median overhead"]  # fmt: skip
    for k, measure in enumerate(("wall", "CPU")[: len(pairs[0][0])]):
        values = sorted(100 * (ray_run[k] / local[k] - 1) for local, ray_run in pairs)
        every = ", ".join(f"{x:+.1f}" for x in values)
        parts.append(f"{values[len(values) // 2]:+.1f}% {measure} ({every})")
    return f"{parts[0]} {', '.join(parts[1:])}"


def _linked_lake(source: Path, target: Path, copies: int) -> Path:
    """``source``'s files ``copies`` times over, as hard links: more rows, no new data."""
    for copy in range(copies):
        for f in sorted(source.rglob("*.parquet")):
            linked = target / f"copy={copy}" / f.parent.name / f.name
            linked.parent.mkdir(parents=True, exist_ok=True)
            os.link(f, linked)
    return target


def _overhead_report() -> None:
    """Each round's figures and the overhead of Ray over the local executor."""
    if not _FIGURES:
        return
    _REPORT.append(f"Ray overhead, {ROWS:,} rows, 2 CPUs (per round):")
    for name, rounds in _FIGURES.items():
        for i, f in enumerate(rounds):
            _REPORT.append(f"  {name} #{i}: {f}")
        _REPORT.append(f"  {name}, Ray timeline over its rounds (s): {_TIMELINES.get(name)}")
    best = {name: min(f["wall"] for f in rounds) for name, rounds in _FIGURES.items()}
    cpu = {name: min(f["cpu"]["total"] for f in rounds) for name, rounds in _FIGURES.items()}
    for name in (NEW, STANDING):
        if name in best and LOCAL in best:
            _REPORT.append(
                f"  {name}: best wall {best[name]:.2f} s vs local {best[LOCAL]:.2f} s "
                f"({100 * (best[name] / best[LOCAL] - 1):+.1f}%); least CPU {cpu[name]:.2f} s "
                f"vs local {cpu[LOCAL]:.2f} s ({100 * (cpu[name] / cpu[LOCAL] - 1):+.1f}%)"
            )


@pytest.mark.usefixtures("local_ray")
def test_memory_is_flat_as_the_data_grows(
    reference_path: Path,
    reference_lake: Path,
    tmp_path: Path,
) -> None:
    """1M and 4M rows through Ray: the driver's and the actors' peak RSS side by side."""
    lakes = {1: reference_lake, 4: _linked_lake(reference_lake, tmp_path / "lake-4x", 4)}
    rows = {}
    for factor, lake in lakes.items():
        baseline = _rss_mib()
        reset_peak_rss()
        result = _score(reference_path, lake, tmp_path / f"sink-{factor}", "ray")
        driver_peak = peak_rss_mib()
        actors = result.record["executor_stats"]["actor_stats"]
        assert result.rows_scored == factor * ROWS
        rows[factor] = {
            "rows": result.rows_scored,
            "tasks": result.tasks,
            "driver_rss_before_mib": round(baseline),
            "driver_peak_mib": round(driver_peak),
            "actor_peak_mib": sorted(round(a["peak_rss_mib"]) for a in actors.values()),
            "seconds": round(result.seconds, 1),
        }
    _REPORT.append("Memory through Ray (driver holds the benchmark's 1M x 50 matrix too):")
    for factor, doc in rows.items():
        _REPORT.append(f"  {factor}x: {doc}")


def _rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


@pytest.fixture(scope="module", autouse=True)
def _print_report() -> Any:
    yield
    _overhead_report()
    for line in _REPORT:
        print(line)
