"""Column statistics: the one place that defines what lakescore measures about a column.

:class:`ColumnSummary` holds the exact moments (count, min, max, mean, M2); means and
variances merge exactly with Chan et al.'s pairwise formula, so the result does not
depend on how rows were split into tasks (up to floating-point rounding).

:class:`ColumnProfile` is the full, mergeable profile of one feature or score column:
Arrow nulls, NaN, +-inf, the moments, a KLL quantile sketch (Apache DataSketches), a
HyperLogLog distinct count and an exact category table for discrete columns, and a
histogram on the reference's bin edges. Profiles serialise to JSON (sketches as base64)
so tasks can return them in their task records. They are filled per batch by
:mod:`engine.quality.profiler`.

Error bounds (documented in README "Data quality"):

* counts, nulls, NaN, inf, min, max, mean, variance, histogram counts and out-of-range
  counts are exact (float64 sums);
* the KLL sketch (k=200) is fed a deterministic sample (every ``stride``-th row of each
  batch, about 1,024 values per batch of 65,536 rows); its rank error is the sketch's
  (1.65% at 99% confidence) plus the sample's (DKW: ``sqrt(ln(2/0.01) / (2 m))`` for
  ``m`` sampled values, 1.3% at m = 16,000); batches of up to 2,047 rows are fed whole;
* the HyperLogLog distinct count has a relative standard error of 1.6% (4,096 registers);
  while a discrete column has at most 64 distinct values the exact category table is used.
"""

from __future__ import annotations

import base64
import math
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from datasketches import kll_floats_sketch

#: KLL accuracy parameter: 1.65% normalised rank error (PMF/CDF, 99% confidence).
KLL_K = 200
#: Quantiles every profile reports (and the report plots).
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
#: Kinds of columns: continuous numbers, discrete numbers (integers, booleans), strings.
KINDS = ("continuous", "discrete", "string")
MAX_CATEGORIES = 64


@dataclass
class ColumnSummary:
    count: int = 0  # finite values
    nan: int = 0
    inf: int = 0
    min: float = math.inf
    max: float = -math.inf
    mean: float = 0.0
    m2: float = 0.0  # sum of squared deviations from the mean

    @classmethod
    def of(cls, values: np.ndarray) -> ColumnSummary:
        values = np.asarray(values, dtype=np.float64)
        finite = values[np.isfinite(values)]
        s = cls(
            nan=int(np.isnan(values).sum()),
            inf=int(np.isinf(values).sum()),
            count=int(finite.size),
        )
        if finite.size:
            s.min = float(finite.min())
            s.max = float(finite.max())
            s.mean = float(finite.mean())
            s.m2 = float(((finite - s.mean) ** 2).sum())
        return s

    @classmethod
    def from_shifted_sums(
        cls, count: int, nan: int, inf: int, lo: float, hi: float, shift: float, *sums: float
    ) -> ColumnSummary:
        """From ``sum(v - shift)`` and ``sum((v - shift)**2)`` over ``count`` finite values."""
        s1, s2 = sums
        s = cls(count=count, nan=nan, inf=inf)
        if count:
            s.min, s.max = lo, hi
            s.mean = shift + s1 / count
            s.m2 = max(s2 - s1 * s1 / count, 0.0)
        return s

    def merge(self, other: ColumnSummary) -> ColumnSummary:
        n = self.count + other.count
        merged = ColumnSummary(
            count=n,
            nan=self.nan + other.nan,
            inf=self.inf + other.inf,
            min=min(self.min, other.min),
            max=max(self.max, other.max),
        )
        if n:
            delta = other.mean - self.mean
            merged.mean = self.mean + delta * other.count / n
            merged.m2 = self.m2 + other.m2 + delta * delta * self.count * other.count / n
        return merged

    @property
    def variance(self) -> float:
        return self.m2 / self.count if self.count else math.nan

    def to_dict(self) -> dict[str, float | int | None]:
        doc: dict[str, float | int | None] = {
            k: (v if not (isinstance(v, float) and not math.isfinite(v)) else None)
            for k, v in asdict(self).items()
        }
        doc["variance"] = None if not self.count else self.variance
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> ColumnSummary:
        def num(key: str, default: float) -> float:
            value = doc.get(key)
            return default if value is None else float(value)

        return cls(
            count=int(doc.get("count") or 0),
            nan=int(doc.get("nan") or 0),
            inf=int(doc.get("inf") or 0),
            min=num("min", math.inf),
            max=num("max", -math.inf),
            mean=num("mean", 0.0),
            m2=num("m2", 0.0),
        )


