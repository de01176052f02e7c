"""The projection: measured rates -> cores (and GPU nodes) that meet a deadline.

Headroom is kept as spare time: a plan with 30% headroom must finish within 70% of the
deadline, so a slow node, a retried task or a busier lake still fits. Every number of the
plan is written out as a line of arithmetic (``plan["arithmetic"]`` in bench.json), so a
reader can check it by hand.

Rates come from the end-to-end run (read, features, kernel, write, stats and commit all
included), never from the kernel alone: the kernel is one stage of the job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from engine.bench.units import format_count, format_duration

#: A fraction this close above a whole number is float noise, not one more core.
_EPSILON = 1e-9
#: The stages a task times (engine/task.py), in pipeline order.
STAGES = ("read", "features", "kernel", "write", "stats")


@dataclass(frozen=True)
class Measured:
    """What the projection starts from.

    Attributes
    ----------
    rows_per_s
        End-to-end rows/s of the machine or cluster measured (``cores`` cores on
        ``nodes`` nodes).
    cores, nodes
        What that rate was measured on.
    stage_seconds
        Seconds each stage took in the end-to-end run, summed over tasks (thread-seconds).
    gpu_rows_per_s
        The CUDA kernel's rows/s (host to host) where a GPU was measured, else None.
    source
        Which run the rates come from (``end_to_end`` or ``end_to_end_cluster``).
    """

    rows_per_s: float
    cores: int
    nodes: int = 1
    stage_seconds: dict[str, float] = field(default_factory=dict)
    gpu_rows_per_s: float | None = None
    source: str = "end_to_end"
    rows: int = 0

    @property
    def rows_per_s_per_core(self) -> float:
        return self.rows_per_s / self.cores

    @property
    def cores_per_node(self) -> int:
        return max(1, self.cores // max(1, self.nodes))


def whole(x: float) -> int:
    """The smallest whole number of machines (at least 1) that covers ``x``."""
    return max(1, math.ceil(x - _EPSILON))


def bounding_stage(stage_seconds: dict[str, float], exclude: tuple[str, ...] = ()) -> str | None:
    """The stage with the most time: the one that bounds the run."""
    candidates = {k: v for k, v in stage_seconds.items() if k not in exclude and v > 0}
    return max(candidates, key=lambda k: candidates[k]) if candidates else None


def stage_shares(stage_seconds: dict[str, float]) -> dict[str, float]:
    total = sum(stage_seconds.values())
    return {k: (v / total if total > 0 else 0.0) for k, v in stage_seconds.items()}


def project(rows: int, deadline_s: float, headroom: float, m: Measured) -> dict[str, Any]:
    """The plan for ``rows`` rows within ``deadline_s`` seconds with ``headroom`` spare.

    Returns a JSON-ready dict; ``arithmetic`` lists each step as text.
    """
    if m.rows_per_s <= 0 or m.cores < 1:
        raise ValueError("the measured rate must be positive and come from at least one core")
    budget = deadline_s * (1 - headroom)
    per_core = m.rows_per_s_per_core
    core_seconds = rows / per_core
    cores_needed = whole(core_seconds / budget)
    per_node = m.cores_per_node
    nodes_needed = whole(cores_needed / per_node)
    expected = rows / m.rows_per_s
    shares = stage_shares(m.stage_seconds)
    bound = bounding_stage(m.stage_seconds)
    lines = [
        f"budget = deadline x (1 - headroom) = {deadline_s:g} s x (1 - {headroom:g}) "
        f"= {budget:g} s",
        f"rate per core = {m.rows_per_s:,.1f} rows/s / {m.cores} core(s) "
        f"= {per_core:,.1f} rows/s ({m.source})",
        f"core-seconds = {rows:,} rows / {per_core:,.1f} rows/s = {core_seconds:,.1f}",
        f"cores needed = ceil({core_seconds:,.1f} / {budget:g}) = {cores_needed}",
        f"nodes needed = ceil({cores_needed} / {per_node} cores per node) = {nodes_needed}",
        f"expected here = {rows:,} rows / {m.rows_per_s:,.1f} rows/s "
        f"= {expected:,.1f} s ({format_duration(expected)})",
    ]
    if bound is not None:
        lines.append(
            "bound by = the stage with the most time: "
            + ", ".join(f"{k} {shares[k]:.0%}" for k in sorted(shares, key=lambda k: -shares[k]))
            + f" -> {bound}"
        )
    plan: dict[str, Any] = {
        "rows": rows,
        "deadline_seconds": deadline_s,
        "headroom": headroom,
        "budget_seconds": budget,
        "rate_source": m.source,
        "rows_per_s": m.rows_per_s,
        "rows_per_s_per_core": per_core,
        "core_seconds": core_seconds,
        "cores_needed": cores_needed,
        "cores_per_node": per_node,
        "nodes_needed": nodes_needed,
        "current_cores": m.cores,
        "current_nodes": m.nodes,
        "expected_seconds": expected,
        "meets_deadline": expected <= budget,
        "bound_by": bound,
        "stage_share": shares,
        "gpu": _gpu_plan(rows, budget, m, lines),
        "arithmetic": lines,
    }
    return plan


def _gpu_plan(rows: int, budget: float, m: Measured, lines: list[str]) -> dict[str, Any] | None:
    """GPU nodes: each scores at the lesser of its GPU kernel's rate and the rate at which
    its CPUs do the other stages (read, features, write, stats), assumed as measured here
    per core, on a node with as many cores as the machine measured."""
    if not m.gpu_rows_per_s or m.gpu_rows_per_s <= 0:
        return None
    io_seconds = sum(v for k, v in m.stage_seconds.items() if k != "kernel")
    per_node = m.cores_per_node
    if m.rows > 0 and io_seconds > 0:
        io_rate = per_node * m.rows / io_seconds
        lines.append(
            f"GPU node IO rate = {per_node} cores x {m.rows:,} rows / {io_seconds:,.3f} "
            f"core-s of non-kernel stages = {io_rate:,.1f} rows/s"
        )
    else:
        io_rate = math.inf
    node_rate = min(m.gpu_rows_per_s, io_rate)
    bound = (
        "kernel"
        if m.gpu_rows_per_s <= io_rate
        else bounding_stage(m.stage_seconds, exclude=("kernel",))
    )
    nodes = whole(rows / (node_rate * budget))
    expected = rows / node_rate
    lines += [
        f"GPU node rate = min(GPU kernel {m.gpu_rows_per_s:,.1f}, IO {io_rate:,.1f}) "
        f"= {node_rate:,.1f} rows/s (bound by {bound})",
        f"GPU nodes needed = ceil({rows:,} / ({node_rate:,.1f} x {budget:g})) = {nodes}",
    ]
    return {
        "gpu_kernel_rows_per_s": m.gpu_rows_per_s,
        "io_rows_per_s_per_node": None if math.isinf(io_rate) else io_rate,
        "node_rows_per_s": node_rate,
        "nodes_needed": nodes,
        "expected_seconds_one_node": expected,
        "bound_by": bound,
    }


def summary_lines(plan: dict[str, Any]) -> list[str]:
    """The plan in a few sentences, for the terminal and the Markdown summary."""
    rows, deadline, headroom = plan["rows"], plan["deadline_seconds"], plan["headroom"]
    out = [
        f"{format_count(rows)} rows within {format_duration(deadline)} with "
        f"{headroom:.0%} headroom (finish within {format_duration(plan['budget_seconds'])}):",
        f"  needs {plan['cores_needed']:,} core(s) at {plan['rows_per_s_per_core']:,.0f} "
        f"rows/s per core = {plan['nodes_needed']:,} node(s) of {plan['cores_per_node']} "
        "core(s)",
        f"  here ({plan['current_cores']} core(s), {plan['current_nodes']} node(s)): "
        f"expected {format_duration(plan['expected_seconds'])} at {plan['rows_per_s']:,.0f} "
        f"rows/s -> {'meets' if plan['meets_deadline'] else 'misses'} the budget",
    ]
    if plan["bound_by"]:
        share = plan["stage_share"].get(plan["bound_by"], 0.0)
        out.append(f"  bound by {plan['bound_by']} ({share:.0%} of stage time)")
    gpu = plan.get("gpu")
    if gpu:
        out.append(
            f"  or {gpu['nodes_needed']:,} GPU node(s) at {gpu['node_rows_per_s']:,.0f} rows/s "
            f"each (bound by {gpu['bound_by']})"
        )
    return out
