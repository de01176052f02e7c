"""Inline SVG plots drawn by hand: grouped bars, ranked horizontal bars, intervals, boxes.

Every plot is one ``<svg class="plot" data-plot=KIND>`` element whose first child is a
``<title>`` (its accessible name, and what a test finds in the DOM). Marks carry their
own ``<title>`` (a hover tooltip, no script) and a CSS class (``ok``/``warn``/``fail``/
``failed`` for statuses, ``s0``, ``s1``... for series) that the page's stylesheet
colours, so the SVG holds geometry and text only. All text is escaped here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH = 720
FONT = 11  # px; labels are measured as FONT * 0.6 per character
STATUSES = ("ok", "warn", "fail", "failed")


def fmt(x: float | None, digits: int = 4) -> str:
    """A short number: at most ``digits`` significant digits (whole numbers in full,
    thousands separated), '-' for none."""
    if x is None or not math.isfinite(x):
        return "-" if x is None or math.isnan(x) else str(x)
    if isinstance(x, int):
        return f"{x:,}"
    if x == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(x)))
    if magnitude >= digits - 1:
        return f"{x:,.0f}"
    if magnitude < -3:
        return f"{x:.{digits - 1}e}"
    return f"{x:,.{digits - 1 - magnitude}f}".rstrip("0").rstrip(".")


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering [lo, hi] (steps of 1, 2 or 5 x 10^k)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(1, count)
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if m * step >= raw)
    first = math.floor(lo / step) * step
    ticks = []
    k = 0
    while first + k * step <= hi + step * 1e-9:
        ticks.append(round(first + k * step, 12))
        k += 1
    if ticks[-1] < hi:
        ticks.append(round(first + k * step, 12))
    return ticks


@dataclass(frozen=True)
class Series:
    """One set of values drawn in one colour: ``css`` (default: ``s<index>``), or one
    class per value in ``classes`` (a run's status)."""

    name: str
    values: Sequence[float | None]
    css: str = ""
    classes: Sequence[str] = ()

    def css_of(self, k: int, i: int) -> str:
        return self.classes[i] if i < len(self.classes) else self.css or f"s{k}"


def _text(x: float, y: float, s: str, cls: str = "", anchor: str = "start") -> str:
    c = f' class="{cls}"' if cls else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{c}>{escape(s)}</text>'


def _hline(x1: float, x2: float, y: float, cls: str) -> str:
    return f'<line x1="{x1:.1f}" x2="{x2:.1f}" y1="{y:.1f}" y2="{y:.1f}" class="{cls}"/>'


def _vline(x: float, y1: float, y2: float, cls: str, tip: str = "") -> str:
    head = f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y1:.1f}" y2="{y2:.1f}" class="{cls}"'
    return f"{head}><title>{escape(tip)}</title></line>" if tip else f"{head}/>"


def _rect(x: float, y: float, w: float, h: float, cls: str, tip: str) -> str:
    return (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0.0):.1f}" height="{max(h, 0.0):.1f}" '
        f'class="{cls}"><title>{escape(tip)}</title></rect>'
    )


def _svg(kind: str, title: str, height: float, body: list[str]) -> str:
    return (
        f'<svg class="plot" data-plot="{escape(kind)}" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {WIDTH} {height:.0f}" width="{WIDTH}" height="{height:.0f}" role="img">'
        f"<title>{escape(title)}</title>"
        + _text(8, 16, title, "plot-title")
        + "".join(body)
        + "</svg>"
    )


