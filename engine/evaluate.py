"""``lakescore evaluate``: join outcomes to a run's scored rows and judge each variant.

The outcomes table has one row per event: the id, ``outcome`` (0/1) and optionally a time.
A customer converted when any of its outcomes is 1; a scored customer with no outcome row
did not convert (``missing="zero"``) or is left out (``missing="drop"``). Per variant:
rows, conversions, conversion rate with a Wilson 95% interval, AUC (rank-based, ties
averaged), calibration by score decile, lift over the champion (the variant named
``champion``, else the first), and the posterior probability of being best. A run without
variants is evaluated as one variant named after its model.

Proposed weights (:func:`propose_weights`): each variant's conversion rate has a
Beta(1 + conversions, 1 + rows - conversions) posterior; 20,000 joint draws with a fixed
seed give each variant's probability of having the highest rate (Thompson sampling). When
one variant is best with probability >= ``confidence`` (0.95), traffic follows those
probabilities, with at least ``min_weight`` per variant so none starves; otherwise the
evidence is not decisive and the current weights stand.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from engine._fsutil import fsync_dir, temp_path_for
from engine.errors import BadInputError
from engine.staging import Sink

log = logging.getLogger("lakescore.evaluate")

Z95 = 1.959963984540054
DRAWS = 20_000
TABLE = "variant_performance"


_CALIBRATION = pa.struct(
    [
        ("decile", pa.int64()),
        ("rows", pa.int64()),
        ("mean_score", pa.float64()),
        ("observed_rate", pa.float64()),
    ]
)
#: one schema for every evaluation, so the table's files read as one dataset
TABLE_SCHEMA = pa.schema(
    [
        ("evaluation_id", pa.string()),
        ("evaluated_at", pa.string()),
        ("run_id", pa.string()),
        ("variant", pa.string()),
        ("model", pa.string()),
        ("model_version", pa.int64()),
        ("sha256", pa.string()),
        ("rows", pa.int64()),
        ("conversions", pa.int64()),
        ("conversion_rate", pa.float64()),
        ("ci_low", pa.float64()),
        ("ci_high", pa.float64()),
        ("auc", pa.float64()),
        ("lift", pa.float64()),
        ("prob_best", pa.float64()),
        ("weight", pa.float64()),
        ("proposed_weight", pa.float64()),
        ("calibration", pa.list_(_CALIBRATION)),
    ]
)


@dataclass
class VariantPerformance:
    variant: str
    rows: int
    conversions: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    auc: float | None
    lift: float | None = None
    prob_best: float | None = None
    weight: float | None = None
    proposed_weight: float | None = None
    model: dict[str, Any] = field(default_factory=dict)
    #: per decile (0 = lowest scores): rows, mean score, observed rate
    calibration: list[dict[str, float | int]] = field(default_factory=list)


@dataclass
class Evaluation:
    evaluation_id: str
    run_id: str
    evaluated_at: str
    variants: list[VariantPerformance]
    weights_moved: bool
    table: str = ""


def wilson_interval(conversions: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (good near 0 and 1)."""
    if n == 0:
        return (math.nan, math.nan)
    p = conversions / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, center - half), min(1.0, center + half))


