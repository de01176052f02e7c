"""Per-variant drift: each variant's acting score against that variant's own reference.

In a champion/challenger run the whole run's ``score`` mixes the variants' models (in
proportions that reweighting moves), so each variant's score is also judged on its own.
A variant's reference is, in this order:

1. ``registry``: the reference profile registered with the variant's model version
   (``lakescore models register --reference``), its ``score`` column: what that model
   scored on its training data. Its sha256 is checked against the registry's.
2. ``previous_run``: the same variant in the sink's previous successful run (the newest
   run with status ``ok`` or ``warn`` and a stored profile).
3. ``none``: no drift is measured for the variant.

The limits are the ``score`` column's (``[drift]``, ``[drift.columns.score]``). The
``variant_drift`` check is the worst variant's drift status, so it can warn or fail a run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from engine.errors import BadInputError
from engine.quality.checks import check
from engine.quality.config import DriftConfig
from engine.quality.drift import ColumnDrift, column_drift, worst
from engine.quality.reference import Profile, bin_edges, load_profile, previous_run_reference
from engine.stats import ColumnProfile

#: The column profiled per variant: the acting score.
SCORE = "score"
SOURCES = ("registry", "previous_run", "none")


@dataclass(frozen=True)
class RegisteredReference:
    """A reference profile stored with a registry model version."""

    model: str  # NAME@VERSION, for messages and the record
    path: str  # a local file
    sha256: str | None  # what the registry recorded


@dataclass(frozen=True)
class VariantReference:
    """Where a variant's reference came from (one of :data:`SOURCES`), its name for the
    record (``registry:NAME@VERSION``, ``run:<run_id>``, or None) and its score profile."""

    source: str
    name: str | None = None
    profile: ColumnProfile | None = None

    @property
    def edges(self) -> tuple[float, ...]:
        return bin_edges(self.profile) if self.profile is not None else ()


def resolve_variant_references(
    variants: dict[str, RegisteredReference | None],
    previous: tuple[str | None, Profile | None],
) -> dict[str, VariantReference]:
    """Each variant's reference (``variants``: name -> its model's registered reference,
    in job order; ``previous``: the sink's previous successful run and its profile)."""
    run_id, profile = previous
    out: dict[str, VariantReference] = {}
    for name, registered in variants.items():
        if registered is not None:
            out[name] = VariantReference(
                "registry", f"registry:{registered.model}", _registered_score(registered)
            )
            continue
        earlier = profile.variants.get(name, {}).get(SCORE) if profile is not None else None
        if earlier is not None and earlier.count:
            out[name] = VariantReference("previous_run", f"run:{run_id}", earlier)
        else:
            out[name] = VariantReference("none")
    return out


def previous_run(
    reference_name: str | None, reference: Profile | None, records_dir: Path, meta_dir: Path
) -> tuple[str | None, Profile | None]:
    """The sink's previous successful run: the whole run's reference when that is the
    previous run (already loaded), else looked up."""
    if reference_name is not None and reference_name.startswith("run:"):
        return reference_name[len("run:") :], reference
    return previous_run_reference(records_dir, meta_dir)


def _registered_score(ref: RegisteredReference) -> ColumnProfile:
    try:
        data = Path(ref.path).read_bytes()
    except OSError as exc:
        raise BadInputError(f"{ref.model}: registered reference {ref.path}: {exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    if ref.sha256 is not None and digest != ref.sha256:
        raise BadInputError(
            f"{ref.model}: the registered reference {ref.path} has sha256 {digest[:12]}..., "
            f"the registry recorded {ref.sha256[:12]}... (the file was changed or damaged)"
        )
    score = load_profile(ref.path).scores.get(SCORE)
    if score is None or score.kind == "string":
        raise BadInputError(
            f"{ref.model}: the registered reference {ref.path} has no profile of a "
            f"{SCORE!r} column (make it with lakescore profile)"
        )
    return score


def variant_edges(references: dict[str, VariantReference]) -> dict[str, tuple[float, ...]]:
    """Histogram edges per variant, so that workers count each variant's score exactly on
    its own reference's bins."""
    return {name: ref.edges for name, ref in references.items() if ref.edges}


def measure_variant_drift(
    profile: Profile, references: dict[str, VariantReference], config: DriftConfig
) -> dict[str, ColumnDrift]:
    """Drift of each variant's score that has a reference and scored rows."""
    out: dict[str, ColumnDrift] = {}
    for name, ref in references.items():
        current = profile.variants.get(name, {}).get(SCORE)
        if ref.profile is None or current is None or not current.rows:
            continue
        out[name] = column_drift(SCORE, "score", ref.profile, current, config.limits(SCORE))
    return out


def variant_drift_check(
    drift: dict[str, ColumnDrift], references: dict[str, VariantReference]
) -> dict[str, str]:
    """``variant_drift``: the worst variant's status; the detail names each variant's."""
    parts = []
    for name, ref in references.items():
        d = drift.get(name)
        if d is None:
            why = "no reference" if ref.profile is None else "no rows"
            parts.append(f"{name}: {why}, not measured")
        else:
            psi = f", PSI {d.psi:.3g}" if d.psi is not None else ""
            parts.append(f"{name}: {d.status}{psi} (reference {ref.name})")
    status = worst([d.status for d in drift.values()])
    return check("variant_drift", status, "; ".join(parts))
