"""The run record's ``variants``: rows, score distribution and drift of each variant.

Workers profile each variant's acting score apart (``TaskProfiler.add_variants``, in the
same pass as the whole run's profile); the task profiles merge like the whole run's, so
counts and moments are exact and the quantiles come from mergeable KLL sketches (the
rank error of the whole run's profiles, see ``ColumnProfile.rank_error``).
"""

from __future__ import annotations

import math
from typing import Any

from engine.quality.drift import ColumnDrift
from engine.quality.variant_drift import SCORE, VariantReference
from engine.stats import ColumnProfile

QUANTILES = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)


def score_summary(p: ColumnProfile | None) -> dict[str, Any]:
    """``{count, nan, mean, std, min, max, quantiles: {"0.5": ...}}`` of a score profile."""
    if p is None or not p.rows:
        return {"count": 0, "quantiles": {}}
    s = p.moments
    cuts = p.quantiles(QUANTILES) or []
    return {
        "count": s.count,
        "nan": s.nan,
        "mean": s.mean if s.count else None,
        "std": math.sqrt(s.variance) if s.count else None,
        "min": s.min if s.count else None,
        "max": s.max if s.count else None,
        "quantiles": {str(q): v for q, v in zip(QUANTILES, cuts, strict=False)},
    }


def variants_record(
    plan: dict[str, Any],
    profiles: dict[str, dict[str, ColumnProfile]],
    references: dict[str, VariantReference] | None = None,
    drift: dict[str, ColumnDrift] | None = None,
) -> dict[str, dict[str, Any]]:
    """The run record's ``variants``: the plan's models with their statistics.

    ``{name: {rows, share, weight, model, sha256, registry, name, version, alias,
    model_version, score: {...}, reference, reference_source, drift, drift_status}}``:
    ``reference_source`` is ``registry``, ``previous_run`` or ``none`` (``reference``
    names it: ``registry:NAME@VERSION``, ``run:<run_id>`` or null), ``drift`` the score's
    drift against it (the drift table's metrics) or null when it was not measured.
    """
    models = plan.get("models", {})
    order = plan.get("order", list(models))
    rows = {name: profiles.get(name, {}).get(SCORE) for name in order}
    total = sum(p.rows for p in rows.values() if p is not None)
    out: dict[str, dict[str, Any]] = {}
    for name in order:
        p = rows[name]
        n = p.rows if p is not None else 0
        entry = {
            **models[name],
            "model_version": models[name].get("version"),
            "rows": n,
            "share": n / total if total else None,
            "score": score_summary(p),
        }
        if references is not None:  # judged: say which reference and what it found
            ref = references.get(name, VariantReference("none"))
            d = (drift or {}).get(name)
            entry.update(
                reference=ref.name,
                reference_source=ref.source,
                drift=d.to_dict() if d is not None else None,
                drift_status=d.status if d is not None else None,
            )
        out[name] = entry
    return out