def propose_weights(
    conversions: list[int],
    rows: list[int],
    current: list[float],
    *,
    min_weight: float = 0.05,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[list[float], list[float], bool]:
    """``(proposed weights, probability each is best, moved?)``; see the module docstring."""
    k = len(rows)
    if k == 1:  # one model: nothing to move
        return list(current), [1.0], False
    if not 0 <= min_weight * k <= 1:
        raise BadInputError(f"--min-weight {min_weight}: must be in [0, 1/{k}]")
    rng = np.random.default_rng(seed)
    a = np.asarray(conversions, dtype=np.float64) + 1
    b = np.asarray(rows, dtype=np.float64) - np.asarray(conversions) + 1
    draws = rng.beta(a, b, size=(DRAWS, k))
    best = np.bincount(draws.argmax(axis=1), minlength=k) / DRAWS
    if best.max() < confidence:
        return list(current), best.tolist(), False
    proposed = min_weight + (1 - min_weight * k) * best
    return [float(w) for w in proposed / proposed.sum()], best.tolist(), True


def latest_run(sink: Sink) -> str:
    """The newest committed run of the sink (run ids begin with their UTC start time)."""
    names = sorted(p.stem for p in sink.runs_dir.glob("*.json")) if sink.runs_dir.is_dir() else []
    for run_id in reversed(names):
        if sink.is_committed(run_id):
            return run_id
    raise BadInputError(f"sink {sink.root}: no committed run to evaluate")


def _scan_outcomes(path: Path) -> pl.LazyFrame:
    if not path.exists():
        raise BadInputError(f"outcomes not found: {path}")
    if path.suffix == ".csv":
        return pl.scan_csv(path)
    pattern = str(path / "**" / "*.parquet") if path.is_dir() else str(path)
    return pl.scan_parquet(pattern, hive_partitioning=path.is_dir())


def load_joined(
    sink: Sink,
    run_id: str,
    outcomes: Path,
    *,
    id_column: str,
    outcome_column: str = "outcome",
    time_column: str = "time",
    since: dt.datetime | None = None,
    missing: str = "zero",
) -> pl.DataFrame:
    """The run's scored rows with a 0/1 ``outcome`` column (Polars does the join)."""
    scored = pl.scan_parquet(str(sink.committed_dir(run_id) / "*.parquet"))
    names = scored.collect_schema().names()
    if id_column not in names:
        raise BadInputError(f"run {run_id}: scored rows have no id column {id_column!r}")
    variant = pl.col("variant").cast(pl.String) if "variant" in names else pl.lit("model")
    scored = scored.select(pl.col(id_column), pl.col("score"), variant.alias("variant"))
    events = _scan_outcomes(outcomes)
    schema = events.collect_schema()
    for col in (id_column, outcome_column):
        if col not in schema:
            raise BadInputError(f"{outcomes}: no column {col!r} (has {', '.join(schema.names())})")
    if since is not None:
        if time_column not in schema:
            raise BadInputError(f"{outcomes}: no time column {time_column!r} for --since-run")
        cut = pl.lit(since).dt.replace_time_zone(None)
        events = events.filter(pl.col(time_column).cast(pl.Datetime("us")) >= cut)
    id_type = scored.collect_schema()[id_column]
    try:
        events = events.select(
            pl.col(id_column).cast(id_type, strict=True),
            pl.col(outcome_column).cast(pl.Int64, strict=True).alias("outcome"),
        ).collect()
    except pl.exceptions.PolarsError as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BadInputError(f"{outcomes}: {id_column}/{outcome_column}: {message}") from None
    bad = events.filter(~pl.col("outcome").is_in([0, 1]) | pl.col("outcome").is_null())
    if bad.height:
        raise BadInputError(
            f"{outcomes}: column {outcome_column!r} must be 0 or 1 ({bad.height} rows)"
        )
    per_id = events.group_by(id_column).agg(pl.col("outcome").max())
    joined = scored.collect().join(per_id, on=id_column, how="left")
    if missing == "zero":
        return joined.with_columns(pl.col("outcome").fill_null(0))
    return joined.drop_nulls("outcome")


def variant_metrics(joined: pl.DataFrame) -> dict[str, VariantPerformance]:
    """Rows, conversions, rate, Wilson interval, AUC and calibration of each variant."""
    ranked = joined.filter(pl.col("score").is_not_nan()).with_columns(
        pl.col("score").rank("average").over("variant").alias("_rank"),
        pl.col("score").rank("ordinal").over("variant").alias("_ordinal"),
        pl.len().over("variant").alias("_n"),
    )
    totals = ranked.group_by("variant", maintain_order=True).agg(
        pl.len().alias("rows"),
        pl.col("outcome").sum().alias("conversions"),
        (pl.col("_rank") * pl.col("outcome")).sum().alias("positive_rank_sum"),
    )
    deciles = (
        ranked.with_columns(((pl.col("_ordinal") - 1) * 10 // pl.col("_n")).alias("decile"))
        .group_by("variant", "decile")
        .agg(
            pl.len().alias("rows"),
            pl.col("score").mean().alias("mean_score"),
            pl.col("outcome").mean().alias("observed_rate"),
        )
        .sort("variant", "decile")
    )
    out: dict[str, VariantPerformance] = {}
    for row in totals.iter_rows(named=True):
        n, pos = int(row["rows"]), int(row["conversions"])
        neg = n - pos
        auc = None
        if pos and neg:  # Mann-Whitney U from the positives' rank sum
            auc = (row["positive_rank_sum"] - pos * (pos + 1) / 2) / (pos * neg)
        low, high = wilson_interval(pos, n)
        calibration = deciles.filter(pl.col("variant") == row["variant"]).drop("variant")
        out[row["variant"]] = VariantPerformance(
            variant=row["variant"],
            rows=n,
            conversions=pos,
            rate=pos / n if n else None,
            ci_low=low,
            ci_high=high,
            auc=auc,
            calibration=calibration.to_dicts(),
        )
    return out


def evaluate(
    sink: str | Path,
    outcomes: str | Path,
    *,
    run_id: str | None = None,
    outcome_column: str = "outcome",
    time_column: str = "time",
    since_run: bool = False,
    missing: str = "zero",
    min_weight: float = 0.05,
    confidence: float = 0.95,
    seed: int = 0,
) -> Evaluation:
    """Evaluate a run (default: the latest committed) and write ``variant_performance``."""
    if missing not in ("zero", "drop"):
        raise BadInputError(f"--missing {missing!r}: expected zero or drop")
    store = Sink(sink)
    run_id = run_id or latest_run(store)
    record = store.read_run_record(run_id)
    if record is None or not store.is_committed(run_id):
        raise BadInputError(f"sink {sink}: run {run_id} is not committed")
    id_column = record.get("id_column")
    if not id_column:
        raise BadInputError(f"run {run_id} has no id column: outcomes cannot be joined")
    since = dt.datetime.fromisoformat(record["started_at"]) if since_run else None
    joined = load_joined(
        store,
        run_id,
        Path(outcomes),
        id_column=id_column,
        outcome_column=outcome_column,
        time_column=time_column,
        since=since,
        missing=missing,
    )
    metrics = variant_metrics(joined)
    single = {"model": record.get("model"), "sha256": record.get("model_sha256")}
    single.update(record.get("registry_model", {}))
    plan = record.get("variant_plan", {}).get("models", {"model": single})
    order = record.get("variant_plan", {}).get("order", list(plan))
    names = [n for n in order if n in metrics] + [n for n in metrics if n not in order]
    if not names:
        raise BadInputError(f"run {run_id}: no scored rows to evaluate")
    perf = [metrics[n] for n in names]
    champion = metrics.get("champion", perf[0])
    current = [float(plan.get(n, {}).get("weight", 1 / len(perf))) for n in names]
    proposed, best, moved = propose_weights(
        [p.conversions for p in perf],
        [p.rows for p in perf],
        current,
        min_weight=min_weight,
        confidence=confidence,
        seed=seed,
    )
    for p, w, w_new, b in zip(perf, current, proposed, best, strict=True):
        p.weight, p.proposed_weight, p.prob_best = w, w_new, b
        p.model = {k: v for k, v in plan.get(p.variant, {}).items() if k != "path"}
        if champion.rate and p.rate is not None:
            p.lift = p.rate / champion.rate
    now = dt.datetime.now(dt.UTC)
    result = Evaluation(
        evaluation_id=f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}",
        run_id=run_id,
        evaluated_at=now.isoformat(),
        variants=perf,
        weights_moved=moved,
    )
    result.table = str(write_table(store, result))
    return result


def write_table(sink: Sink, result: Evaluation) -> Path:
    """One Parquet file per evaluation under ``<sink>/_lakescore/variant_performance/``."""
    rows = [
        {
            "evaluation_id": result.evaluation_id,
            "evaluated_at": result.evaluated_at,
            "run_id": result.run_id,
            "variant": p.variant,
            "model": p.model.get("model"),
            "model_version": p.model.get("version"),
            "sha256": p.model.get("sha256"),
            "rows": p.rows,
            "conversions": p.conversions,
            "conversion_rate": p.rate,
            "ci_low": p.ci_low,
            "ci_high": p.ci_high,
            "auc": p.auc,
            "lift": p.lift,
            "prob_best": p.prob_best,
            "weight": p.weight,
            "proposed_weight": p.proposed_weight,
            "calibration": p.calibration,
        }
        for p in result.variants
    ]
    table = pa.Table.from_pylist(rows, schema=TABLE_SCHEMA)
    path = sink.meta / TABLE / f"{result.evaluation_id}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return path
