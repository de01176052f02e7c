"""Governance of outputs: which source columns reach the sink, and the id as a salted hash.

Only the id, the score columns and the columns a job names in ``keep`` are written. With
a hash salt (``hash_id_salt``, or ``hash_id_salt_env`` naming an environment variable
that holds it) the id column is written as its salted SHA-256 (:mod:`engine.id_hash`)
under its own name, type string; the raw id then never leaves the worker that read it.

Everything is checked at plan time against every file's footer: a kept column that is
missing, typed differently in two files, named like an output column or like the id is
bad input, before anything is written. The run record's ``columns_written`` lists the
name and Arrow type of every column of the sink's parts.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from engine.errors import BadInputError

if TYPE_CHECKING:
    import kernels
    from engine.id_hash import IdHasher
    from engine.source import SourceFile
    from engine.spec import JobSpec

#: names only lakescore writes (``score_<class>`` for any class, see :func:`reserved`)
OUTPUT_COLUMNS = ("score", "label", "run_id", "variant", "model_version")
HASH_ALGORITHM = "sha256"


@dataclass(frozen=True)
class OutputColumns:
    """What a worker writes beside the scores; small, picklable, and the salt unprinted.

    It travels to every worker (threads, Ray actors) inside the worker config; the salt
    is therefore resolved on the driver, never read from a worker's environment.
    """

    keep: tuple[str, ...] = ()
    hash_salt: bytes | None = field(default=None, repr=False)
    _hasher: list[IdHasher] = field(default_factory=list, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        return {"keep": self.keep, "hash_salt": self.hash_salt, "_hasher": []}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)

    def ids(self, ids: pa.Array) -> pa.Array | pa.ChunkedArray:
        """The id column as written: the ids themselves, or their salted hashes."""
        if self.hash_salt is None:
            return ids
        if not self._hasher:  # built once per worker (the salt's blocks are precomputed)
            from engine.id_hash import IdHasher  # Numba: only for jobs that hash ids

            self._hasher.append(IdHasher(self.hash_salt))
        return self._hasher[0].hash(ids)

    def id_field(self, source_field: pa.Field) -> pa.Field:
        return source_field.with_type(pa.string()) if self.hash_salt is not None else source_field

    def kept(self, batch: pa.RecordBatch) -> dict[str, pa.Array]:
        """The kept columns of ``batch``, as read (no copy, no per-row work)."""
        return {name: batch.column(name) for name in self.keep}

    def kept_fields(self, schema: pa.Schema) -> list[pa.Field]:
        return [schema.field(name) for name in self.keep]


@dataclass(frozen=True)
class OutputPlan:
    """The output side of a planned run."""

    columns: OutputColumns
    #: ``[{"name", "type"}]`` of every column a part file holds, in order
    written: list[dict[str, str]]
    #: what the run record and the job's fingerprint say about governance (no salt)
    doc: dict[str, Any]
    #: the same columns as an Arrow schema (a Delta sink checks its table against it)
    schema: pa.Schema


def check_spec(keep: Any, salt: Any, salt_env: Any) -> tuple[str, ...]:
    """The job spec's own checks (no source needed); returns ``keep`` as a tuple."""
    if isinstance(keep, str) or not isinstance(keep, list | tuple):
        raise BadInputError(f"keep: must be a list of column names, got {keep!r}")
    for name in keep:
        if not isinstance(name, str) or not name.strip():
            raise BadInputError(f"keep: column names must be non-empty strings, got {name!r}")
    seen: set[str] = set()
    for name in keep:
        if name in seen:
            raise BadInputError(f"keep: column {name!r} is listed twice")
        seen.add(name)
    if salt is not None and salt_env is not None:
        raise BadInputError("hash_id_salt and hash_id_salt_env: give one, not both")
    if salt is not None and (not isinstance(salt, str) or not salt):
        raise BadInputError("hash_id_salt: must be a non-empty string")
    if salt_env is not None and (not isinstance(salt_env, str) or not salt_env):
        raise BadInputError("hash_id_salt_env: must name an environment variable")
    return tuple(keep)


def reserved(name: str, written_ids: tuple[str, ...]) -> bool:
    """Whether a kept column would clash with a column lakescore writes itself."""
    return name in OUTPUT_COLUMNS or name.startswith("score_") or name in written_ids


