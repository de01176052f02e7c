"""The run's checks and its status: ``ok``, ``warn`` or ``fail`` (the worst check).

Each check is ``{"name", "status", "detail"}`` in the run record's ``checks`` list. The
``drift`` check is always present: the worst column's drift status, or ``ok`` with a
detail saying there was no reference (a sink's first run) or which reference was used.
"""

from __future__ import annotations

from typing import Any

from engine.quality.config import ChecksConfig
from engine.quality.drift import ColumnDrift, worst
from engine.stats import ColumnProfile


def check(name: str, status: str, detail: str) -> dict[str, str]:
    return {"name": name, "status": status, "detail": detail}


def evaluate_checks(
    config: ChecksConfig,
    *,
    rows: int,
    seconds: float,
    scores: dict[str, ColumnProfile],
    drift: list[ColumnDrift],
    reference: str | None,
) -> list[dict[str, str]]:
    checks: list[dict[str, str]] = []
    if config.min_rows is not None:
        ok = rows >= config.min_rows
        checks.append(
            check("min_rows", "ok" if ok else "fail", f"{rows} row(s), minimum {config.min_rows}")
        )
    if config.max_nan_score_share is not None:
        values = sum(p.rows for p in scores.values() if p.kind != "string")
        nan = sum(p.missing for p in scores.values() if p.kind != "string")
        share = nan / values if values else 0.0
        ok = share <= config.max_nan_score_share
        checks.append(
            check(
                "max_nan_score_share",
                "ok" if ok else "fail",
                f"{nan} NaN score value(s), share {share:.4g}, maximum "
                f"{config.max_nan_score_share:g}",
            )
        )
    if config.max_seconds is not None:
        ok = seconds <= config.max_seconds
        checks.append(
            check(
                "max_seconds",
                "ok" if ok else "fail",
                f"{seconds:.1f} s, maximum {config.max_seconds:g} s",
            )
        )
    checks.append(drift_check(drift, reference))
    return checks


def drift_check(drift: list[ColumnDrift], reference: str | None) -> dict[str, str]:
    if reference is None:
        return check("drift", "ok", "no reference (first run in this sink): drift not measured")
    status = worst([d.status for d in drift])
    parts = []
    for level in ("fail", "warn"):
        names = [d.column for d in drift if d.status == level]
        if names:
            parts.append(f"{level}: {', '.join(names[:10])}" + (" ..." if len(names) > 10 else ""))
    detail = "; ".join(parts) or f"{len(drift)} column(s) within limits"
    return check("drift", status, f"{detail} (reference {reference})")


def run_status(checks: list[dict[str, Any]]) -> str:
    return worst([str(c["status"]) for c in checks])
