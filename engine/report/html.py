"""The report page: one self-contained HTML file (inline CSS and SVG, no script).

Its Content-Security-Policy (``default-src 'none'``) forbids loading anything, so a
page that would reach the network is caught as a console error rather than silently
fetching. The output depends only on the data read (no clock), so rendering a run's
report twice gives the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from html import escape
from typing import Any

from engine.report import plots
from engine.report.load import ReportData
from engine.report.svg import STATUSES, fmt

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:0 16px;color:#222}
h1{font-size:22px;margin:18px 0 4px}
h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
nav a{margin-right:12px}table{border-collapse:collapse;margin:8px 0}
td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}.muted{color:#777}
code{font-size:12px}.badge{padding:1px 8px;border-radius:9px;color:#fff;font-weight:600}
.badge.ok{background:#2e7d32}.badge.warn{background:#e09b00}.badge.fail{background:#c62828}
.badge.failed{background:#6a1b1b}.badge.none{background:#999}
svg.plot{display:block;margin:10px 0;background:#fff;max-width:100%;height:auto}
svg text{font:11px system-ui,sans-serif;fill:#333}svg .plot-title{font-size:13px;font-weight:600}
svg .grid{stroke:#e6e6e6}svg .axis{stroke:#888}svg .mark{stroke:#000;stroke-width:2}
svg .whisker{stroke:#555;stroke-width:2}svg .median{stroke:#000;stroke-width:2}
svg .ok{fill:#43a047}svg .warn{fill:#f0a500}svg .fail{fill:#e53935}svg .failed{fill:#6a1b1b}
svg .ref{fill:#b0b7c3}svg .run{fill:#1e63b5}svg .current{stroke:#000;stroke-width:1.5}
svg .s0{fill:#1e63b5}svg .s1{fill:#e8710a}svg .s2{fill:#2e7d32}svg .s3{fill:#8e24aa}
svg .s4{fill:#00838f}svg .s5{fill:#6d4c41}
"""
CSP = "default-src 'none'; style-src 'unsafe-inline'"


def badge(status: str | None) -> str:
    css = status if status in STATUSES else "none"
    return f'<span class="badge {css}">{escape(status or "-")}</span>'


class Raw(str):
    """Markup that a table cell takes as is (already escaped)."""


Cell = Callable[[dict[str, Any]], Any]


