"""What a report shows, read from a sink's ``_lakescore/`` folder (local or ``s3://``).

Everything comes from what a run leaves in the lake, through one :mod:`pyarrow.fs`
filesystem: the run records (JSON, ``run_records/``; ``runs/`` in sinks written before the
tables existed), the ``runs`` table for the history, the run's own rows of
``feature_stats``, ``score_stats`` and ``drift`` (``<table>/<run_id>.parquet``), and the
latest evaluation of the run in ``variant_performance``. Every table may be missing (a
failed run, a sink from before the tables): the report leaves its section out.
A ``variant`` column in ``score_stats``/``drift`` (null: the whole run) splits rows per
variant when present.
"""

from __future__ import annotations

import json
import logging
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from engine.errors import BadInputError
from engine.storage import Storage, fs_and_path, is_uri

log = logging.getLogger("lakescore.report")

META = "_lakescore"
RECORD_DIRS = ("run_records", "runs")  # runs/: JSON records of sinks from before the tables
HISTORY_COLUMNS = (
    "run_id",
    "started_at",
    "finished_at",
    "status",
    "rows",
    "seconds",
    "rows_per_second",
    "drift_status",
)


@dataclass
class ReportData:
    """One run of a sink, with the sink's history."""

    sink: str
    run_id: str
    #: the run record, or the run's row of ``runs`` (checks parsed) when it has no record
    record: dict[str, Any]
    #: every run of the sink, oldest first: HISTORY_COLUMNS each
    history: list[dict[str, Any]]
    feature_stats: list[dict[str, Any]] = field(default_factory=list)
    score_stats: list[dict[str, Any]] = field(default_factory=list)
    drift: list[dict[str, Any]] = field(default_factory=list)
    #: rows of score_stats / drift for one variant (their ``variant`` is set)
    variant_score_stats: list[dict[str, Any]] = field(default_factory=list)
    variant_drift: list[dict[str, Any]] = field(default_factory=list)
    #: the rows of the run's latest evaluation, one per variant
    variant_performance: list[dict[str, Any]] = field(default_factory=list)

    def variants(self) -> list[tuple[str, dict[str, Any]]]:
        """The run record's ``variants`` in the plan's order (the record's JSON keys are
        sorted)."""
        docs = self.record.get("variants") or {}
        order = (self.record.get("variant_plan") or {}).get("order") or []
        names = [n for n in order if n in docs] + sorted(n for n in docs if n not in order)
        return [(n, docs[n]) for n in names]


class _Meta:
    """The ``_lakescore`` folder of a sink on a pyarrow filesystem."""

    def __init__(self, sink: str, storage: Storage | None) -> None:
        self.fs, root = fs_and_path(sink, storage)
        self.root = posixpath.join(root, META)

    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def files(self, folder: str, suffix: str) -> list[str]:
        """Paths of the files ending in ``suffix`` directly in ``folder`` (hidden skipped)."""
        selector = pafs.FileSelector(self.path(folder), allow_not_found=True)
        try:
            infos = self.fs.get_file_info(selector)
        except OSError as exc:
            raise BadInputError(f"{self.path(folder)}: cannot list ({exc})") from None
        return sorted(
            i.path
            for i in infos
            if i.type == pafs.FileType.File
            and i.base_name.endswith(suffix)
            and not i.base_name.startswith(".")
        )

    def exists(self, *parts: str) -> bool:
        return self.fs.get_file_info(self.path(*parts)).type == pafs.FileType.File

    def read_json(self, path: str) -> Any:
        try:
            with self.fs.open_input_stream(path) as fh:
                return json.loads(fh.read())
        except (OSError, ValueError) as exc:
            raise BadInputError(f"{path}: unreadable run record ({exc})") from None

    def read_rows(self, table: str, run_id: str) -> list[dict[str, Any]]:
        """The run's rows of ``table`` (its one file), or none when it has no file."""
        path = self.path(table, f"{run_id}.parquet")
        if not self.exists(table, f"{run_id}.parquet"):
            return []
        try:
            with self.fs.open_input_file(path) as fh:
                return pq.ParquetFile(fh).read().to_pylist()  # lighter than pq.read_table
        except (OSError, pa.ArrowException) as exc:
            raise BadInputError(f"{path}: unreadable ({exc})") from None

    def read_table(self, table: str, columns: tuple[str, ...]) -> pa.Table | None:
        """Every file of ``table`` as one table of those ``columns`` it has (a column that
        older files lack is null in their rows)."""
        files = self.files(table, ".parquet")
        if not files:
            return None
        import pyarrow.dataset as ds  # here: it imports pandas (0.2 s), which workers skip

        try:
            dataset = ds.dataset(files, format="parquet", filesystem=self.fs)
            present = [c for c in columns if c in dataset.schema.names]
            return dataset.to_table(columns=present)
        except (OSError, pa.ArrowException) as exc:
            raise BadInputError(f"{self.path(table)}: unreadable ({exc})") from None


