"""The scoring job: Python API, CLI, job spec, lake IO, coordinator."""

# First, before anything loads pyarrow: Arrow's allocator keeps freed pages (see module).
from cluster.arrow_allocator import keep_freed_pages

keep_freed_pages()

# ruff: noqa: E402
from engine.api import score
from engine.coordinator import ScoreResult, run_job
from engine.errors import (
    BadInputError,
    ExecutionError,
    LakescoreError,
    QualityCheckError,
    QualityCheckFailed,
)
from engine.spec import JobSpec, load_job_file

__all__ = [
    "BadInputError",
    "ExecutionError",
    "JobSpec",
    "LakescoreError",
    "QualityCheckError",
    "QualityCheckFailed",
    "ScoreResult",
    "load_job_file",
    "run_job",
    "score",
]
