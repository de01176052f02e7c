"""The quality tables under ``<sink>/_lakescore/``: one Parquet file per run and table.

``runs/``, ``feature_stats/``, ``score_stats/`` and ``drift/`` each get
``<run_id>.parquet`` with a fixed schema (below), so ``pyarrow.dataset.dataset(dir)``,
``polars.read_parquet(dir)`` and DuckDB's ``read_parquet('dir/*.parquet')`` read every
run's rows as one table. Lists (histograms) are Parquet lists; the run's checks and stage
timings are JSON strings; sketches are DataSketches' own serialisation (KLL) and the raw
HyperLogLog registers, so a report can rebuild quantiles from the table alone.

``score_stats`` and ``drift`` have a nullable ``variant`` column: null on the whole run's
rows, the variant's name on a variant run's per-variant rows (its acting ``score``).
Files written before it existed lack the column; :func:`read_table` reads every file of a
table with the current schema, so there it reads as null.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from engine._fsutil import temp_path_for
from engine.quality.drift import ColumnDrift
from engine.stats import QUANTILES, ColumnProfile

TABLES = ("runs", "feature_stats", "score_stats", "drift")

RUNS_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("started_at", pa.string()),
        ("finished_at", pa.string()),
        ("status", pa.string()),
        ("drift_status", pa.string()),  # the worst column's drift status
        ("rows", pa.int64()),
        ("seconds", pa.float64()),
        ("rows_per_second", pa.float64()),
        ("stats_seconds", pa.float64()),  # the workers' time in the stats stage
        ("tasks", pa.int64()),
        ("tasks_resumed", pa.int64()),
        ("model", pa.string()),
        ("model_sha256", pa.string()),
        ("source", pa.string()),
        ("backend", pa.string()),
        ("executor", pa.string()),
        ("reference", pa.string()),  # a profile file, "run:<run_id>", or null (none)
        ("checks", pa.string()),  # JSON list of {"name", "status", "detail"}
        ("stage_seconds", pa.string()),  # JSON object
    ]
)

_QUANTILE_FIELDS = [(f"p{round(q * 100):02d}", pa.float64()) for q in QUANTILES]
STATS_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("column", pa.string()),  # model feature name, or score column
        ("source_column", pa.string()),  # features: the source column read; scores: null
        ("kind", pa.string()),  # continuous | discrete | string
        ("rows", pa.int64()),
        ("nulls", pa.int64()),
        ("nan", pa.int64()),
        ("pos_inf", pa.int64()),
        ("neg_inf", pa.int64()),
        ("count", pa.int64()),  # finite values
        ("null_rate", pa.float64()),  # (nulls + NaN) / rows
        ("min", pa.float64()),
        ("max", pa.float64()),
        ("mean", pa.float64()),
        ("std", pa.float64()),
        *_QUANTILE_FIELDS,
        ("distinct", pa.float64()),
        ("hist_edges", pa.list_(pa.float64())),
        ("hist_counts", pa.list_(pa.int64())),  # below edges[0], bins, above edges[-1]
        ("categories", pa.string()),  # JSON [[value, count], ...] or null (too many)
        ("kll", pa.binary()),
        ("hll", pa.binary()),
        ("variant", pa.string()),  # null: the whole run; else this variant's rows only
    ]
)

DRIFT_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("column", pa.string()),
        ("role", pa.string()),  # feature | score
        ("reference", pa.string()),
        ("psi", pa.float64()),
        ("js", pa.float64()),
        ("ks", pa.float64()),
        ("out_of_range_share", pa.float64()),
        ("null_rate_reference", pa.float64()),
        ("null_rate", pa.float64()),
        ("null_rate_change", pa.float64()),  # percentage points
        ("unseen_categories", pa.list_(pa.string())),
        ("unseen_share", pa.float64()),
        ("bin_edges", pa.list_(pa.float64())),  # inner edges of the PSI bins (outer open)
        ("reference_shares", pa.list_(pa.float64())),  # the reference's share per bin
        ("shares", pa.list_(pa.float64())),  # the run's share per bin
        ("status", pa.string()),
        ("reasons", pa.list_(pa.string())),
        ("variant", pa.string()),  # null: the whole run; else this variant's score
    ]
)

SCHEMAS = {
    "runs": RUNS_SCHEMA,
    "feature_stats": STATS_SCHEMA,
    "score_stats": STATS_SCHEMA,
    "drift": DRIFT_SCHEMA,
}


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def runs_table(record: dict[str, Any]) -> pa.Table:
    stages = record.get("stage_seconds", {})
    row = {
        "run_id": record["run_id"],
        "started_at": record.get("started_at"),
        "finished_at": record.get("finished_at"),
        "status": record.get("status"),
        "drift_status": _worst_drift(record.get("drift_status", {})),
        "rows": record.get("rows"),
        "seconds": record.get("seconds"),
        "rows_per_second": record.get("rows_per_second"),
        "stats_seconds": stages.get("stats"),
        "tasks": record.get("tasks"),
        "tasks_resumed": record.get("tasks_resumed"),
        "model": record.get("model"),
        "model_sha256": record.get("model_sha256"),
        "source": record.get("source"),
        "backend": record.get("backend"),
        "executor": record.get("executor"),
        "reference": record.get("reference"),
        "checks": json.dumps(record.get("checks", [])),
        "stage_seconds": json.dumps(stages, sort_keys=True),
    }
    return pa.Table.from_pylist([row], schema=RUNS_SCHEMA)


def _worst_drift(statuses: dict[str, str]) -> str | None:
    from engine.quality.drift import worst

    return worst(list(statuses.values())) if statuses else None


def stats_table(
    run_id: str,
    columns: dict[str, ColumnProfile],
    source_columns: dict[str, str] | None,
    variant: str | None = None,
) -> pa.Table:
    rows = []
    for name, p in sorted(columns.items()):
        quantiles = p.quantiles() or [None] * len(QUANTILES)
        rows.append(
            {
                "run_id": run_id,
                "column": name,
                "source_column": (source_columns or {}).get(name),
                "kind": p.kind,
                "rows": p.rows,
                "nulls": p.nulls,
                "nan": p.nan,
                "pos_inf": p.pos_inf,
                "neg_inf": p.neg_inf,
                "count": p.count,
                "null_rate": p.null_rate,
                "min": _finite(p.moments.min),
                "max": _finite(p.moments.max),
                "mean": p.moments.mean if p.count else None,
                "std": math.sqrt(p.moments.variance) if p.count else None,
                **{f: q for (f, _), q in zip(_QUANTILE_FIELDS, quantiles, strict=True)},
                "distinct": p.distinct,
                "hist_edges": list(p.edges) if p.hist is not None else None,
                "hist_counts": p.hist,
                "categories": None
                if p.categories is None
                else json.dumps([[k, v] for k, v in sorted(p.categories.items(), key=str)]),
                "kll": p.kll.serialize() if p.kll is not None else None,
                "hll": p.hll.tobytes() if p.hll is not None else None,
                "variant": variant,
            }
        )
    return pa.Table.from_pylist(rows, schema=STATS_SCHEMA)


def drift_table(
    run_id: str, reference: str | None, drift: list[ColumnDrift], variant: str | None = None
) -> pa.Table:
    rows = [
        {"run_id": run_id, "reference": reference, **d.to_dict(), "variant": variant} for d in drift
    ]
    return pa.Table.from_pylist(rows, schema=DRIFT_SCHEMA)


def read_table(meta_dir: Path, name: str) -> pa.Table:
    """Every run's rows of one table (``meta_dir`` is ``<sink>/_lakescore``), read with
    the current schema: a column that an older file lacks (``variant``) reads as null.
    An empty table when no run wrote one."""
    import pyarrow.dataset as ds

    schema = SCHEMAS[name]
    directory = meta_dir / name
    files = sorted(str(p) for p in directory.glob("*.parquet")) if directory.is_dir() else []
    if not files:
        return schema.empty_table()
    return ds.dataset(files, schema=schema, format="parquet").to_table()


def write_tables(directory: Path, run_id: str, tables: dict[str, pa.Table]) -> None:
    """Write ``<directory>/<table>/<run_id>.parquet`` for each table (write aside, rename)."""
    for name, table in tables.items():
        path = directory / name / f"{run_id}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path_for(path)
        pq.write_table(table, tmp, compression="zstd")
        tmp.replace(path)