def resolve_target(target: str, run_id: str | None = None) -> tuple[str, str | None]:
    """``(sink, run id or None)`` of a sink folder or a run record path."""
    text = str(target).rstrip("/")
    if text.endswith(".json"):
        folder, name = posixpath.split(text)
        meta, records = posixpath.split(folder)
        if records not in RECORD_DIRS or posixpath.basename(meta) != META:
            raise BadInputError(
                f"{target}: not a run record (expected <sink>/{META}/run_records/<run_id>.json)"
            )
        found = name[: -len(".json")]
        if run_id is not None and run_id != found:
            raise BadInputError(f"--run {run_id}: the run record given is run {found}")
        return posixpath.dirname(meta) or ".", found
    return text or ".", run_id


def load_report(
    target: str, *, run_id: str | None = None, storage: Storage | None = None
) -> ReportData:
    """Read what the report of ``target`` (a sink, or a run record) needs.

    Without ``run_id`` the report is on the sink's latest run (by start time), whatever
    its status. A sink with no run is bad input.
    """
    sink, run_id = resolve_target(target, run_id)
    if not is_uri(sink) and not Path(sink).is_dir():
        raise BadInputError(f"sink {sink}: not found (expected a sink folder or run record)")
    meta = _Meta(sink, storage)
    records = _record_paths(meta)
    history = _history(meta, records)
    if not history:
        raise BadInputError(f"sink {sink}: no runs to report (nothing under {sink}/{META}/)")
    if run_id is None:
        run_id = history[-1]["run_id"]
    elif run_id not in {h["run_id"] for h in history}:
        raise BadInputError(f"sink {sink}: no run {run_id!r}")
    record = meta.read_json(records[run_id]) if run_id in records else {}
    if not record:  # only the runs table knows the run
        record = dict(next(h for h in history if h["run_id"] == run_id))
        record.update(_runs_row(meta, run_id))
    data = ReportData(sink=sink, run_id=run_id, record=record, history=history)
    data.feature_stats = meta.read_rows("feature_stats", run_id)
    data.score_stats, data.variant_score_stats = _split(meta.read_rows("score_stats", run_id))
    data.drift, data.variant_drift = _split(meta.read_rows("drift", run_id))
    data.variant_performance = _latest_evaluation(meta, run_id)
    return data


def _record_paths(meta: _Meta) -> dict[str, str]:
    out: dict[str, str] = {}
    for folder in reversed(RECORD_DIRS):  # run_records/ wins over a legacy copy
        out.update({posixpath.basename(p)[: -len(".json")]: p for p in meta.files(folder, ".json")})
    return out


def _history(meta: _Meta, records: dict[str, str]) -> list[dict[str, Any]]:
    """Every run: the ``runs`` table's rows, and the records of runs it lacks (failed
    runs, runs from before the tables)."""
    runs: dict[str, dict[str, Any]] = {}
    table = meta.read_table("runs", HISTORY_COLUMNS)
    if table is not None:
        runs = {r["run_id"]: r for r in table.to_pylist()}
    for run_id, path in records.items():
        if run_id in runs:
            continue
        try:
            record = meta.read_json(path)
        except BadInputError as exc:  # a torn record must not hide the others
            log.warning("run record %s unreadable: %s", path, exc)
            continue
        row = {c: record.get(c) for c in HISTORY_COLUMNS}
        row["run_id"] = run_id
        statuses = (record.get("drift_status") or {}).values()
        row["drift_status"] = max(statuses, key=("ok", "warn", "fail").index, default=None)
        runs[run_id] = row
    return sorted(runs.values(), key=lambda r: (r.get("started_at") or "", r["run_id"]))


def _runs_row(meta: _Meta, run_id: str) -> dict[str, Any]:
    rows = meta.read_rows("runs", run_id)
    if not rows:
        return {}
    row = dict(rows[0])
    for key in ("checks", "stage_seconds"):
        if isinstance(row.get(key), str):
            row[key] = json.loads(row[key])
    return row


def _split(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Whole-run rows and per-variant rows (``variant`` set)."""
    whole = [r for r in rows if r.get("variant") is None]
    return whole, [r for r in rows if r.get("variant") is not None]


def _latest_evaluation(meta: _Meta, run_id: str) -> list[dict[str, Any]]:
    files = meta.files("variant_performance", ".parquet")
    if not files:
        return []
    import pyarrow.dataset as ds

    dataset = ds.dataset(files, format="parquet", filesystem=meta.fs)
    rows = dataset.to_table(filter=ds.field("run_id") == run_id).to_pylist()
    if not rows:
        return []
    latest = max((r["evaluated_at"] or "", r["evaluation_id"]) for r in rows)[1]
    return [r for r in rows if r["evaluation_id"] == latest]
