"""Drift of one column against its reference, from the two profiles alone (no data).

* **PSI** on the reference's decile bins (edges: the reference's min, deciles, max). The
  run's shares are exact (its histogram was counted on those edges, values below the
  reference min join the first bin, above the max the last); the reference's shares come
  from its KLL sketch's CDF. Empty bins are smoothed with :data:`EPSILON`.
* **Jensen-Shannon distance** (base 2, between 0 and 1) on the same bins.
* **KS statistic**: the largest gap between the two sketches' CDFs, evaluated at both
  sketches' percentiles; its error is at most the two sketches' rank errors added.
* **Out-of-range share**: rows with a finite value outside the reference's [min, max]
  (exact), over all rows.
* **Null-rate change**: the change of the null+NaN share, in percentage points.
* **Unseen categories** (discrete and string columns whose reference had at most 64
  values): values the reference never had, and the share of rows holding them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from engine.quality.config import DriftLimits
from engine.quality.reference import bin_edges
from engine.stats import ColumnProfile

EPSILON = 1e-4
STATUS_ORDER = {"ok": 0, "warn": 1, "fail": 2}


def worst(statuses: list[str]) -> str:
    return max(statuses, key=STATUS_ORDER.__getitem__, default="ok")


@dataclass
class ColumnDrift:
    column: str
    role: str  # "feature" or "score"
    psi: float | None = None
    js: float | None = None
    ks: float | None = None
    out_of_range_share: float | None = None
    null_rate_reference: float | None = None
    null_rate: float | None = None
    null_rate_change: float | None = None  # percentage points
    unseen_categories: list[str] = field(default_factory=list)
    unseen_share: float | None = None
    #: the PSI bins, for plotting run against reference: inner edges (reference deciles;
    #: the outer bins are open), and each side's share per bin
    bin_edges: list[float] = field(default_factory=list)
    reference_shares: list[float] = field(default_factory=list)
    shares: list[float] = field(default_factory=list)
    status: str = "ok"
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def column_drift(
    column: str, role: str, ref: ColumnProfile, cur: ColumnProfile, limits: DriftLimits
) -> ColumnDrift:
    d = ColumnDrift(column=column, role=role)
    d.null_rate_reference = ref.null_rate
    d.null_rate = cur.null_rate
    d.null_rate_change = 100.0 * (cur.null_rate - ref.null_rate)
    edges = bin_edges(ref)
    if edges and ref.kll is not None:
        p = _kll_shares(ref, edges)
        if cur.hist is not None and cur.edges == edges:
            q = _run_shares(cur.hist)
            if cur.rows:
                d.out_of_range_share = (cur.hist[0] + cur.hist[-1]) / cur.rows
        else:  # counted on other edges (a resumed run whose reference changed): the sketch
            q = _kll_shares(cur, edges) if cur.kll is not None and not cur.kll.is_empty() else None
        if q is not None:
            d.psi = psi(p, q)
            d.js = js_distance(p, q)
            d.bin_edges = list(edges[1:-1])
            d.reference_shares = [float(x) for x in p]
            d.shares = [float(x) for x in q]
    if _has_sketch(ref) and _has_sketch(cur):
        d.ks = ks_statistic(ref, cur)
    if ref.categories is not None and cur.categories is not None:
        unseen = {k: v for k, v in cur.categories.items() if k not in ref.categories}
        d.unseen_categories = sorted(_label(k) for k in unseen)
        d.unseen_share = sum(unseen.values()) / cur.rows if cur.rows else 0.0
    _judge(d, limits)
    return d


def psi(p: np.ndarray, q: np.ndarray) -> float:
    p = np.maximum(p, EPSILON)
    q = np.maximum(q, EPSILON)
    return float(np.sum((q - p) * np.log(q / p)))


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    m = (p + q) / 2

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / b[nz])))

    return math.sqrt(max(0.0, (kl(p, m) + kl(q, m)) / 2))


def ks_statistic(ref: ColumnProfile, cur: ColumnProfile) -> float:
    assert ref.kll is not None and cur.kll is not None  # _has_sketch, checked by the caller
    ranks = [k / 100 for k in range(101)]
    points = sorted({float(x) for s in (ref.kll, cur.kll) for x in s.get_quantiles(ranks)})
    gaps = [
        max(abs(a - b) for a, b in zip(ref.kll.get_cdf(points, inclusive=inc)[:-1],
                                       cur.kll.get_cdf(points, inclusive=inc)[:-1], strict=True))
        for inc in (True, False)
    ]  # fmt: skip
    return float(max(gaps))


def _has_sketch(p: ColumnProfile) -> bool:
    return p.kll is not None and not p.kll.is_empty()


def _kll_shares(p: ColumnProfile, edges: tuple[float, ...]) -> np.ndarray:
    """A sketch's share per bin: (-inf, e1), [e1, e2), ..., [e_last-1, +inf)."""
    assert p.kll is not None
    inner = list(edges[1:-1])
    below = p.kll.get_cdf(inner, inclusive=False)[:-1] if inner else []
    return np.diff(np.concatenate([[0.0], below, [1.0]]))


def _run_shares(hist: list[int]) -> np.ndarray | None:
    """The run's share per bin, out-of-range values joining the outer bins."""
    counts = np.array(hist[1:-1], dtype=np.float64)
    counts[0] += hist[0]
    counts[-1] += hist[-1]
    total = counts.sum()
    return counts / total if total else None


def _label(value: float | str) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


_METRICS = (
    ("psi", "psi", "PSI"),
    ("js", "js", "JS distance"),
    ("ks", "ks", "KS"),
    ("null_rate", "null_rate_change", "null-rate change (points)"),
    ("out_of_range", "out_of_range_share", "out-of-range share"),
    ("unseen", "unseen_share", "unseen-category share"),
)


def _judge(d: ColumnDrift, limits: DriftLimits) -> None:
    statuses = ["ok"]
    for prefix, attr, label in _METRICS:
        value = getattr(d, attr)
        if value is None:
            continue
        value = abs(value)
        for level in ("fail", "warn"):
            limit = getattr(limits, f"{prefix}_{level}")
            if limit is not None and value > limit:
                statuses.append(level)
                d.reasons.append(f"{label} {value:.4g} > {limit:g} ({level})")
                break
    d.status = worst(statuses)
