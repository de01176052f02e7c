"""Data quality: per-column profiles, drift against a reference, checks, the lake tables.

Workers profile every batch they score (:mod:`engine.quality.profiler`, one Numba pass
over the feature matrix, :mod:`engine.quality._pass`); the coordinator merges the task
profiles (:mod:`engine.quality.reference`), measures drift (:mod:`engine.quality.drift`),
evaluates the job's checks (:mod:`engine.quality.checks`) and stages the run's rows of
the ``runs``, ``feature_stats``, ``score_stats`` and ``drift`` tables
(:mod:`engine.quality.tables`) to be committed with its scores.

The names below load on first use (PEP 562): a worker imports only the profiler (this
package's ``__init__`` runs first), not the coordinator's judge, drift and tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine._lazy import lazy_names

if TYPE_CHECKING:
    from engine.quality.config import (
        ChecksConfig,
        DriftConfig,
        DriftLimits,
        parse_checks,
        parse_drift,
    )
    from engine.quality.judge import Judgement, judge_run, stage_quality
    from engine.quality.profiler import ProfileSpec, TaskProfiler
    from engine.quality.reference import Profile, ProfileMerger, load_profile, merge_profiles

#: public name -> the module that defines it, imported when the name is first used
_LAZY = {
    "ChecksConfig": "engine.quality.config",
    "DriftConfig": "engine.quality.config",
    "DriftLimits": "engine.quality.config",
    "parse_checks": "engine.quality.config",
    "parse_drift": "engine.quality.config",
    "Judgement": "engine.quality.judge",
    "judge_run": "engine.quality.judge",
    "stage_quality": "engine.quality.judge",
    "ProfileSpec": "engine.quality.profiler",
    "TaskProfiler": "engine.quality.profiler",
    "Profile": "engine.quality.reference",
    "ProfileMerger": "engine.quality.reference",
    "load_profile": "engine.quality.reference",
    "merge_profiles": "engine.quality.reference",
}


__getattr__, __dir__ = lazy_names(globals(), _LAZY)

__all__ = [
    "ChecksConfig",
    "DriftConfig",
    "DriftLimits",
    "Judgement",
    "Profile",
    "ProfileMerger",
    "ProfileSpec",
    "TaskProfiler",
    "judge_run",
    "load_profile",
    "merge_profiles",
    "parse_checks",
    "parse_drift",
    "stage_quality",
]
