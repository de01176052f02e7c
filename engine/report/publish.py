"""Write a report: where ``lakescore report`` asks, and beside every committed run.

A file is written aside and renamed into place (locally), or put in one request (object
storage), so a reader never sees half a report.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

import pyarrow.fs as pafs

from engine._fsutil import atomic_write_bytes
from engine.report.html import render
from engine.report.load import META, ReportData, load_report
from engine.storage import Storage, fs_and_path, is_uri

REPORTS = "reports"


def run_report_path(sink: str, run_id: str) -> str:
    """Where a run's own report lives: ``<sink>/_lakescore/reports/<run_id>.html``."""
    return posixpath.join(str(sink).rstrip("/"), META, REPORTS, f"{run_id}.html")


def write_report(
    target: str,
    output: str,
    *,
    run_id: str | None = None,
    storage: Storage | None = None,
) -> ReportData:
    """Render the report of ``target`` (a sink or a run record) into ``output``."""
    data = load_report(target, run_id=run_id, storage=storage)
    _put(output, render(data).encode("utf-8"), storage)
    return data


def write_run_report(sink: str, run_id: str, storage: Storage | None = None) -> str | None:
    """Write a committed run's own report unless it is there already (a re-run of a
    committed run changes nothing); returns its path, or None when it existed."""
    path = run_report_path(sink, run_id)
    fs, where = fs_and_path(path, storage)
    if fs.get_file_info(where).type == pafs.FileType.File:
        return None
    write_report(sink, path, run_id=run_id, storage=storage)
    return path


def _put(path: str, data: bytes, storage: Storage | None) -> None:
    if not is_uri(path):
        atomic_write_bytes(Path(path), data)
        return
    fs, where = fs_and_path(path, storage)
    with fs.open_output_stream(where) as out:  # an S3 put: atomic for readers
        out.write(data)
