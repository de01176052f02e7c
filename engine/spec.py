"""The job spec: what to score, from where, to where. Built from CLI flags or a TOML file.

A TOML job file uses the same names as the ``score`` command's flags::

    model = "models/churn.json"
    source = "lake/customers"
    sink = "lake/scores"
    id_column = "customer_id"
    backend = "auto"          # auto | numba | cuda | tl2cgen
    cluster = "local"
    metrics_file = "/var/lib/node_exporter/churn.prom"   # optional: Prometheus metrics
    keep = ["segment"]        # optional: source columns written beside the scores
    hash_id_salt_env = "CHURN_ID_SALT"   # optional: write the id as a salted hash

    [columns]                 # model feature -> source column, where the names differ
    f0 = "spend_30d"

    reference = "ref/train-profile.json"   # drift reference (lakescore profile -o ...)
    [drift]                   # drift limits (engine.quality.config)
    [checks]                  # checks and on_fail = "commit" | "abort"
    [notify]                  # optional: a webhook told of failed runs (engine.notify)
    webhook = "https://hooks.example.com/..."

Relative paths are relative to the job file. Unknown keys are an error.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from engine.errors import BadInputError
from engine.registry import resolve_model_value
from engine.variants import VariantsSpec, parse_variants

FORMATS = ("parquet", "delta")


@dataclass(frozen=True)
class JobSpec:
    """One scoring job.

    Attributes
    ----------
    model
        Path of the model file, or ``NAME@VERSION`` / ``NAME@ALIAS`` in the registry.
    source
        A Parquet file or a directory of Parquet files (hive partitions allowed).
    sink
        The output directory; created when missing.
    id_column
        Source column copied to the sink beside each score. Without one, rows are
        identified by ``source_file`` and ``row_number`` (0-based within that file).
    columns
        Model feature name -> source column name, for features whose names differ.
    backend
        Kernel backend: ``auto`` picks the best available.
    cluster
        ``local`` (threads in this process).
    run_id
        Resume or re-commit a given run; by default an unfinished run of the same job is
        resumed, or a new id is made.
    batch_rows
        Rows per Arrow record batch read from the source.
    task_rows
        Target rows per task: whole row groups of one file, or several small files of one
        partition and schema (at most 128).
    workers
        Tasks in flight at once on the local executor.
    actor_cpus
        CPUs each Ray actor reserves; it runs that many tasks at once in threads that
        share one kernel (a node's CPUs: one process per node). By default one actor of
        all the free CPUs on a cluster of one node, one CPU per actor on several. Local
        runs ignore it.
    source_version, source_timestamp
        Time travel on a Delta source: score this version of the table, or the version
        current at this ISO 8601 time (UTC when it names no zone). The latest by default.
    filter
        Rows to score (``region = 'north' and age >= 18``: comparisons, and/or/not, in,
        is null); pushed down to the source's partitions and row group statistics.
    partition_by
        Output partition columns: ``COL`` (a source column) or ``COL=VALUE`` (a constant).
    overwrite_partition
        Replace this one output partition (``score_date = '2026-11-01'``) with the run.
    storage
        Where ``s3://`` paths live: ``endpoint_url`` (an S3-compatible store) and
        ``region``; credentials come from the AWS environment variables or profile only.
    task_retries
        Times a task that raised runs again before the run fails (a task whose Ray actor
        died is always run again elsewhere).
    metrics_file
        Prometheus text-format metrics of each run are written here (node_exporter
        textfile collector style), whatever the run's outcome.
    notify
        The ``[notify]`` table: a webhook told about runs that end with the listed
        statuses (see :mod:`engine.notify`).
    registry
        Model registry root, for models named ``NAME@VERSION`` or ``NAME@ALIAS`` (else
        ``$LAKESCORE_REGISTRY``).
    variants
        Champion/challenger variants (``[variants]``; see :mod:`engine.variants`); then
        ``model`` is the first variant's model.
    reference
        A profile file (``lakescore profile``) to measure drift against; by default the
        sink's newest run with status ok or warn, or none on a sink's first run.
    drift
        The ``[drift]`` table: drift limits, defaults and per column
        (:mod:`engine.quality.config`).
    checks
        The ``[checks]`` table: min_rows, max_nan_score_share, max_seconds, on_fail.
    keep
        Source columns written beside the id and the scores; nothing else of the
        source reaches the sink (see :mod:`engine.governance`).
    hash_id_salt
        Write the id column as the hex SHA-256 of this salt followed by the id, instead
        of the raw id (see :mod:`engine.id_hash`).
    hash_id_salt_env
        The name of an environment variable holding that salt, so that a job file need
        not hold the secret.
    """

    model: str
    source: str
    sink: str
    id_column: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    backend: str = "auto"
    cluster: str = "local"
    format: str = "parquet"
    run_id: str | None = None
    batch_rows: int = 65_536
    task_rows: int = 262_144
    workers: int = 2
    actor_cpus: int | None = None
    task_retries: int = 2
    trust_pickle: bool = False
    source_version: int | None = None
    source_timestamp: str | None = None
    filter: str | None = None
    partition_by: list[str] = field(default_factory=list)
    overwrite_partition: str | None = None
    storage: dict[str, str] = field(default_factory=dict)
    metrics_file: str | None = None
    notify: dict[str, Any] = field(default_factory=dict)
    registry: str | None = None
    variants: VariantsSpec | None = None
    reference: str | None = None
    drift: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    keep: tuple[str, ...] = ()
    hash_id_salt: str | None = field(default=None, repr=False)  # a secret: never printed
    hash_id_salt_env: str | None = None

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise BadInputError(f"format: {self.format!r} is not one of {', '.join(FORMATS)}")
        for name in ("batch_rows", "task_rows", "workers", "actor_cpus", "task_retries"):
            value = getattr(self, name)
            if value is None and name == "actor_cpus":  # chosen by the cluster's shape
                continue
            least = 0 if name == "task_retries" else 1
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise BadInputError(f"{name}: must be an integer >= {least}, got {value!r}")
        if self.source_version is not None and (
            not isinstance(self.source_version, int)
            or isinstance(self.source_version, bool)
            or self.source_version < 0
        ):
            raise BadInputError(
                f"source_version: must be a non-negative integer, got {self.source_version!r}"
            )
        if self.source_version is not None and self.source_timestamp is not None:
            raise BadInputError("source_version and source_timestamp: give one, not both")
        if not isinstance(self.partition_by, list | tuple) or not all(
            isinstance(c, str) for c in self.partition_by
        ):
            raise BadInputError("partition_by: must be a list of COL or COL=VALUE strings")
        if not isinstance(self.columns, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.columns.items()
        ):
            raise BadInputError("columns: must map feature names to source column names")
        if not isinstance(self.notify, dict):
            raise BadInputError(f"notify: must be a table, got {self.notify!r}")
        from engine.notify import notify_config  # engine.notify imports nothing of this

        notify_config(self.notify)  # a bad [notify] table fails before the run, not after
        from engine.quality.config import parse_checks, parse_drift

        parse_drift(self.drift)  # bad limits are bad input before anything runs
        parse_checks(self.checks)
        from engine.governance import check_spec

        keep = check_spec(self.keep, self.hash_id_salt, self.hash_id_salt_env)
        object.__setattr__(self, "keep", keep)  # a TOML array becomes a tuple


_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "model": str,
    "source": str,
    "sink": str,
    "id_column": str,
    "columns": dict,
    "backend": str,
    "cluster": str,
    "format": str,
    "run_id": str,
    "batch_rows": int,
    "task_rows": int,
    "workers": int,
    "actor_cpus": int,
    "task_retries": int,
    "trust_pickle": bool,
    "source_version": int,
    "source_timestamp": str,
    "filter": str,
    "partition_by": list,
    "overwrite_partition": str,
    "storage": dict,
    "metrics_file": str,
    "notify": dict,
    "registry": str,
    "variants": dict,
    "reference": str,
    "drift": dict,
    "checks": dict,
    "keep": list,
    "hash_id_salt": str,
    "hash_id_salt_env": str,
}
# ``model`` is resolved by resolve_model_value (registry references and s3:// URIs are
# kept as they are); resolve_path keeps s3:// URIs of these as they are too.
_PATH_FIELDS = ("source", "sink", "registry", "metrics_file", "reference")
_REQUIRED = ("model", "source", "sink")

assert set(_FIELD_TYPES) == {f.name for f in fields(JobSpec)}  # keep the two in step


def load_job_file(path: str | Path) -> JobSpec:
    """Read a TOML job spec; every error names the file and the key."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except FileNotFoundError:
        raise BadInputError(f"job file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise BadInputError(f"{path}: invalid TOML: {exc}") from None
    return spec_from_mapping(doc, base_dir=path.parent, origin=str(path))


def spec_from_mapping(doc: dict[str, Any], *, base_dir: Path, origin: str) -> JobSpec:
    unknown = sorted(set(doc) - set(_FIELD_TYPES))
    if unknown:
        raise BadInputError(f"{origin}: unknown key {unknown[0]!r}")
    if "variants" in doc:
        if "model" in doc:
            raise BadInputError(f"{origin}: give either model or [variants], not both")
        doc = {"model": "", **doc}  # replaced by the first variant's model below
    for key in _REQUIRED:
        if key not in doc:
            raise BadInputError(f"{origin}: missing required key {key!r}")
    values: dict[str, Any] = {}
    for key, value in doc.items():
        expected = _FIELD_TYPES[key]
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            names = expected.__name__ if isinstance(expected, type) else expected
            raise BadInputError(f"{origin}: key {key!r} must be {names}, got {value!r}")
        if key in _PATH_FIELDS:
            value = resolve_path(value, base_dir)
        elif key == "model":
            value = resolve_model_value(value, base_dir)
        elif key == "variants":
            value = parse_variants(value, base_dir=base_dir, origin=origin)
            values["model"] = value.variants[0].model
        values[key] = value
    try:
        return JobSpec(**values)
    except BadInputError as exc:
        raise BadInputError(f"{origin}: {exc}") from None


def resolve_path(value: str, base_dir: Path) -> str:
    """Paths in a job file are relative to the file; URIs are left as they are.

    The result is absolute, so the run record names the same file whatever the working
    directory of the run or of whoever reads the record later.
    """
    if "://" in value:
        return value
    return os.path.abspath(base_dir / Path(value).expanduser())
