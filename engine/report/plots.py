"""The report's plots, from the rows :mod:`engine.report.load` read (each returns SVG).

Distributions are drawn on the reference's bins as the ``drift`` table holds them (inner
edges: the reference's deciles; both sides' share per bin), so the picture is the one
PSI was computed on. Without a reference (a sink's first run) a column's own histogram
stands alone: its exact counts when it has edges, else shares read from its KLL sketch
on equal-width bins between its min and max.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from datasketches import kll_floats_sketch

from engine.report.load import ReportData
from engine.report.svg import (
    STATUSES,
    Series,
    fmt,
    grouped_bars,
    intervals,
    quantile_boxes,
    ranked_bars,
)

SKETCH_BINS = 20
MAX_DRIFTED = 6  # histograms of the most drifted features


def bin_labels(inner_edges: Sequence[float]) -> list[str]:
    """``< e1``, ``e1 - e2``, ..., ``>= ek`` for bins whose outer ends are open."""
    if not inner_edges:
        return ["all"]
    e = [fmt(x, 3) for x in inner_edges]
    return [f"< {e[0]}", *(f"{a} – {b}" for a, b in pairwise(e)), f"≥ {e[-1]}"]


@dataclass(frozen=True)
class Bins:
    """Shares of rows per bin: numeric bins between ``edges`` (inner edges; the outer
    bins are open), or categories named by ``labels`` (``edges`` None)."""

    shares: list[float]
    edges: list[float] | None = None
    labels: list[str] | None = None

    def plot(self, kind: str, title: str, series: list[Series]) -> str:
        if self.edges is None:
            return grouped_bars(kind, title, self.labels or [], series)
        boundaries = [fmt(x, 3) for x in self.edges]
        labels = bin_labels(self.edges)
        return grouped_bars(kind, title, labels, series, boundaries=boundaries)


def column_bins(
    row: dict[str, Any], lo: float | None = None, hi: float | None = None
) -> Bins | None:
    """A column's own histogram from its stats row: its exact counts on its edges, else
    its KLL sketch on equal-width bins over [lo, hi] (default: its min and max), else its
    categories; None when it has none of them."""
    counts, edges = row.get("hist_counts"), row.get("hist_edges")
    if counts and edges and sum(counts) and lo is None:
        inner = list(counts[1:-1])  # below the first edge and above the last join the ends
        inner[0] += counts[0]
        inner[-1] += counts[-1]
        return Bins([c / sum(inner) for c in inner], edges=list(edges[1:-1]))
    lo = row.get("min") if lo is None else lo
    hi = row.get("max") if hi is None else hi
    if row.get("kll") and lo is not None and hi is not None:
        sketch = kll_floats_sketch.deserialize(row["kll"])
        if sketch.is_empty():
            return None
        if hi <= lo:
            return Bins([1.0], labels=[fmt(lo)])
        splits = [lo + (hi - lo) * k / SKETCH_BINS for k in range(1, SKETCH_BINS)]
        return Bins([float(x) for x in sketch.get_pmf(splits)], edges=splits)
    if row.get("categories"):
        pairs = json.loads(row["categories"])
        total = sum(n for _, n in pairs) or 1
        return Bins([n / total for _, n in pairs], labels=[str(v) for v, _ in pairs])
    return None


def _drift_title(d: dict[str, Any]) -> str:
    parts = [f"PSI {fmt(d.get('psi'), 3)}"] if d.get("psi") is not None else []
    return ", ".join([*parts, d.get("status") or "ok"])


def distribution(
    kind: str, column: str, drift: dict[str, Any] | None, stats: dict[str, Any] | None
) -> str | None:
    """``column`` against its reference (a drift row with bins), else alone (a stats row)."""
    if drift and drift.get("shares") and drift.get("reference_shares"):
        series = [
            Series("reference", drift["reference_shares"], css="ref"),
            Series("this run", drift["shares"], css="run"),
        ]
        bins = Bins(drift["shares"], edges=list(drift.get("bin_edges") or []))
        title = f"{column}: share of rows per reference bin ({_drift_title(drift)})"
        return bins.plot(kind, title, series)
    own = column_bins(stats) if stats else None
    if own is None:
        return None
    title = f"{column}: share of rows per bin (no reference: no drift measured)"
    return own.plot(kind, title, [Series("this run", own.shares, css="run")])


def score_distributions(data: ReportData) -> list[str]:
    drift = {d["column"]: d for d in data.drift if d.get("role") == "score"}
    stats = {s["column"]: s for s in data.score_stats}
    names = sorted(set(stats) | set(drift), key=lambda c: (c != "score", c))
    plots = [distribution("score-distribution", c, drift.get(c), stats.get(c)) for c in names]
    return [p for p in plots if p]


def _features(data: ReportData) -> list[dict[str, Any]]:
    """Feature drift rows, most drifted first (PSI; then status)."""
    rows = [d for d in data.drift if d.get("role") == "feature"]
    return sorted(rows, key=lambda d: (-(d.get("psi") or 0.0), d["column"]))


def drift_ranked(data: ReportData) -> str | None:
    rows = _features(data)
    if not rows:
        return None
    items = [(d["column"], d.get("psi"), _status(d.get("status"))) for d in rows]
    return ranked_bars("drift-psi", "Feature drift: PSI against the reference, ranked", items)


def drifted_features(data: ReportData) -> list[str]:
    """Histograms of the features whose drift warned or failed, most drifted first."""
    stats = {s["column"]: s for s in data.feature_stats}
    rows = [d for d in _features(data) if d.get("status") in ("warn", "fail")][:MAX_DRIFTED]
    plots = [
        distribution("feature-distribution", d["column"], d, stats.get(d["column"])) for d in rows
    ]
    return [p for p in plots if p]


def null_rates(data: ReportData) -> str | None:
    if not data.feature_stats:
        return None
    drift = {d["column"]: d for d in data.drift}
    rows = sorted(data.feature_stats, key=lambda s: (-(s.get("null_rate") or 0.0), s["column"]))
    items, marks = [], []
    for s in rows:
        d = drift.get(s["column"], {})
        flagged = any("null-rate" in r for r in d.get("reasons") or [])
        items.append(
            (s["column"], s.get("null_rate"), _status(d.get("status")) if flagged else "s0")
        )
        marks.append(d.get("null_rate_reference"))
    title = "Null rate per feature (null or NaN share of rows; tick: the reference's)"
    has_marks = any(m is not None for m in marks)
    return ranked_bars(
        "null-rates",
        title,
        items,
        x_format="percent",
        marks=marks if has_marks else None,
        mark_name="reference",
    )


def history(data: ReportData) -> list[str]:
    """Rows and rows/s of every run of the sink, oldest first, coloured by status."""
    runs = data.history
    labels = [str(r["run_id"]) for r in runs]
    classes = [_status(r.get("status")) for r in runs]
    current = labels.index(data.run_id)
    plots = []
    for key, title in (("rows", "Rows scored per run"), ("rows_per_second", "Rows/s per run")):
        values = [_number(r.get(key)) for r in runs]
        series = Series(title.split(" per ")[0], values, classes=classes)
        plots.append(
            grouped_bars(
                f"history-{key.replace('_', '-')}",
                f"{title} (status colours; outlined: this run)",
                labels,
                [series],
                y_format="number",
                height=200,
                highlight=current,
            )
        )
    return plots


def variant_scores(data: ReportData) -> str | None:
    """Each variant's score distribution: from ``score_stats`` rows per variant when the
    table has them, else the quantiles in the run record's ``variants``."""
    order = [name for name, _ in data.variants()]
    rows = sorted(
        (r for r in data.variant_score_stats if r["column"] == "score"),
        key=lambda r: order.index(r["variant"]) if r["variant"] in order else len(order),
    )
    title = "Score distribution per variant"
    shared = _shared_bins(rows) if rows else None
    if shared is not None:
        bins, series = shared
        return bins.plot("variant-scores", title, series)
    items = []
    for name, doc in data.variants():
        quantiles = (doc.get("score") or {}).get("quantiles") or {}
        items.append((name, {float(q): float(v) for q, v in quantiles.items() if v is not None}))
    if not any(q for _, q in items):
        return None
    return quantile_boxes("variant-scores", f"{title} (p01 – p99, box p25 – p75, median)", items)


