"""The sample against a reference profile: null rates and ranges, where a profile is readable.

Reference profiles (``lakescore profile``) are made by the quality side of lakescore; this
reads what it can of one without depending on its exact layout: a JSON document or a
Parquet table that gives, per column, a null rate (or null/NaN and row counts) and a
min/max. A file it cannot read that way is skipped with a note, never an error: an
assessment should say what it could not check rather than refuse to check the rest.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from engine.assess_sample import Sample

#: A null rate this many points above the reference's is worth a warning (the quality
#: checks' default null-rate limit).
NULL_RATE_POINTS = 0.05
_NAME_KEYS = ("column", "name", "feature")
_TABLE_KEYS = ("columns", "features", "feature_stats", "stats")


def load_reference(path: str) -> tuple[dict[str, dict[str, float]] | None, str | None]:
    """Per-column ``null_rate``/``min``/``max`` of a profile, or ``None`` and why not."""
    p = Path(path)
    if not p.exists():
        return None, f"reference {path} not found; comparison skipped"
    try:
        if p.suffix == ".json":
            doc = json.loads(p.read_text(encoding="utf-8"))
            rows = _rows_from_json(doc)
        else:
            import pyarrow.parquet as pq

            rows = pq.read_table(p).to_pylist()
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return None, f"reference {path} is not readable here ({type(exc).__name__}); skipped"
    except Exception as exc:  # pyarrow's errors for a file that is not Parquet
        return None, f"reference {path} is not a profile this version reads ({exc}); skipped"
    profile = {}
    for row in rows:
        name = next((row[k] for k in _NAME_KEYS if isinstance(row.get(k), str)), None)
        stats = _stats(row)
        if name is not None and stats:
            profile[name] = stats
    if not profile:
        return None, f"reference {path} holds no per-column null rates or ranges; skipped"
    return profile, None


def compare(sample: Sample, profile: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Per sampled column: the reference's and the sample's figures, and what stands out."""
    columns: dict[str, Any] = {}
    warnings: list[str] = []
    for name, now in sample.columns.items():
        ref = profile.get(name)
        if ref is None or not now.rows:
            continue
        entry: dict[str, Any] = {"null_rate": [ref.get("null_rate"), round(now.null_rate, 6)]}
        flags = []
        if ref.get("null_rate") is not None and now.null_rate - ref["null_rate"] > NULL_RATE_POINTS:
            flags.append(
                f"null rate {now.null_rate:.1%} vs {ref['null_rate']:.1%} in the reference"
            )
        if ref.get("min") is not None and math.isfinite(now.min) and now.min < ref["min"]:
            flags.append(f"min {now.min:g} below the reference's {ref['min']:g}")
        if ref.get("max") is not None and math.isfinite(now.max) and now.max > ref["max"]:
            flags.append(f"max {now.max:g} above the reference's {ref['max']:g}")
        entry["range"] = [[ref.get("min"), ref.get("max")], _finite(now.min), _finite(now.max)]
        entry["flags"] = flags
        warnings += [f"{name}: {flag}" for flag in flags]
        columns[name] = entry
    return {"columns": columns, "warnings": warnings}


def _rows_from_json(doc: Any) -> list[dict[str, Any]]:
    if isinstance(doc, list):
        return [r for r in doc if isinstance(r, dict)]
    if not isinstance(doc, dict):
        return []
    for key in _TABLE_KEYS:
        table = doc.get(key)
        if isinstance(table, dict):
            return [{"column": k, **v} for k, v in table.items() if isinstance(v, dict)]
        if isinstance(table, list):
            return [r for r in table if isinstance(r, dict)]
    return [{"column": k, **v} for k, v in doc.items() if isinstance(v, dict)]


def _stats(row: dict[str, Any]) -> dict[str, float]:
    def num(key: str) -> float | None:
        value = row.get(key)
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return float(value) if ok and math.isfinite(value) else None

    out: dict[str, float] = {}
    null_rate = num("null_rate")
    if null_rate is None:  # counts: this module's own and the run record's summaries
        missing = sum(num(k) or 0.0 for k in ("nulls", "null", "nan"))
        total = num("rows") or (num("count") or 0.0) + missing
        if total:
            null_rate = missing / total
    if null_rate is not None:
        out["null_rate"] = null_rate
    for key in ("min", "max"):
        if (value := num(key)) is not None:
            out[key] = value
    return out


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
