"""Mergeable summary statistics, returned by tasks and merged by the coordinator.

Means and variances merge exactly with Chan et al.'s pairwise formula, so the result does
not depend on how rows were split into tasks (up to floating-point rounding).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


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
    def from_dict(cls, doc: dict[str, float | int | None]) -> ColumnSummary:
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
