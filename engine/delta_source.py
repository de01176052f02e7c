"""A Delta table as the source: the files of one version of the table, with time travel.

Planning reads the Delta log for the version asked for (the latest, ``--source-version N``
or the version current at ``--source-timestamp``) and lists that version's data files and
their partition values; tasks are row groups of those files, exactly as for a Parquet
source. The version read is recorded in the run record, so a run says which snapshot it
scored. Tables whose files alone do not give their rows (deletion vectors, column mapping)
are refused rather than scored wrongly.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from engine.errors import BadInputError
from engine.source import one_line
from engine.storage import is_uri

DELTA_LOG = "_delta_log"
#: reader features whose tables cannot be read file by file
_UNSUPPORTED_FEATURES = ("deletionVectors", "columnMapping")


@dataclass(frozen=True)
class DeltaSnapshot:
    """One version of a Delta table: its data files and each file's partition values."""

    root: str
    version: int
    #: (path or URI, its path under the root, partition values)
    files: list[tuple[str, str, dict[str, str | None]]]


def is_delta_source(source: str, storage_options: dict[str, str] | None = None) -> bool:
    if is_uri(source):
        from deltalake import DeltaTable

        try:
            return DeltaTable.is_deltatable(source, storage_options=storage_options)
        except Exception:  # an unreachable store is reported when the source is listed
            return False
    return (Path(source) / DELTA_LOG).is_dir()


def parse_timestamp(text: str) -> dt.datetime:
    """An ISO 8601 time; without a zone it is UTC."""
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise BadInputError(
            f"--source-timestamp {text!r}: not an ISO 8601 time (e.g. 2026-11-01T00:00:00Z)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def open_snapshot(
    source: str,
    *,
    version: int | None = None,
    timestamp: str | None = None,
    storage_options: dict[str, str] | None = None,
) -> DeltaSnapshot:
    """The files of ``source`` at ``version`` or ``timestamp`` (the latest by default)."""
    from deltalake import DeltaTable

    if version is not None and timestamp is not None:
        raise BadInputError("--source-version and --source-timestamp: give one, not both")
    try:
        table = DeltaTable(source, storage_options=storage_options)
    except Exception as exc:  # deltalake's errors come from Rust with several types
        raise BadInputError(
            f"source {source}: not a readable Delta table ({one_line(exc)})"
        ) from None
    latest = table.version()
    try:
        if version is not None:
            table.load_as_version(version)
        elif timestamp is not None:
            when = parse_timestamp(timestamp)
            table.load_as_version(when)
            _check_not_before_the_table(source, table, when, storage_options)
    except BadInputError:
        raise
    except Exception as exc:
        asked = f"version {version}" if version is not None else f"timestamp {timestamp}"
        raise BadInputError(
            f"source {source}: no {asked} (versions 0..{latest}; {one_line(exc)})"
        ) from None
    _check_protocol(source, table)
    root = source.rstrip("/") if is_uri(source) else os.path.abspath(source)
    partitions = _partition_values(table)
    files = []
    for uri in table.file_uris():
        rel = uri[len(root) + 1 :] if uri.startswith(root + "/") else uri.rsplit("/", 1)[-1]
        files.append((uri, rel, partitions.get(rel, {})))
    return DeltaSnapshot(root=root, version=table.version(), files=sorted(files))


def _check_not_before_the_table(
    source: str, table: Any, when: dt.datetime, storage_options: dict[str, str] | None
) -> None:
    """deltalake answers version 0 for a time before the table existed: refuse that."""
    from deltalake import DeltaTable

    if table.version() != 0:
        return
    history = DeltaTable(source, storage_options=storage_options).history()
    first = min(h["timestamp"] for h in history if h.get("version") == 0)
    if when.timestamp() * 1000 < first:
        created = dt.datetime.fromtimestamp(first / 1000, dt.UTC).isoformat()
        raise BadInputError(f"source {source}: no timestamp {when.isoformat()} (created {created})")


def _check_protocol(source: str, table: Any) -> None:
    features = table.protocol().reader_features or []
    for feature in _UNSUPPORTED_FEATURES:
        if feature in features:
            raise BadInputError(
                f"source {source}: the Delta table uses {feature}, which lakescore cannot read"
            )


def _partition_values(table: Any) -> dict[str, dict[str, str | None]]:
    """Partition values by the file's path relative to the table root."""
    import pyarrow as pa

    columns = table.metadata().partition_columns
    if not columns:
        return {}
    actions = pa.table(table.get_add_actions(flatten=True)).to_pylist()
    return {
        unquote(a["path"]): {c: _text(a.get(f"partition.{c}")) for c in columns} for a in actions
    }


def _text(value: object) -> str | None:
    return None if value is None else str(value)