def resolve_salt(spec: JobSpec) -> bytes | None:
    """The salt's bytes (UTF-8), from the spec or the environment variable it names."""
    if spec.hash_id_salt_env is not None:
        value = os.environ.get(spec.hash_id_salt_env)
        if not value:
            raise BadInputError(
                f"hash_id_salt_env: environment variable {spec.hash_id_salt_env!r} "
                "is not set or empty"
            )
        return value.encode()
    return spec.hash_id_salt.encode() if spec.hash_id_salt is not None else None


def salt_id(salt: bytes) -> str:
    """A short public name of the salt: two runs' hashes join only where it is equal.

    It reveals no more than the hashes do (whoever knows an id and its hash can test a
    salt guess either way), so it may sit in the run record.
    """
    return hashlib.sha256(b"lakescore-salt-id\0" + salt).hexdigest()[:16]


def plan_outputs(
    spec: JobSpec,
    files: list[SourceFile],
    forest: kernels.Forest,
    scores: list[pa.Field] | None = None,
) -> OutputPlan:
    """Check the job's output columns against every file and list what will be written.

    The list follows :class:`engine.task.ScoringWorker`'s output table: the id column
    (or the locator columns without one), the score columns, the kept columns, ``run_id``.
    """
    from engine.outputs import score_fields
    from engine.task import LOCATOR_COLUMNS, RUN_ID_COLUMN  # engine.task imports this module

    if spec.id_column is not None:
        id_fields = [files[0].schema.field(spec.id_column)]
    else:
        id_fields = [pa.field(LOCATOR_COLUMNS[0], pa.string()),
                     pa.field(LOCATOR_COLUMNS[1], pa.int64())]  # fmt: skip
    trailing = [pa.field(RUN_ID_COLUMN, pa.dictionary(pa.int32(), pa.string()))]
    salt = resolve_salt(spec)
    if salt is not None:
        from engine.id_hash import hashable  # Numba: only for jobs that hash ids
    id_names = tuple(f.name for f in id_fields)
    if salt is not None and spec.id_column is None:
        raise BadInputError("hash_id_salt: the job has no id_column to hash")
    if salt is not None and not hashable(id_fields[0].type):
        raise BadInputError(
            f"id column {spec.id_column!r} has type {id_fields[0].type}: "
            "hash_id_salt hashes string or integer ids only"
        )
    for name in spec.keep:
        if name == spec.id_column:
            raise BadInputError(f"keep: {name!r} is the id column (it is written already)")
        if reserved(name, id_names):
            raise BadInputError(
                f"keep: {name!r} is the name of a column lakescore writes "
                "(score, score_<class>, label, run_id, variant, model_version, and the "
                "id or locator columns); rename it in the source"
            )
    first: dict[str, tuple[str, pa.DataType]] = {}
    for f in files:
        for name in spec.keep:
            if name not in f.schema.names:
                raise BadInputError(f"{f.path}: kept column {name!r} not found")
            dtype = f.schema.field(name).type
            path, expected = first.setdefault(name, (f.path, dtype))
            if dtype != expected:
                raise BadInputError(
                    f"{f.path}: kept column {name!r} has type {dtype}, but {path} has {expected}"
                )
    columns = OutputColumns(keep=spec.keep, hash_salt=salt)
    written_fields = [
        *(columns.id_field(f) if f.name == spec.id_column else f for f in id_fields),
        *(scores if scores is not None else score_fields(forest)),
        *columns.kept_fields(files[0].schema),
        *trailing,
    ]
    doc: dict[str, Any] = {}
    if spec.keep:
        doc["keep"] = list(spec.keep)
    if salt is not None:
        doc["id_hash"] = {
            "algorithm": HASH_ALGORITHM,
            "input": "salt UTF-8 || id (UTF-8 string, or decimal digits of an integer)",
            "output": "lowercase hex, 64 characters",
            "salt_id": salt_id(salt),
        }
    written = [{"name": f.name, "type": str(f.type)} for f in written_fields]
    return OutputPlan(columns=columns, written=written, doc=doc, schema=pa.schema(written_fields))