def _legend(series: Sequence[Series], x: float, y: float) -> list[str]:
    """A swatch per series, or per status for a series coloured by status."""
    keys: list[tuple[str, str]] = []
    for k, s in enumerate(series):
        if s.classes:
            keys += [(c, c) for c in STATUSES if c in s.classes]
        elif s.name:
            keys.append((s.css or f"s{k}", s.name))
    out = []
    for css, name in keys:
        out.append(f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="10" height="10" class="{css}"/>')
        out.append(_text(x + 14, y, name, "legend"))
        x += 24 + FONT * 0.6 * len(name)
    return out


def _y_axis(
    lo: float, hi: float, top: float, bottom: float, left: float, right: float, label_fmt: str
) -> tuple[list[str], float, float]:
    """Horizontal grid lines with labels; returns the marks and the (lo, hi) of the axis."""
    ticks = nice_ticks(lo, hi)
    lo, hi = ticks[0], ticks[-1]
    out = []
    for t in ticks:
        y = bottom - (t - lo) / (hi - lo) * (bottom - top)
        out.append(_hline(left, right, y, "grid"))
        out.append(_text(left - 4, y + 4, _tick(t, label_fmt), "tick", "end"))
    return out, lo, hi


@dataclass(frozen=True)
class _Rows:
    """The frame of a plot with one row per item, a label column and a value axis."""

    left: float
    right: float
    lo: float
    hi: float
    height: float
    top: float = 30
    row: float = 18

    @classmethod
    def of(
        cls,
        labels: Sequence[str],
        values: Sequence[float],
        *,
        row: float,
        margin: float,
        from_zero: bool = False,
        fallback: float = 1.0,
    ) -> _Rows:
        left = min(200, 16 + FONT * 0.6 * max((len(s) for s in labels), default=4))
        finite = [v for v in values if math.isfinite(v)]
        lo = 0.0 if from_zero else min(finite, default=0.0)
        hi = max(finite, default=lo) if finite else lo + fallback
        if hi <= lo:
            hi = lo + fallback
        ticks = nice_ticks(lo, hi)
        height = cls.top + row * max(1, len(labels)) + 28
        return cls(left, WIDTH - margin, ticks[0], ticks[-1], height, row=row)

    def x(self, v: float) -> float:
        return self.left + (v - self.lo) / (self.hi - self.lo) * (self.right - self.left)

    def y(self, i: int) -> float:
        """The middle of row ``i``."""
        return self.top + i * self.row + self.row / 2

    def axis(self, x_format: str) -> list[str]:
        out = []
        for t in nice_ticks(self.lo, self.hi):
            out.append(_vline(self.x(t), self.top - 4, self.height - 24, "grid"))
            out.append(_text(self.x(t), self.height - 10, _tick(t, x_format), "tick", "middle"))
        return out

    def label(self, i: int, text: str) -> str:
        return _text(self.left - 6, self.y(i) + 4, _clip(text, 30), "tick", "end")


def _tick(t: float | None, label_fmt: str) -> str:
    """A value as a percentage (``percent``: shares) or a short number."""
    if t is None or label_fmt != "percent":
        return fmt(t, 3)
    return f"{t:.0%}" if abs(t * 100 - round(t * 100)) < 1e-9 else f"{t:.1%}"


def grouped_bars(
    kind: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    y_format: str = "percent",
    height: int = 240,
    highlight: int | None = None,
    boundaries: Sequence[str] | None = None,
) -> str:
    """Vertical bars, one group per label and one bar per series (e.g. reference vs run);
    the bars of group number ``highlight`` are outlined. ``boundaries`` (one fewer than
    the labels) are written between the groups instead of the labels under them: a
    histogram's bin edges."""
    left, right, top, bottom = 56, WIDTH - 12, 40, height - 48
    values = [v for s in series for v in s.values if v is not None and math.isfinite(v)]
    lo, hi = min([0.0, *values]), max([*values, 0.0]) or 1.0
    axis, lo, hi = _y_axis(lo, hi, top, bottom, left, right, y_format)
    body = [*axis, *_legend(series, left, 30)]
    n = max(1, len(labels))
    group = (right - left) / n
    bar = group * 0.8 / max(1, len(series))
    zero = bottom - (0 - lo) / (hi - lo) * (bottom - top)
    for i, label in enumerate(labels):
        x0 = left + i * group + group * 0.1
        for k, s in enumerate(series):
            v = s.values[i] if i < len(s.values) else None
            if v is None or not math.isfinite(v):
                continue
            y = bottom - (v - lo) / (hi - lo) * (bottom - top)
            css = s.css_of(k, i) + (" current" if i == highlight else "")
            tip = f"{s.name + ', ' if s.name else ''}{label}: {_tick(v, y_format)}"
            body.append(_rect(x0 + k * bar, min(y, zero), bar, abs(zero - y), css, tip))
    # Axis labels: the bins' boundaries when given (a histogram), else each group's label;
    # every k-th only when they would overlap.
    ticks = [(left + i * group, b) for i, b in enumerate(boundaries or (), start=1)]
    if boundaries is None:
        ticks = [(left + (i + 0.5) * group, _clip(b, 24)) for i, b in enumerate(labels)]
    widest = max((len(t) for _, t in ticks), default=1) + 2
    every = max(1, math.ceil(len(ticks) * widest * FONT * 0.6 / (right - left)))
    for j, (x, text) in enumerate(ticks):
        if j % every == 0:
            body.append(_text(x, bottom + 14, text, "tick", "middle"))
    body.append(_hline(left, right, zero, "axis"))
    return _svg(kind, title, height, body)


def ranked_bars(
    kind: str,
    title: str,
    items: Sequence[tuple[str, float | None, str]],
    *,
    x_format: str = "number",
    marks: Sequence[float | None] | None = None,
    mark_name: str = "",
) -> str:
    """Horizontal bars in the given order, ``(label, value, css class)`` each; ``marks``
    (e.g. the reference's value) draw a tick on each row."""
    values = [v for _, v, _ in items if v is not None] + [m for m in marks or () if m is not None]
    fallback = 0.1 if x_format == "percent" else 1.0
    f = _Rows.of(
        [i[0] for i in items], values, row=18, margin=70, from_zero=True, fallback=fallback
    )
    body = f.axis(x_format)
    for i, (label, value, css) in enumerate(items):
        y = f.y(i)
        shown = _tick(value, x_format)
        tip = f"{label}: {shown}" + (f" ({css})" if css in STATUSES else "")
        body.append(f.label(i, label))
        if value is not None and math.isfinite(value):
            body.append(_rect(f.left, y - 7, f.x(max(value, 0.0)) - f.left, 14, css, tip))
        body.append(_text(f.right + 6, y + 4, shown, "tick"))
        mark = marks[i] if marks is not None and i < len(marks) else None
        if mark is not None and math.isfinite(mark):
            where = f"{label}, {mark_name}: {_tick(mark, x_format)}"
            body.append(_vline(f.x(mark), y - 9, y + 9, "mark", where))
    return _svg(kind, title, f.height, body)


def intervals(
    kind: str,
    title: str,
    items: Sequence[tuple[str, float | None, float | None, float | None]],
    *,
    x_format: str = "percent",
) -> str:
    """A point with whiskers per row: ``(label, low, value, high)`` (e.g. a rate and its CI)."""
    values = [v for it in items for v in it[1:] if v is not None]
    f = _Rows.of([i[0] for i in items], values, row=24, margin=150)
    body = f.axis(x_format)
    for i, (label, low, value, high) in enumerate(items):
        y = f.y(i)
        shown = "-"
        if value is not None:
            shown = _tick(value, x_format)
            if low is not None and high is not None:
                shown += f" [{_tick(low, x_format)}, {_tick(high, x_format)}]"
        body += [f.label(i, label), _text(f.right + 8, y + 4, shown, "tick")]
        if low is not None and high is not None:
            body.append(_hline(f.x(low), f.x(high), y, "whisker"))
        if value is not None:
            body.append(
                f'<circle cx="{f.x(value):.1f}" cy="{y:.1f}" r="4" class="s{i % 6}">'
                f"<title>{escape(f'{label}: {shown}')}</title></circle>"
            )
    return _svg(kind, title, f.height, body)


def quantile_boxes(kind: str, title: str, items: Sequence[tuple[str, dict[float, float]]]) -> str:
    """A box per row from quantiles (rank -> value): whiskers over the outermost ranks
    given (p01-p99), the box p25-p75, a tick at the median."""
    values = [v for _, q in items for v in q.values()]
    f = _Rows.of([i[0] for i in items], values, row=26, margin=20)
    body = f.axis("number")
    for i, (label, q) in enumerate(items):
        y = f.y(i)
        body.append(f.label(i, label))
        q = {r: v for r, v in q.items() if math.isfinite(v)}
        if not q:
            continue
        ranks = sorted(q)
        tip = f"{label}: " + ", ".join(f"p{r * 100:g} {fmt(q[r])}" for r in ranks)
        body.append(_hline(f.x(q[ranks[0]]), f.x(q[ranks[-1]]), y, "whisker"))
        low, high = f.x(q.get(0.25, q[ranks[0]])), f.x(q.get(0.75, q[ranks[-1]]))
        body.append(_rect(low, y - 7, high - low, 14, f"s{i % 6}", tip))
        if 0.5 in q:
            body.append(_vline(f.x(q[0.5]), y - 7, y + 7, "median"))
    return _svg(kind, title, f.height, body)


def _clip(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"
