"""``lakescore bench``'s projection and unit parsing, checked against hand arithmetic."""

from __future__ import annotations

import math

import pytest

from engine.bench.plan import Measured, project, summary_lines
from engine.bench.units import format_duration, parse_count, parse_duration, parse_fraction
from engine.errors import BadInputError


@pytest.mark.parametrize(
    ("text", "rows"),
    [
        ("500M", 500_000_000),
        ("500m", 500_000_000),
        ("2B", 2_000_000_000),
        ("1.5k", 1500),
        ("200000", 200_000),
        (" 16K ", 16_000),
    ],
)
def test_counts_take_suffixes(text: str, rows: int):
    assert parse_count(text) == rows


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2h", 7200), ("90m", 5400), ("45s", 45), ("1h30m", 5400), ("600", 600), ("0.5h", 1800)],
)
def test_durations_take_units(text: str, seconds: float):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5X", "", "-3", "0", "1.5", "M", "10 rows"])
def test_a_bad_count_names_the_flag(text: str):
    with pytest.raises(BadInputError, match="--rows"):
        parse_count(text)


@pytest.mark.parametrize("text", ["soon", "2d", "0h", "h", "-1h"])
def test_a_bad_duration_names_the_flag(text: str):
    with pytest.raises(BadInputError, match="--deadline"):
        parse_duration(text)


def test_headroom_is_a_fraction_below_one():
    assert parse_fraction("30%") == pytest.approx(0.3) and parse_fraction("0") == 0
    for bad in ("1", "1.2", "-0.1", "lots"):
        with pytest.raises(BadInputError, match="--headroom"):
            parse_fraction(bad)


def test_500m_rows_in_2h_at_1m_rows_per_core():
    # budget 7200 x 0.7 = 5040 s; 500M / 1M = 500 core-seconds; 500 / 5040 -> 1 core
    plan = project(500_000_000, 7200, 0.3, Measured(rows_per_s=1_000_000, cores=1))
    assert plan["budget_seconds"] == pytest.approx(5040)
    assert plan["core_seconds"] == pytest.approx(500)
    assert plan["cores_needed"] == 1 and plan["nodes_needed"] == 1
    assert plan["expected_seconds"] == pytest.approx(500) and plan["meets_deadline"]


def test_500m_rows_in_2h_at_10k_rows_per_core_on_two_cores():
    # 20k rows/s on 2 cores = 10k per core; 500M / 10k = 50,000 core-s; / 5040 = 9.92 -> 10
    # cores = 5 nodes of 2; here: 500M / 20k = 25,000 s, over the 5040 s budget
    stages = {"read": 3.0, "features": 1.0, "kernel": 5.0, "write": 1.0, "stats": 0.0}
    m = Measured(rows_per_s=20_000, cores=2, stage_seconds=stages, rows=100_000)
    plan = project(500_000_000, 7200, 0.3, m)
    assert plan["rows_per_s_per_core"] == pytest.approx(10_000)
    assert plan["core_seconds"] == pytest.approx(50_000)
    assert plan["cores_needed"] == 10 and plan["cores_per_node"] == 2
    assert plan["nodes_needed"] == 5
    assert plan["expected_seconds"] == pytest.approx(25_000)
    assert not plan["meets_deadline"]
    assert plan["bound_by"] == "kernel" and plan["stage_share"]["kernel"] == pytest.approx(0.5)
    assert plan["gpu"] is None
    assert "cores needed = ceil(50,000.0 / 5040) = 10" in plan["arithmetic"]


def test_an_exact_fit_needs_no_extra_core():
    # 1,000 rows at 10 rows/s per core in 10 s with no headroom: exactly 10 cores
    plan = project(1000, 10, 0.0, Measured(rows_per_s=10, cores=1))
    assert plan["cores_needed"] == 10


def test_headroom_leaves_time_spare():
    # 36M rows, 1h, 50% headroom, 1,000 rows/s per core: 36,000 core-s / 1,800 s = 20 cores
    plan = project(36_000_000, 3600, 0.5, Measured(rows_per_s=8_000, cores=8, nodes=2))
    assert plan["cores_needed"] == 20
    assert plan["cores_per_node"] == 4 and plan["nodes_needed"] == 5


def test_gpu_nodes_are_bound_by_the_slower_of_kernel_and_io():
    # 1M rows took 5 core-s outside the kernel: a 16-core node does 16 / 5e-6 = 3.2M rows/s
    # of IO, below its 100M rows/s GPU kernel; 500M / (3.2M x 5040) = 0.03 -> 1 node
    stages = {"read": 2.0, "features": 1.0, "kernel": 5.0, "write": 1.0, "stats": 1.0}
    m = Measured(
        rows_per_s=1_600_000, cores=16, stage_seconds=stages, gpu_rows_per_s=100e6, rows=1_000_000
    )
    gpu = project(500_000_000, 7200, 0.3, m)["gpu"]
    assert gpu["io_rows_per_s_per_node"] == pytest.approx(3.2e6)
    assert gpu["node_rows_per_s"] == pytest.approx(3.2e6)
    assert gpu["nodes_needed"] == 1 and gpu["bound_by"] == "read"
    # 50B rows: 50e9 / (3.2e6 x 5040) = 3.1 -> 4 GPU nodes
    assert project(50_000_000_000, 7200, 0.3, m)["gpu"]["nodes_needed"] == 4


def test_a_gpu_slower_than_its_io_bounds_by_kernel():
    stages = {"read": 1.0, "kernel": 1.0}
    m = Measured(rows_per_s=1e6, cores=8, stage_seconds=stages, gpu_rows_per_s=1e6, rows=1e7)
    gpu = project(10**9, 3600, 0.0, m)["gpu"]
    assert gpu["bound_by"] == "kernel" and gpu["node_rows_per_s"] == 1e6
    assert gpu["nodes_needed"] == math.ceil(1e9 / (1e6 * 3600))


def test_the_summary_states_the_plan():
    plan = project(500_000_000, 7200, 0.3, Measured(rows_per_s=20_000, cores=2))
    text = "\n".join(summary_lines(plan))
    assert "500M rows within 2h00m00s with 30% headroom" in text
    assert "needs 10 core(s)" in text and "misses the budget" in text
    assert format_duration(25_000) in text