@dataclass
class ColumnProfile:
    """Everything measured about one column of a run (or a reference); mergeable.

    ``categories`` maps each value to its row count while a discrete or string column has
    at most :data:`MAX_CATEGORIES` distinct values, else it is None. ``hist`` counts finite
    values on ``edges`` (ascending): ``hist[0]`` below ``edges[0]``, ``hist[k]`` in
    ``[edges[k-1], edges[k])`` (the last bin closed), ``hist[-1]`` above ``edges[-1]``.
    """

    kind: str
    rows: int = 0  # every row, nulls included
    nulls: int = 0  # Arrow nulls
    pos_inf: int = 0
    neg_inf: int = 0
    moments: ColumnSummary = field(default_factory=ColumnSummary)  # its nan excludes nulls
    kll: kll_floats_sketch | None = None
    hll: np.ndarray | None = None  # uint8 HyperLogLog registers
    categories: dict[float | str, int] | None = None
    edges: tuple[float, ...] = ()
    hist: list[int] | None = None

    @property
    def count(self) -> int:
        """Finite values."""
        return self.moments.count

    @property
    def nan(self) -> int:
        return self.moments.nan

    @property
    def missing(self) -> int:
        """Nulls and NaN: what a model sees as a missing value."""
        return self.nulls + self.moments.nan

    @property
    def null_rate(self) -> float:
        """Share of rows that are null or NaN (0 for an empty column)."""
        return self.missing / self.rows if self.rows else 0.0

    @property
    def distinct(self) -> float | None:
        """Exact while the category table holds; else the HyperLogLog estimate."""
        if self.categories is not None:
            return float(len(self.categories))
        if self.hll is not None:
            from engine.quality.pass_constants import hll_estimate

            return float(hll_estimate(self.hll))
        return None

    def rank_error(self, confidence: float = 0.99) -> float | None:
        """A bound on the KLL sketch's rank error at ``confidence``: the sketch's own
        (double-sided, as for a CDF) plus, when it was fed a sample of the finite values,
        the sample's (Dvoretzky-Kiefer-Wolfowitz: ``sqrt(ln(2 / (1 - confidence)) / 2m)``
        for ``m`` sampled values)."""
        if self.kll is None or self.kll.is_empty():
            return None
        error = float(self.kll.normalized_rank_error(True))
        sampled = int(self.kll.n)
        if sampled < self.count:
            error += math.sqrt(math.log(2 / (1 - confidence)) / (2 * sampled))
        return error

    def quantiles(self, ranks: tuple[float, ...] = QUANTILES) -> list[float] | None:
        if self.kll is None or self.kll.is_empty():
            return None
        return [float(q) for q in self.kll.get_quantiles(list(ranks))]

    def merge(self, other: ColumnProfile) -> ColumnProfile:
        """A new profile of both sides' rows (neither side is modified)."""
        merged = ColumnProfile(
            kind=self.kind if self.rows else other.kind,
            rows=self.rows + other.rows,
            nulls=self.nulls + other.nulls,
            pos_inf=self.pos_inf + other.pos_inf,
            neg_inf=self.neg_inf + other.neg_inf,
            moments=self.moments.merge(other.moments),
        )
        merged.kll = _merge_kll(self.kll, other.kll)
        if self.hll is not None and other.hll is not None:
            merged.hll = np.maximum(self.hll, other.hll)
        else:
            merged.hll = self.hll if other.hll is None else other.hll.copy()
        merged.categories = merge_categories(self.categories, other.categories)
        if not self.rows:
            merged.edges, merged.hist = other.edges, other.hist
        elif not other.rows:
            merged.edges, merged.hist = self.edges, self.hist
        elif self.edges == other.edges and self.hist is not None and other.hist is not None:
            merged.edges = self.edges
            merged.hist = [a + b for a, b in zip(self.hist, other.hist, strict=True)]
        return merged

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe; :meth:`from_dict` restores it exactly (sketches as base64)."""
        doc: dict[str, Any] = {
            "kind": self.kind,
            "rows": self.rows,
            "nulls": self.nulls,
            "pos_inf": self.pos_inf,
            "neg_inf": self.neg_inf,
            "moments": self.moments.to_dict(),
            "kll": _b64(self.kll.serialize()) if self.kll is not None else None,
            "hll": _b64(zlib.compress(self.hll.tobytes())) if self.hll is not None else None,
            "categories": None
            if self.categories is None
            else [[k, v] for k, v in sorted(self.categories.items(), key=lambda kv: str(kv[0]))],
            "edges": list(self.edges),
            "hist": self.hist,
        }
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> ColumnProfile:
        kind = str(doc.get("kind", "continuous"))
        if kind not in KINDS:
            raise ValueError(f"unknown column kind {kind!r}")
        kll = doc.get("kll")
        hll = doc.get("hll")
        categories = doc.get("categories")
        return cls(
            kind=kind,
            rows=int(doc.get("rows") or 0),
            nulls=int(doc.get("nulls") or 0),
            pos_inf=int(doc.get("pos_inf") or 0),
            neg_inf=int(doc.get("neg_inf") or 0),
            moments=ColumnSummary.from_dict(doc.get("moments") or {}),
            kll=kll_floats_sketch.deserialize(base64.b64decode(kll)) if kll else None,
            hll=np.frombuffer(zlib.decompress(base64.b64decode(hll)), dtype=np.uint8).copy()
            if hll
            else None,
            categories=None if categories is None else {k: int(v) for k, v in categories},
            edges=tuple(float(e) for e in doc.get("edges") or ()),
            hist=None if doc.get("hist") is None else [int(c) for c in doc["hist"]],
        )


def merge_categories(
    a: dict[float | str, int] | None, b: dict[float | str, int] | None
) -> dict[float | str, int] | None:
    """Sum two category tables; None (too many values) once either is None or too big."""
    if a is None or b is None:
        return None
    merged = dict(a)
    for k, v in b.items():
        merged[k] = merged.get(k, 0) + v
    return merged if len(merged) <= MAX_CATEGORIES else None


def _merge_kll(
    a: kll_floats_sketch | None, b: kll_floats_sketch | None
) -> kll_floats_sketch | None:
    if a is None and b is None:
        return None
    merged = kll_floats_sketch(KLL_K)
    for sketch in (a, b):
        if sketch is not None:
            merged.merge(sketch)
    return merged


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
