"""``bench.html``: the summary as one self-contained page, with its plots drawn as inline
SVG here (no script, no stylesheet or font fetched from anywhere)."""

from __future__ import annotations

import html
import math
from typing import Any

from engine.bench.plan import summary_lines
from engine.bench.report import (
    KERNEL_HEADER,
    backend_lines,
    compile_lines,
    e2e_lines,
    headline,
    kernel_rows,
)

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
WIDTH, HEIGHT = 560, 320
LEFT, RIGHT, TOP, BOTTOM = 78, 16, 34, 46

Series = dict[str, list[tuple[float, float]]]


def nice_ceiling(x: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k at or above ``x`` (an axis' top)."""
    if x <= 0:
        return 1.0
    base = 10 ** math.floor(math.log10(x))
    for step in (1, 2, 2.5, 5, 10):
        if step * base >= x * (1 - 1e-12):
            return step * base
    return 10 * base


def _short(v: float) -> str:
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:g}{suffix}"
    return f"{v:g}"


def line_chart(title: str, series: Series, x_label: str, *, log_x: bool = False) -> str:
    """An SVG line chart of rows/s (y, from 0) against ``x``; one line per series."""
    points = [p for s in series.values() for p in s]
    if not points:
        return ""
    xs = sorted({x for x, _ in points})
    fx = (lambda v: math.log2(v)) if log_x else (lambda v: v)
    lo, hi = fx(xs[0]), fx(xs[-1])
    span = hi - lo or 1.0
    top = nice_ceiling(max(y for _, y in points))
    w, h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (fx(x) - lo) / span * w if len(xs) > 1 else LEFT + w / 2

    def py(y: float) -> float:
        return TOP + h - y / top * h

    e = html.escape
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{e(title)}" '
        'font-family="sans-serif" font-size="11">',
        f'<text x="{WIDTH / 2}" y="16" text-anchor="middle" font-size="13">{e(title)}</text>',
    ]
    for i in range(6):
        v = top * i / 5
        y = py(v)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + w}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_short(v)}</text>')
    for x in xs:
        out.append(
            f'<text x="{px(x):.1f}" y="{TOP + h + 16}" text-anchor="middle">{_short(x)}</text>'
        )
    out.append(f'<line x1="{LEFT}" y1="{TOP + h}" x2="{LEFT + w}" y2="{TOP + h}" stroke="#333"/>')
    out.append(f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + h}" stroke="#333"/>')
    out.append(
        f'<text x="{LEFT + w / 2}" y="{HEIGHT - 8}" text-anchor="middle">{e(x_label)}</text>'
    )
    out.append(
        f'<text transform="translate(14 {TOP + h / 2}) rotate(-90)" '
        'text-anchor="middle">rows/s</text>'
    )
    for k, (name, pts) in enumerate(series.items()):
        colour = COLOURS[k % len(COLOURS)]
        pts = sorted(pts)
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y in pts:
            out.append(
                f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.5" fill="{colour}">'
                f"<title>{e(name)}: {_short(x)} -> {y:,.0f} rows/s</title></circle>"
            )
        ly = TOP + 8 + 15 * k
        out.append(f'<rect x="{LEFT + 10}" y="{ly - 8}" width="12" height="3" fill="{colour}"/>')
        out.append(f'<text x="{LEFT + 28}" y="{ly - 3}">{e(name)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def chart_series(doc: dict[str, Any]) -> tuple[Series, Series]:
    """(rows/s by threads at the default batch, rows/s by batch size at the most threads)."""
    default = doc["settings"]["default_batch_rows"]
    top = max(doc["settings"]["threads"])
    lib = doc["native"]["library"] or "native"
    by_threads: Series = {}
    by_batch: Series = {}
    for m in doc["kernel"]:
        name = f"{lib} (native)" if m["contender"] == "native" else f"lakescore {m['contender']}"
        if m["threads"] is not None and m["batch_rows"] == default:
            by_threads.setdefault(name, []).append((m["threads"], m["rows_per_s"]))
        if m["threads"] is None or m["threads"] == top:
            label = name if m["threads"] is not None else f"{name} (GPU)"
            by_batch.setdefault(label, []).append((m["batch_rows"], m["rows_per_s"]))
    return by_threads, by_batch


def _list(items: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in items) + "</ul>"


def render_html(doc: dict[str, Any]) -> str:
    e = html.escape
    lib = doc["native"]["library"] or "native"
    by_threads, by_batch = chart_series(doc)
    default = doc["settings"]["default_batch_rows"]
    top = max(doc["settings"]["threads"])
    table = ["<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in KERNEL_HEADER) + "</tr>"]
    table += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in kernel_rows(doc)]
    table.append("</table>")
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>lakescore bench: {e(doc['model']['name'])}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;"
        "text-align:right}td:first-child,th:first-child{text-align:left}"
        "pre{background:#f6f6f6;padding:8px}</style></head><body>",
        "<h1>lakescore bench</h1>",
        "<dl>" + "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in headline(doc)) + "</dl>",
        "<h2>Backends</h2>",
        _list(backend_lines(doc)),
        "<h2>Compile</h2><p>Fresh process: load + compile + first row.</p>",
        _list(compile_lines(doc)),
        f"<h2>Kernel</h2><p>Every contender scores the same rows; ratio = lakescore / "
        f"{e(lib)}.</p>",
        "\n".join(table),
        line_chart(f"rows/s against threads (batch {default:,})", by_threads, "threads"),
        line_chart(
            f"rows/s against batch size ({top} thread(s))", by_batch, "batch rows", log_x=True
        ),
        "<h2>End to end</h2>",
        _list(e2e_lines(doc["end_to_end"])),
    ]
    if doc["end_to_end_cluster"]:
        parts += ["<h2>End to end on the cluster</h2>", _list(e2e_lines(doc["end_to_end_cluster"]))]
    if doc["plan"]:
        parts += [
            "<h2>Plan</h2>",
            _list(summary_lines(doc["plan"])),
            "<pre>" + e("\n".join(doc["plan"]["arithmetic"])) + "</pre>",
        ]
    parts += [
        f"<p>Measured {e(doc['created_at'])}; every figure is in bench.json.</p>",
        "</body></html>",
        "",
    ]
    return "\n".join(parts)
