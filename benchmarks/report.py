"""The end-of-run Markdown tables (printed by ``conftest.pytest_terminal_summary``)."""

from __future__ import annotations

import math
from typing import Any

#: Column order of contenders within a model's rows; others follow by name.
ORDER = ("numba", "tl2cgen", "native", "gtil")


def _num(value: float, fmt: str) -> str:
    return "-" if value is None or math.isnan(value) else format(value, fmt)


def markdown_table(timings: list[Any]) -> list[str]:
    """One row per (model, threads, contender): rows/s over the best round, the ratio to
    the native library's rows/s with the same threads, file -> first prediction, and the
    peak RSS while the contender ran."""
    native = {(t.model, t.n_threads): t.rows_per_s for t in timings if t.contender == "native"}

    def rank(t: Any) -> tuple[Any, ...]:
        order = ORDER.index(t.contender) if t.contender in ORDER else len(ORDER)
        return (t.model, t.n_threads, order, t.contender)

    lines = [
        "| model | threads | contender | rows | rows/s | vs native | ready (s) | peak RSS (MiB) "
        "| note |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for t in sorted(timings, key=rank):
        base = native.get((t.model, t.n_threads), math.nan)
        ratio = t.rows_per_s / base if base and not math.isnan(base) else math.nan
        lines.append(
            f"| {t.model} | {t.n_threads} | {t.contender} | {t.rows:,} | "
            f"{_num(t.rows_per_s, ',.0f')} | {_num(ratio, '.2f')}x | {_num(t.ready_s, '.2f')} | "
            f"{_num(t.peak_rss_mib, ',.0f')} | {t.note} |"
        )
    return lines


def compile_table(measurements: list[dict[str, Any]]) -> list[str]:
    """Model file -> ready kernel in a fresh process, by phase (see ``compile_time.py``):
    the process's CPU seconds per phase (a shared machine inflates them far less than wall
    seconds), then wall seconds."""
    phases = ("import", "load", "compile", "first_predict", "total")
    lines = [
        "| model | backend | caches | "
        + " | ".join(f"{p} (CPU s)" for p in phases)
        + " | total (wall s) | process wall | Numba imported |",
        "|---|---|---|" + "---:|" * (len(phases) + 2) + "---|",
    ]
    for m in measurements:
        cells = " | ".join(_num(m[f"cpu_{p}"], ".2f") for p in phases)
        numba = {None: "", 0.0: "no", 1.0: "yes"}.get(m.get("numba_imported"), "")
        lines.append(
            f"| {m['model']} | {m['backend']} | {m['caches']} | {cells} | "
            f"{_num(m['total'], '.2f')} | {_num(m['wall'], '.2f')} | {numba} |"
        )
    return lines


def end_to_end_shares(timings: list[Any]) -> list[str]:
    """The end-to-end group as DESIGN states its targets: each contender's rows/s over the
    kernel alone (>= 0.85 for ``lakescore score``) and over the Ray Data pipeline (>= 3x)."""
    group = {t.contender: t.rows_per_s for t in timings if t.model == "end-to-end"}
    kernel = max(group.get("kernel alone", math.nan), group.get("kernel alone, F", math.nan))
    ray_data = group.get("ray data", math.nan)
    if not group or math.isnan(kernel):
        return []
    lines = [
        "| end-to-end contender | rows/s | share of kernel alone | vs Ray Data |",
        "|---|---:|---:|---:|",
    ]
    for name, rate in sorted(group.items(), key=lambda kv: -kv[1]):
        lines.append(
            f"| {name} | {_num(rate, ',.0f')} | {_num(rate / kernel, '.2f')} | "
            f"{_num(rate / ray_data, '.2f')}x |"
        )
    return lines
