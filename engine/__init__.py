"""The scoring job: Python API, CLI, job spec, lake IO, coordinator.

The public names load on first use (PEP 562): a Ray actor that imports only the task's
modules (``engine.worker_factory``) does not pay for the driver's (the coordinator, the
quality judgement, the report, the sinks): 0.54 s for all of ``engine`` here.
"""

# First, before anything loads pyarrow: Arrow's allocator keeps freed pages (see module).
from cluster.arrow_allocator import keep_freed_pages

keep_freed_pages()

# ruff: noqa: E402
from typing import TYPE_CHECKING

from engine._lazy import lazy_names
from engine.errors import (
    BadInputError,
    ExecutionError,
    LakescoreError,
    QualityCheckError,
    QualityCheckFailed,
)

if TYPE_CHECKING:
    from engine.api import score
    from engine.coordinator import ScoreResult, run_job
    from engine.spec import JobSpec, load_job_file

#: public name -> the module that defines it, imported when the name is first used
_LAZY = {
    "score": "engine.api",
    "ScoreResult": "engine.coordinator",
    "run_job": "engine.coordinator",
    "JobSpec": "engine.spec",
    "load_job_file": "engine.spec",
}


__getattr__, __dir__ = lazy_names(globals(), _LAZY)

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
