"""Data quality: per-column profiles, drift against a reference, checks, the lake tables.

Workers profile every batch they score (:mod:`engine.quality.profiler`, one Numba pass
over the feature matrix, :mod:`engine.quality._pass`); the coordinator merges the task
profiles (:mod:`engine.quality.reference`), measures drift (:mod:`engine.quality.drift`),
evaluates the job's checks (:mod:`engine.quality.checks`) and stages the run's rows of
the ``runs``, ``feature_stats``, ``score_stats`` and ``drift`` tables
(:mod:`engine.quality.tables`) to be committed with its scores.
"""

from engine.quality.config import ChecksConfig, DriftConfig, DriftLimits, parse_checks, parse_drift
from engine.quality.judge import Judgement, judge_run, stage_quality
from engine.quality.profiler import ProfileSpec, TaskProfiler
from engine.quality.reference import Profile, ProfileMerger, load_profile, merge_profiles

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
