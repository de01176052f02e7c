"""The error hierarchy of the engine; each class carries the CLI exit code DESIGN assigns."""

from __future__ import annotations


class LakescoreError(Exception):
    """Base class of every error the engine raises on purpose."""

    exit_code = 3


class BadInputError(LakescoreError):
    """Bad input or usage: a missing file, a wrong column, an unknown key. Exit code 2.

    The message is one line naming the file, column or field at fault.
    """

    exit_code = 2


class QualityCheckError(LakescoreError):
    """The job ran but a quality check failed. Exit code 1."""

    exit_code = 1


class ExecutionError(LakescoreError):
    """Scoring failed while running (a worker died, the disk filled up). Exit code 3."""

    exit_code = 3


class QualityCheckFailed(QualityCheckError):
    """A quality check failed with ``on_fail = "abort"``: nothing was committed.

    ``result`` is the :class:`~engine.coordinator.ScoreResult` the run would have had
    (its ``record`` holds the checks and drift), for callers that want the details.
    """

    def __init__(self, message: str, result: object = None) -> None:
        super().__init__(message)
        self.result = result
