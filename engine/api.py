"""The Python API for ad hoc backfills: :func:`score`."""

from __future__ import annotations

from pathlib import Path

from engine.coordinator import ScoreResult, run_job
from engine.spec import JobSpec


def score(
    model: str | Path,
    source: str | Path,
    sink: str | Path,
    *,
    id_column: str | None = None,
    cluster: str = "local",
    backend: str = "auto",
    columns: dict[str, str] | None = None,
    run_id: str | None = None,
    progress: bool = False,
    **options: object,
) -> ScoreResult:
    """Score ``source`` with ``model`` and commit the scores to ``sink``.

    Parameters
    ----------
    model
        Model file (XGBoost JSON or UBJSON).
    source
        Parquet file or directory (hive partitions allowed).
    sink
        Output directory; each run adds ``<sink>/<run_id>/`` atomically.
    id_column
        Source column copied beside each score.
    cluster
        ``local``: threads in this process. ``ray``: actors on a local Ray sized to the
        machine (started for the run, stopped after it). ``auto``, ``HOST:PORT`` or
        ``ray://HOST:PORT``: actors on an existing Ray cluster (left running). Ray needs
        ``pip install 'lakescore[ray]'``.
    backend
        ``auto`` or a named kernel backend.
    columns
        Model feature name -> source column name, where they differ.
    run_id
        Resume or re-commit this run; by default an unfinished run of the same job is
        resumed, else a new one starts.
    progress
        Show a progress bar (terminal) or log progress lines.
    options
        Further :class:`~engine.spec.JobSpec` fields (``batch_rows``, ``task_rows``,
        ``workers``; ``actor_cpus`` for Ray actors; ``reference``, ``drift``, ``checks``
        for data quality; ``keep=[...]`` source columns to write beside the scores;
        ``hash_id_salt`` or ``hash_id_salt_env`` to write the id as a salted hash).

    Returns
    -------
    ScoreResult
        ``rows_scored``, ``run_id``, ``sink``, ``stats``, ``status`` (``ok``, ``warn`` or
        ``fail``: a quality check failed and the run was committed).

    Raises
    ------
    engine.errors.BadInputError
        Bad input; nothing was written.
    engine.errors.QualityCheckFailed
        A check failed with ``on_fail = "abort"``; nothing was written.
    engine.errors.ExecutionError
        Scoring failed; the sink's data is as it was and a rerun resumes.
    """
    spec = JobSpec(
        model=str(model),
        source=str(source),
        sink=str(sink),
        id_column=id_column,
        columns=dict(columns or {}),
        backend=backend,
        cluster=cluster,
        run_id=run_id,
        **options,  # type: ignore[arg-type]
    )
    return run_job(spec, progress=progress)