def _shared_bins(rows: list[dict[str, Any]]) -> tuple[Bins, list[Series]] | None:
    """Per-variant shares on one set of bins: their histograms when all have the same
    edges, else their sketches on equal-width bins over all of them."""
    if len({tuple(r.get("hist_edges") or ()) for r in rows}) == 1:
        own = [b for r in rows if (b := column_bins(r)) is not None and b.edges is not None]
        if len(own) == len(rows):
            series = [Series(r["variant"], b.shares) for r, b in zip(rows, own, strict=True)]
            return own[0], series
    lows = [r["min"] for r in rows if r.get("min") is not None]
    highs = [r["max"] for r in rows if r.get("max") is not None]
    if not lows:
        return None
    bins = [column_bins(r, min(lows), max(highs)) for r in rows]
    first = next((b for b in bins if b is not None), None)
    if first is None:
        return None
    series = [Series(r["variant"], b.shares if b else []) for r, b in zip(rows, bins, strict=True)]
    return first, series


def variant_performance(data: ReportData) -> list[str]:
    rows = data.variant_performance
    if not rows:
        return []
    ci = [(r["variant"], r.get("ci_low"), r.get("conversion_rate"), r.get("ci_high")) for r in rows]
    auc = [(r["variant"], r.get("auc"), f"s{i % 6}") for i, r in enumerate(rows)]
    lift = [(r["variant"], r.get("lift"), f"s{i % 6}") for i, r in enumerate(rows)]
    return [
        intervals("variant-conversion", "Conversion rate per variant (Wilson 95% interval)", ci),
        ranked_bars("variant-auc", "AUC per variant", auc),
        ranked_bars("variant-lift", "Lift over the champion (conversion rate ratio)", lift),
    ]


def _status(status: str | None) -> str:
    return status if status in STATUSES else "s0"


def _number(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None