def col(header: str, get: str | Cell, numeric: bool = False) -> tuple[str, Cell, bool]:
    """A table column: its header, the cell of a row (a key, or a function), alignment."""
    return header, (get if callable(get) else lambda row, k=get: row.get(k)), numeric


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, Cell, bool]]) -> str:
    """An HTML table of ``rows``; cells are escaped unless they are :class:`Raw`."""

    def cell(tag: str, numeric: bool, v: Any) -> str:
        cls = ' class="n"' if numeric else ""
        return f"<{tag}{cls}>{v if isinstance(v, Raw) else escape(_show(v))}</{tag}>"

    head = "".join(cell("th", n, h) for h, _, n in columns)
    body = "".join(
        "<tr>" + "".join(cell("td", n, get(row)) for _, get, n in columns) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _status_cell(row: dict[str, Any]) -> Raw:
    return Raw(badge(row.get("status")))


def _show(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return fmt(v)
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.2%}"


def summary(data: ReportData) -> str:
    r = data.record
    seconds = r.get("seconds")
    facts = [
        ("status", Raw(badge(r.get("status")))),
        ("rows", r.get("rows")),
        ("rows/s", r.get("rows_per_second")),
        ("duration", None if seconds is None else f"{fmt(seconds)} s"),
        ("started / finished", f"{r.get('started_at') or '-'} / {r.get('finished_at') or '-'}"),
        ("model", r.get("model")),
        ("model sha256", Raw(f"<code>{escape(str(r.get('model_sha256') or '-'))}</code>")),
        ("source", r.get("source")),
        ("reference", r.get("reference") or "none (no drift measured)"),
        ("backend / executor", f"{r.get('backend') or '-'} / {r.get('executor') or '-'}"),
        ("tasks (resumed)", f"{_show(r.get('tasks'))} ({_show(r.get('tasks_resumed'))})"),
        *([("error", r["error"])] if r.get("error") else []),
    ]
    out = [table([{"k": k, "v": v} for k, v in facts], [col("", "k"), col("", "v")])]
    checks = r.get("checks") or []
    if isinstance(checks, str):  # the runs table's JSON
        checks = json.loads(checks)
    if checks:
        columns = [col("check", "name"), col("status", _status_cell), col("detail", "detail")]
        out += ["<h3>Checks</h3>", table(checks, columns)]
    return "".join(out)


QUANTILE_COLUMNS = [col(h, h.lower(), True) for h in ("p01", "p50", "p99")]


def scores(data: ReportData) -> str:
    out = plots.score_distributions(data)
    stats = sorted(data.score_stats, key=lambda s: (s["column"] != "score", s["column"]))
    if stats:
        columns = [
            col("column", "column"),
            *(col(h, h.lower(), True) for h in ("rows", "NaN", "mean", "std", "min")),
            *QUANTILE_COLUMNS,
            col("max", "max", True),
        ]
        out.append(table(stats, columns))
    return "".join(out) or _none("no score statistics for this run")


DRIFT_COLUMNS = [
    col("column", "column"),
    col("role", "role"),
    col("PSI", "psi", True),
    col("JS", "js", True),
    col("KS", "ks", True),
    col("out of range", lambda d: _pct(d.get("out_of_range_share")), True),
    col("null rate Δ (points)", "null_rate_change", True),
    col("unseen", lambda d: ", ".join(d.get("unseen_categories") or []) or None),
    col("status", _status_cell),
    col("reasons", lambda d: "; ".join(d.get("reasons") or []) or None),
]


def drift(data: ReportData) -> str:
    if not data.drift:
        why = "no reference" if not data.record.get("reference") else "no drift rows"
        return _none(f"{why}: no drift measured for this run")
    ranked = sorted(data.drift, key=lambda d: (-(d.get("psi") or 0.0), d["column"]))
    out = [plots.drift_ranked(data) or "", table(ranked, DRIFT_COLUMNS)]
    drifted = plots.drifted_features(data)
    if drifted:
        out += ["<h3>Features that drifted: run against reference</h3>", *drifted]
    return "".join(out)


def nulls(data: ReportData) -> str:
    plot = plots.null_rates(data)
    if plot is None:
        return _none("no feature statistics for this run")
    columns = [
        col("feature", "column"),
        col("source column", "source_column"),
        *(
            col(h, k, True)
            for h, k in (
                ("rows", "rows"),
                ("nulls", "nulls"),
                ("NaN", "nan"),
                ("+inf", "pos_inf"),
                ("-inf", "neg_inf"),
            )
        ),
        col("null rate", lambda s: _pct(s.get("null_rate")), True),
    ]
    return plot + table(sorted(data.feature_stats, key=lambda s: s["column"]), columns)


def history(data: ReportData) -> str:
    def run(h: dict[str, Any]) -> Any:
        return Raw(f"<b>{escape(h['run_id'])}</b>") if h["run_id"] == data.run_id else h["run_id"]

    columns = [
        col("run", run),
        col("started", "started_at"),
        col("status", _status_cell),
        col("drift", "drift_status"),
        col("rows", "rows", True),
        col("rows/s", "rows_per_second", True),
        col("seconds", "seconds", True),
    ]
    recent = list(reversed(data.history))[:30]
    note = f"{len(data.history)} run(s), oldest first; the table lists the newest 30"
    return "".join(plots.history(data)) + _none(note) + table(recent, columns)


def variants(data: ReportData) -> str:
    docs = data.variants()
    out = []
    if docs:
        columns = [
            col("variant", "variant"),
            col("model", lambda d: d.get("name") or d.get("model")),
            col("version", "version"),
            col("weight", "weight", True),
            col("rows", "rows", True),
            col("share", lambda d: _pct(d.get("share")), True),
            col("mean score", lambda d: (d.get("score") or {}).get("mean"), True),
        ]
        out.append(table([{"variant": k, **d} for k, d in docs], columns))
    plot = plots.variant_scores(data)
    if plot:
        out.append(plot)
    if data.variant_drift:
        rows = sorted(data.variant_drift, key=lambda d: (d["variant"], -(d.get("psi") or 0.0)))
        out += [
            "<h3>Drift per variant</h3>",
            table(rows, [col("variant", "variant"), *DRIFT_COLUMNS]),
        ]
    return "".join(out)


PERFORMANCE_COLUMNS = [
    col("variant", "variant"),
    col("rows", "rows", True),
    col("conversions", "conversions", True),
    col("rate", lambda r: _pct(r.get("conversion_rate")), True),
    col("95% CI", lambda r: f"{_pct(r.get('ci_low'))} – {_pct(r.get('ci_high'))}", True),
    col("AUC", "auc", True),
    col("lift", "lift", True),
    col("P(best)", "prob_best", True),
    col("weight", "weight", True),
    col("proposed", "proposed_weight", True),
]


def performance(data: ReportData) -> str:
    rows = data.variant_performance
    if not rows:
        return ""
    first = rows[0]
    note = (
        f"evaluation {first.get('evaluation_id')} at {first.get('evaluated_at')}, the run's latest"
    )
    plotted = "".join(plots.variant_performance(data))
    return _none(note) + plotted + table(rows, PERFORMANCE_COLUMNS)


def _none(text: str) -> str:
    return f"<p class='muted'>{escape(text)}.</p>"


SECTIONS = (
    ("summary", "Run summary", summary),
    ("scores", "Score distribution", scores),
    ("drift", "Drift per feature", drift),
    ("nulls", "Null rates", nulls),
    ("history", "Run history", history),
    ("variants", "Variants", variants),
    ("performance", "Variant performance", performance),
)


def render(data: ReportData) -> str:
    """The whole page of ``data``'s run."""
    parts = [(key, name, build(data)) for key, name, build in SECTIONS]
    parts = [p for p in parts if p[2]]  # variants and performance only when there are some
    nav = "".join(f'<a href="#{key}">{escape(name)}</a>' for key, name, _ in parts)
    body = "".join(
        f'<section id="{key}"><h2>{escape(name)}</h2>{html}</section>' for key, name, html in parts
    )
    title = f"lakescore report: run {data.run_id}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{escape(title)}</h1><p class='muted'>sink {escape(data.sink)} · "
        f"status {badge(data.record.get('status'))}</p><nav>{nav}</nav></header>"
        f"{body}<footer><p class='muted'>Written by lakescore from the run record and the "
        f"tables under {escape(data.sink)}/_lakescore/.</p></footer></body></html>\n"
    )
