"""The report's SVG plots: well-formed, one mark per value, escaped text, right colours."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
from datasketches import kll_floats_sketch

from engine.report.html import render
from engine.report.load import ReportData
from engine.report.plots import bin_labels, column_bins, distribution, history, null_rates
from engine.report.svg import (
    Series,
    fmt,
    grouped_bars,
    intervals,
    nice_ticks,
    quantile_boxes,
    ranked_bars,
)

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # well-formed XML, or this raises
    assert root.tag == f"{SVG}svg" and root.get("class") == "plot"
    return root


def title_of(root: ET.Element) -> str:
    first = root[0]
    assert first.tag == f"{SVG}title", "the plot's title is its first child"
    return first.text or ""


def bars(root: ET.Element) -> list[ET.Element]:
    return [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]


def test_fmt_and_ticks() -> None:
    assert fmt(None) == "-" and fmt(float("nan")) == "-"
    assert fmt(3000) == "3,000" and fmt(22086.4) == "22,086"
    assert fmt(0.24837) == "0.2484" and fmt(0.000123) == "1.230e-04" and fmt(0.0) == "0"
    assert nice_ticks(0, 3.52) == [0, 1, 2, 3, 4]
    assert nice_ticks(0, 0.089) == pytest.approx([0, 0.02, 0.04, 0.06, 0.08, 0.1])
    assert nice_ticks(5, 5)[0] <= 5 <= nice_ticks(5, 5)[-1]


def test_grouped_bars_draw_one_bar_per_value_with_escaped_text() -> None:
    labels = ["a", "<b>", "c"]
    series = [
        Series("reference", [0.2, 0.5, 0.3], css="ref"),
        Series("this run", [0.1, None, 0.9], css="run"),
    ]
    root = parse(grouped_bars("dist", "x < y & z", labels, series, boundaries=["1", "2"]))
    assert title_of(root) == "x < y & z"
    drawn = bars(root)
    assert [b.get("class") for b in drawn] == ["ref", "run", "ref", "ref", "run"]
    tips = [b.find(f"{SVG}title").text for b in drawn]
    assert "reference, <b>: 50%" in tips and "this run, c: 90%" in tips
    heights = [float(b.get("height")) for b in drawn]
    assert heights[4] == pytest.approx(heights[1] * 9)  # bar heights are proportional
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "1" in texts and "2" in texts  # the bin boundaries label the axis


def test_status_colours_and_highlight() -> None:
    series = [Series("rows", [10, 20, 30], classes=["ok", "failed", "fail"])]
    root = parse(
        grouped_bars("h", "runs", ["r1", "r2", "r3"], series, highlight=2, y_format="number")
    )
    assert [b.get("class") for b in bars(root)] == ["ok", "failed", "fail current"]
    legend = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "legend"]
    assert legend == ["ok", "fail", "failed"]


def test_ranked_bars_marks_and_empty_values() -> None:
    items = [("age", 3.5, "fail"), ("spend", 0.02, "ok"), ("gone", None, "s0")]
    root = parse(ranked_bars("psi", "PSI", items, marks=[1.0, None, 0.5], mark_name="ref"))
    drawn = bars(root)
    assert [b.get("class") for b in drawn] == ["fail", "ok"]  # no bar for a missing value
    assert float(drawn[0].get("width")) > 100 * float(drawn[1].get("width"))
    marks = [line for line in root.iter(f"{SVG}line") if line.get("class") == "mark"]
    assert len(marks) == 2


def test_intervals_and_boxes() -> None:
    root = parse(intervals("ci", "rate", [("champion", 0.1, 0.12, 0.14), ("x", None, None, None)]))
    (dot,) = root.iter(f"{SVG}circle")
    assert "12% [10%, 14%]" in dot.find(f"{SVG}title").text
    boxes = parse(
        quantile_boxes(
            "q", "q", [("a", {0.01: 0.0, 0.25: 0.2, 0.5: 0.5, 0.75: 0.7, 0.99: 1.0}), ("b", {})]
        )
    )
    (box,) = bars(boxes)
    assert float(box.get("width")) > 0


def test_column_bins_from_counts_sketch_and_categories() -> None:
    # counts on edges (min, inner..., max) with one value below and two above
    row = {"hist_edges": [0.0, 1.0, 2.0, 3.0], "hist_counts": [1, 2, 3, 2, 2]}
    bins = column_bins(row)
    assert bins.edges == [1.0, 2.0]
    assert bins.shares == pytest.approx([0.3, 0.3, 0.4])
    assert bin_labels(bins.edges) == ["< 1", "1 – 2", "≥ 2"]

    sketch = kll_floats_sketch(200)
    sketch.update(np.linspace(0, 1, 1001, dtype=np.float32))
    bins = column_bins({"kll": sketch.serialize(), "min": 0.0, "max": 1.0})
    assert len(bins.shares) == 20 and sum(bins.shares) == pytest.approx(1)
    assert max(bins.shares) < 0.07  # a uniform column stays flat

    bins = column_bins({"categories": '[["no", 3], ["yes", 1]]'})
    assert bins.labels == ["no", "yes"] and bins.shares == [0.75, 0.25]
    assert column_bins({"min": None}) is None


def report_data(**kw: object) -> ReportData:
    base = {
        "sink": "lake/<scores>",
        "run_id": "r2",
        "record": {"status": "warn", "reference": "run:r1", "rows": 10, "model": "m<1>.json"},
        "history": [
            {"run_id": "r1", "status": "ok", "rows": 10, "rows_per_second": 5.0},
            {"run_id": "r2", "status": "warn", "rows": 10, "rows_per_second": None},
        ],
    }
    return ReportData(**{**base, **kw})  # type: ignore[arg-type]


def test_distribution_against_the_reference_and_alone() -> None:
    drift = {
        "column": "score",
        "bin_edges": [0.5],
        "reference_shares": [0.5, 0.5],
        "shares": [0.2, 0.8],
        "psi": 0.42,
        "status": "fail",
    }
    root = parse(distribution("score-distribution", "score", drift, None))
    assert "PSI 0.42, fail" in title_of(root)
    assert [b.get("class") for b in bars(root)] == ["ref", "run", "ref", "run"]
    alone = parse(distribution("d", "score", None, {"categories": '[["a", 1]]'}))
    assert "no reference" in title_of(alone)
    assert distribution("d", "score", None, {}) is None


def test_history_and_null_rates_plots() -> None:
    data = report_data(
        feature_stats=[{"column": "age", "null_rate": 0.1}, {"column": "has_app", "null_rate": 0}],
        drift=[
            {
                "column": "age",
                "null_rate_reference": 0.02,
                "status": "warn",
                "reasons": ["null-rate change (points) 8 > 5 (warn)"],
            }
        ],
    )
    rows, speed = (parse(p) for p in history(data))
    assert [b.get("class") for b in bars(rows)] == ["ok", "warn current"]
    assert len(bars(speed)) == 1  # a run without rows/s draws no bar
    nulls = parse(null_rates(data))
    assert [b.get("class") for b in bars(nulls)] == ["warn", "s0"]  # only age's rate warned


def test_page_escapes_everything_and_loads_nothing() -> None:
    page = render(
        report_data(feature_stats=[{"column": "<script>alert(1)</script>", "null_rate": 0.5}])
    )
    assert "<script" not in page.lower()
    assert "&lt;script&gt;" in page and "m&lt;1&gt;.json" in page and "lake/&lt;scores&gt;" in page
    assert "default-src 'none'" in page
    assert not any(f'{attr}="http' in page for attr in ("src", "href"))
    assert page == render(
        report_data(feature_stats=[{"column": "<script>alert(1)</script>", "null_rate": 0.5}])
    )
