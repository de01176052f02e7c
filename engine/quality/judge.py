"""What the coordinator asks of quality at the end of a run: drift, checks, status, files.

:func:`judge_run` compares the run's merged profile with the reference and evaluates the
checks; :func:`stage_quality` writes the run's rows of the four tables and its profile
into the staging area, where the commit moves them beside the run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from engine.quality.checks import evaluate_checks, run_status
from engine.quality.config import ChecksConfig, DriftConfig
from engine.quality.drift import ColumnDrift, column_drift
from engine.quality.reference import Profile
from engine.quality.tables import drift_table, runs_table, stats_table, write_tables
from engine.quality.variant_drift import (
    SCORE,
    VariantReference,
    measure_variant_drift,
    variant_drift_check,
)

log = logging.getLogger("lakescore.quality")


@dataclass
class Judgement:
    status: str  # ok | warn | fail
    checks: list[dict[str, str]]
    drift: list[ColumnDrift] = field(default_factory=list)
    #: a variant run's per-variant score drift, and every variant's reference
    variant_drift: dict[str, ColumnDrift] = field(default_factory=dict)
    variant_references: dict[str, VariantReference] = field(default_factory=dict)

    @property
    def drift_status(self) -> dict[str, str]:
        return {d.column: d.status for d in self.drift}

    @property
    def failed(self) -> list[dict[str, str]]:
        return [c for c in self.checks if c["status"] == "fail"]


def measure_drift(profile: Profile, reference: Profile, config: DriftConfig) -> list[ColumnDrift]:
    """Drift of every feature and score column that the reference also profiled (the
    others are named in a warning: a reference made for another model)."""
    out = []
    missing = []
    for role, current, ref_columns in (
        ("feature", profile.features, reference.features),
        ("score", profile.scores, reference.scores),
    ):
        for name, cur in current.items():
            ref = ref_columns.get(name)
            if ref is None:
                missing.append(name)
            else:
                out.append(column_drift(name, role, ref, cur, config.limits(name)))
    if missing:
        log.warning("the reference has no profile of %s: no drift measured", ", ".join(missing))
    return out


def judge_run(
    profile: Profile,
    reference: Profile | None,
    reference_name: str | None,
    *,
    drift_config: DriftConfig,
    checks_config: ChecksConfig,
    rows: int,
    seconds: float,
    variant_references: dict[str, VariantReference] | None = None,
) -> Judgement:
    """Drift, checks and status; a variant run (``variant_references``) also gets each
    variant's score drift and the ``variant_drift`` check."""
    drift = measure_drift(profile, reference, drift_config) if reference is not None else []
    if variant_references is not None:
        drift = [_mixture_not_judged(d) for d in drift]
    checks = evaluate_checks(
        checks_config,
        rows=rows,
        seconds=seconds,
        scores=profile.scores,
        drift=drift,
        reference=reference_name if reference is not None else None,
    )
    variant_drift: dict[str, ColumnDrift] = {}
    if variant_references:
        variant_drift = measure_variant_drift(profile, variant_references, drift_config)
        checks.append(variant_drift_check(variant_drift, variant_references))
    return Judgement(
        status=run_status(checks),
        checks=checks,
        drift=drift,
        variant_drift=variant_drift,
        variant_references=dict(variant_references or {}),
    )


def _mixture_not_judged(d: ColumnDrift) -> ColumnDrift:
    """A variant run's whole-run ``score`` mixes its variants' models in proportion to
    their weights, so it moves whenever the weights do (reweighting after ``evaluate``):
    its drift is measured and recorded but does not count; each variant's score is judged
    against its own reference instead (``variant_drift``)."""
    if d.role != "score" or d.column != SCORE:
        return d
    note = "not judged: a variant run's score mixes the variants (judged per variant)"
    d.reasons = [note, *d.reasons]
    d.status = "ok"
    return d


def stage_quality(
    quality_dir: Path,
    record: dict[str, Any],
    profile: Profile,
    judgement: Judgement,
    source_columns: dict[str, str],
) -> None:
    """Write the run's table rows and profile under ``quality_dir`` (mirroring ``_lakescore``).

    ``score_stats`` and ``drift`` rows of the whole run have ``variant`` null; a variant
    run adds one row per variant (its acting score) with ``variant`` set.
    """
    run_id = str(record["run_id"])
    score_stats = [stats_table(run_id, profile.scores, None)]
    score_stats += [
        stats_table(run_id, columns, None, variant=name)
        for name, columns in profile.variants.items()
    ]
    drift = [drift_table(run_id, record.get("reference"), judgement.drift)]
    drift += [
        drift_table(run_id, judgement.variant_references[name].name, [d], variant=name)
        for name, d in judgement.variant_drift.items()
    ]
    write_tables(
        quality_dir,
        run_id,
        {
            "runs": runs_table(record),
            "feature_stats": stats_table(run_id, profile.features, source_columns),
            "score_stats": pa.concat_tables(score_stats),
            "drift": pa.concat_tables(drift),
        },
    )
    profile.meta.update(
        run_id=run_id,
        created_at=record.get("finished_at"),
        model=record.get("model"),
        model_sha256=record.get("model_sha256"),
        source=record.get("source"),
        features_columns=source_columns,
    )
    profile.save(quality_dir / "profiles" / f"{run_id}.json")
