"""Per-variant statistics: rows and score distribution, mergeable across batches and tasks.

A task record carries, per variant, its row count, a :class:`~engine.stats.ColumnSummary`
of the acting score and a KLL sketch of it (base64, so the record stays JSON); the
coordinator merges them into the run record's ``variants`` entry. KLL quantiles are
approximate (k=200: rank error about 1.3%) and independent of how rows were split.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from datasketches import kll_floats_sketch

from engine.stats import ColumnSummary

KLL_K = 200
QUANTILES = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)


def _sketch(doc: dict[str, Any]) -> kll_floats_sketch:
    return kll_floats_sketch.deserialize(base64.b64decode(doc["kll"]))


def _encode(sketch: kll_floats_sketch) -> str:
    return base64.b64encode(sketch.serialize()).decode("ascii")


class VariantStats:
    """Functions over the task-record form ``{variant: {rows, summary, kll}}``."""

    @staticmethod
    def of_batch(
        names: tuple[str, ...], which: np.ndarray, score: np.ndarray
    ) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for k, name in enumerate(names):
            values = score[which == k]
            if not values.size:
                continue
            sketch = kll_floats_sketch(KLL_K)
            finite = values[np.isfinite(values)]
            if finite.size:
                sketch.update(np.ascontiguousarray(finite, dtype=np.float32))
            out[name] = {
                "rows": int(values.size),
                "summary": ColumnSummary.of(values).to_dict(),
                "kll": _encode(sketch),
            }
        return out

    @staticmethod
    def merge(
        a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]]
    ) -> dict[str, dict[str, Any]]:
        out = dict(a)
        for name, doc in b.items():
            if name not in out:
                out[name] = doc
                continue
            mine = out[name]
            sketch = _sketch(mine)
            sketch.merge(_sketch(doc))
            summary = ColumnSummary.from_dict(mine["summary"]).merge(
                ColumnSummary.from_dict(doc["summary"])
            )
            out[name] = {
                "rows": mine["rows"] + doc["rows"],
                "summary": summary.to_dict(),
                "kll": _encode(sketch),
            }
        return out

    @staticmethod
    def run_record(
        plan: dict[str, Any], merged: dict[str, dict[str, Any]]
    ) -> dict[str, dict[str, Any]]:
        """The run record's ``variants``: the plan's models with rows and score statistics.

        ``{name: {rows, share, weight, model, sha256, registry, name, version, alias,
        score: {count, nan, mean, std, min, max, quantiles: {"0.5": ...}}}}``
        """
        total = sum(doc["rows"] for doc in merged.values())
        out: dict[str, dict[str, Any]] = {}
        models = plan.get("models", {})
        for name in plan.get("order", list(models)):
            model = models[name]
            doc = merged.get(name)
            rows = int(doc["rows"]) if doc else 0
            score: dict[str, Any] = {"count": 0, "quantiles": {}}
            if doc:
                s = ColumnSummary.from_dict(doc["summary"])
                sketch = _sketch(doc)
                cuts = [] if sketch.is_empty() else sketch.get_quantiles(list(QUANTILES))
                score = {
                    "count": s.count,
                    "nan": s.nan,
                    "mean": s.mean if s.count else None,
                    "std": float(np.sqrt(s.variance)) if s.count else None,
                    "min": s.min if s.count else None,
                    "max": s.max if s.count else None,
                    "quantiles": {str(q): float(v) for q, v in zip(QUANTILES, cuts, strict=False)},
                }
            out[name] = {
                **model,
                "model_version": model.get("version"),
                "rows": rows,
                "share": rows / total if total else None,
                "score": score,
            }
        return out
