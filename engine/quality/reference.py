"""Profiles of a whole run (or a reference data set): merge, save, load, find, bin.

A profile file is JSON: metadata plus one :class:`~engine.stats.ColumnProfile` per model
feature (keyed by the model's feature name, so a reference made from a training set with
other column names still applies) and per score column. ``lakescore profile`` writes one;
every committed run stores its own at ``<sink>/_lakescore/profiles/<run_id>.json``, and
the newest run whose status was ``ok`` or ``warn`` is the next run's default reference.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine._fsutil import atomic_write_bytes, read_json
from engine.errors import BadInputError
from engine.stats import ColumnProfile

log = logging.getLogger("lakescore.quality")

PROFILE_FORMAT = "lakescore-profile"
PROFILE_VERSION = 1
#: Reference quantiles whose values are the inner histogram edges (deciles: PSI's bins).
BIN_RANKS = tuple(k / 10 for k in range(1, 10))
#: Run statuses whose profile may serve as the next run's reference.
REFERENCE_STATUSES = ("ok", "warn")


@dataclass
class Profile:
    """A run's (or reference's) profiles: ``features`` and ``scores`` by column, and for a
    variant run ``variants``: ``{variant: {"score": profile of its acting score}}``."""

    features: dict[str, ColumnProfile] = field(default_factory=dict)
    scores: dict[str, ColumnProfile] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    variants: dict[str, dict[str, ColumnProfile]] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        first = next(iter({**self.features, **self.scores}.values()), None)
        return first.rows if first is not None else 0

    def to_dict(self) -> dict[str, Any]:
        doc = {
            "format": PROFILE_FORMAT,
            "version": PROFILE_VERSION,
            **self.meta,
            "rows": self.rows,
            "features": {k: v.to_dict() for k, v in sorted(self.features.items())},
            "scores": {k: v.to_dict() for k, v in sorted(self.scores.items())},
        }
        if self.variants:  # absent otherwise: a single-model profile reads as before
            doc["variants"] = {
                name: {k: v.to_dict() for k, v in sorted(columns.items())}
                for name, columns in sorted(self.variants.items())
            }
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Profile:
        skip = ("features", "scores", "rows", "variants")
        meta = {k: v for k, v in doc.items() if k not in skip}
        return cls(
            features={k: ColumnProfile.from_dict(v) for k, v in doc.get("features", {}).items()},
            scores={k: ColumnProfile.from_dict(v) for k, v in doc.get("scores", {}).items()},
            meta=meta,
            variants={
                name: {k: ColumnProfile.from_dict(v) for k, v in columns.items()}
                for name, columns in (doc.get("variants") or {}).items()
            },
        )

    def to_bytes(self) -> bytes:
        return (json.dumps(self.to_dict(), sort_keys=True) + "\n").encode()

    def save(self, path: Path) -> None:
        atomic_write_bytes(path, self.to_bytes())


def load_profile(path: str | Path) -> Profile:
    """Read a profile file; anything wrong with it is bad input naming the file."""
    path = Path(path)
    try:
        doc = read_json(path)
    except FileNotFoundError:
        raise BadInputError(f"reference not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{path}: not a lakescore profile ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != PROFILE_FORMAT:
        raise BadInputError(f"{path}: not a lakescore profile (no 'format' = {PROFILE_FORMAT!r})")
    if doc.get("version") != PROFILE_VERSION:
        raise BadInputError(f"{path}: profile version {doc.get('version')!r} is not supported")
    try:
        return Profile.from_dict(doc)
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInputError(f"{path}: damaged profile ({exc})") from None


def merge_profiles(parts: Iterable[dict[str, Any]]) -> Profile:
    """Merge task profiles (``{"features": {name: doc}, "scores": {name: doc}}`` and, in
    a variant run, ``"variants": {variant: {name: doc}}``)."""
    merger = ProfileMerger()
    for part in parts:
        merger.add(part)
    return merger.profile


class ProfileMerger:
    """:func:`merge_profiles` one task at a time: the coordinator merges each task's
    profile as the task finishes, while the others still score, instead of all of them
    after the last (0.01-0.015 s of a reference run's serial tail)."""

    def __init__(self) -> None:
        self.profile = Profile()
        #: seconds spent merging (wall, this thread's CPU), for the run record
        self.seconds = 0.0
        self.cpu_seconds = 0.0

    def add(self, part: dict[str, Any]) -> None:
        started = time.perf_counter(), time.thread_time()
        merged = self.profile
        for role, target in (("features", merged.features), ("scores", merged.scores)):
            _merge_into(target, part.get(role, {}))
        for variant, columns in part.get("variants", {}).items():
            _merge_into(merged.variants.setdefault(variant, {}), columns)
        self.seconds += time.perf_counter() - started[0]
        self.cpu_seconds += time.thread_time() - started[1]


def _merge_into(target: dict[str, ColumnProfile], docs: dict[str, Any]) -> None:
    for name, doc in docs.items():
        p = ColumnProfile.from_dict(doc)
        target[name] = target[name].merge(p) if name in target else p


def bin_edges(p: ColumnProfile) -> tuple[float, ...]:
    """Histogram edges from a reference column: its min, deciles and max, distinct.

    Discrete columns with few values get fewer bins (ties collapse), one per value at
    most, the largest value alone in the last. An empty column, or one without a sketch,
    has none.
    """
    if p.kll is None or p.kll.is_empty() or p.count == 0:
        return ()
    inner = [float(q) for q in p.kll.get_quantiles(list(BIN_RANKS))]
    values = sorted({v for v in [p.moments.min, *inner, p.moments.max] if math.isfinite(v)})
    if len(values) == 1 or p.kind == "discrete" or inner[-1] >= p.moments.max:
        # The last bin is closed: repeat the max so that it gets a bin of its own when
        # values pile up there (a boolean's 1, a constant column), not a bin shared with
        # the value below it.
        values.append(values[-1])
    return tuple(values)


def profile_edges(
    reference: Profile | None,
) -> tuple[dict[str, tuple[float, ...]], dict[str, tuple[float, ...]]]:
    """Histogram edges of every feature and score column of ``reference``."""
    if reference is None:
        return {}, {}

    def edges(columns: dict[str, ColumnProfile]) -> dict[str, tuple[float, ...]]:
        out = {}
        for name, p in columns.items():
            if p.kind != "string" and (e := bin_edges(p)):
                out[name] = e
        return out

    return edges(reference.features), edges(reference.scores)


def profile_path(meta_dir: Path, run_id: str) -> Path:
    return meta_dir / "profiles" / f"{run_id}.json"


def previous_run_reference(
    records_dir: Path, meta_dir: Path
) -> tuple[str, Profile] | tuple[None, None]:
    """The newest run of the sink with status ok or warn and a stored profile."""
    if not records_dir.is_dir():
        return None, None
    candidates = []
    for path in records_dir.glob("*.json"):
        try:
            record = read_json(path)
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and record.get("status") in REFERENCE_STATUSES:
            candidates.append((str(record.get("finished_at", "")), path.stem))
    for _, run_id in sorted(candidates, reverse=True):
        path = profile_path(meta_dir, run_id)
        if path.exists():
            try:
                return run_id, load_profile(path)
            except BadInputError as exc:  # a damaged old profile: try the one before
                log.warning("skipping the profile of run %s: %s", run_id, exc)
    return None, None


def resolve_reference(
    reference: str | None, records_dir: Path, meta_dir: Path
) -> tuple[str | None, Profile | None]:
    """The run's reference and its name for the record: the given profile file, else the
    sink's previous good run (``run:<run_id>``), else none (a first run)."""
    if reference is not None:
        return reference, load_profile(reference)
    run_id, profile = previous_run_reference(records_dir, meta_dir)
    if profile is None:
        return None, None
    return f"run:{run_id}", profile
