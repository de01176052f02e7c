"""Run reports: one self-contained HTML page per run (``lakescore report``).

:mod:`~engine.report.load` reads a sink's run records and quality tables,
:mod:`~engine.report.plots` turns them into SVG with the primitives of
:mod:`~engine.report.svg`, :mod:`~engine.report.html` lays out the page and
:mod:`~engine.report.publish` writes it, beside every committed run too.
"""

from engine.report.html import render
from engine.report.load import ReportData, load_report
from engine.report.publish import run_report_path, write_report, write_run_report

__all__ = [
    "ReportData",
    "load_report",
    "render",
    "run_report_path",
    "write_report",
    "write_run_report",
]
