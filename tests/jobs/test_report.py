"""``lakescore report``: the report of a sink's run from its lake tables, written beside
every committed run, and the CLI."""

from __future__ import annotations

import logging
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from datasketches import kll_floats_sketch
from scoring_helpers import FEATURES, ID, error_line, read_sink, snapshot
from test_engine_quality import shifted_lake
from test_evaluate import write_outcomes
from variant_helpers import make_registry, train_challenger, variants_job

import engine.task
from engine import score
from engine.coordinator import run_job
from engine.errors import BadInputError, ExecutionError
from engine.evaluate import Evaluation, evaluate
from engine.quality.tables import STATS_SCHEMA
from engine.report import load_report, render, run_report_path, write_report
from engine.report.html import CSP
from engine.run_summary import RunSummary
from engine.spec import JobSpec, load_job_file

#: The plots of a whole run's report with drift (a sink with a reference and history).
RUN_PLOTS = (
    "score-distribution",
    "drift-psi",
    "feature-distribution",
    "null-rates",
    "history-rows",
    "history-rows-per-second",
)


@pytest.fixture(scope="module")
def sink(model_file: Path, lake: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three committed runs: a first (no reference), the same data (ok), then ``age``
    moved by 25 years (drift fails)."""
    root = tmp_path_factory.mktemp("report")
    out = root / "scores"
    moved = shifted_lake(lake, root / "moved", "age", 25.0)
    statuses = [
        score(model_file, source, out, id_column=ID).status for source in (lake, lake, moved)
    ]
    assert statuses == ["ok", "ok", "fail"]
    return out


def history_ids(sink: Path) -> list[str]:
    return [h["run_id"] for h in load_report(str(sink)).history]


def test_every_committed_run_writes_its_report(model_file: Path, lake: Path, sink: Path) -> None:
    runs = history_ids(sink)
    reports = sink / "_lakescore" / "reports"
    assert sorted(p.name for p in reports.iterdir()) == sorted(f"{r}.html" for r in runs)
    for n, run_id in enumerate(runs):
        page = Path(run_report_path(str(sink), run_id)).read_text()
        assert f"<title>lakescore report: run {run_id}</title>" in page
        assert page.count('class="plot"') >= 3
        # written at the run's commit: its history is the runs up to it
        assert all(r in page for r in runs[: n + 1]) and not any(r in page for r in runs[n + 1 :])
    # A webhook's ``report`` is the committed run's own page.
    spec = JobSpec(model="m", source="src", sink=str(sink))
    summary = RunSummary.of(spec, {"run_id": runs[-1], "status": "fail"})
    assert Path(summary.report).is_file()
    # Re-running a committed run commits nothing and leaves its report as it was.
    before = snapshot(sink)
    again = score(model_file, lake, sink, id_column=ID, run_id=runs[0])
    assert again.rows_scored == 3000
    assert snapshot(sink) == before


def test_load_report_reads_the_runs_and_their_tables(sink: Path) -> None:
    data = load_report(str(sink))
    first, second, third = data.history
    assert data.run_id == third["run_id"]  # the latest run by default
    assert [h["status"] for h in data.history] == ["ok", "ok", "fail"]
    assert [h["rows"] for h in data.history] == [3000] * 3
    assert data.record["status"] == "fail" and data.record["reference"] == f"run:{second['run_id']}"
    assert {s["column"] for s in data.feature_stats} == set(FEATURES)
    assert [s["column"] for s in data.score_stats] == ["score"]
    drift = {d["column"]: d for d in data.drift}
    assert set(drift) == {*FEATURES, "score"}
    assert drift["age"]["status"] == "fail" and drift["age"]["psi"] > 0.25
    assert data.variant_score_stats == data.variant_drift == data.variant_performance == []

    # a run by id, or by its record's path: the first run has no reference, hence no drift
    record = sink / "_lakescore" / "run_records" / f"{first['run_id']}.json"
    for by_id in (load_report(str(sink), run_id=first["run_id"]), load_report(str(record))):
        assert by_id.run_id == first["run_id"]
        assert by_id.record["reference"] is None and by_id.drift == []
        assert len(by_id.history) == 3
    with pytest.raises(BadInputError, match="the run record given is run"):
        load_report(str(record), run_id=second["run_id"])
    with pytest.raises(BadInputError, match="no run 'nope'"):
        load_report(str(sink), run_id="nope")
    with pytest.raises(BadInputError, match="not a run record"):
        load_report(str(sink / "_lakescore" / "profiles" / f"{first['run_id']}.json"))


def test_the_report_shows_drift_nulls_and_history(sink: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    data = write_report(str(sink), str(out))
    page = out.read_text()
    assert page == render(data)  # the same data, the same bytes
    for kind in RUN_PLOTS:
        assert f'data-plot="{kind}"' in page, kind
    assert "age: share of rows per reference bin (PSI" in page
    assert (
        "<svg" in page
        and "<script" not in page
        and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )


def test_a_failed_run_is_reported_from_its_record(
    model_file: Path, lake: Path, sink: Path, tmp_path: Path, monkeypatch
) -> None:
    copy = tmp_path / "scores"
    shutil.copytree(sink, copy)
    monkeypatch.setattr(
        engine.task.ScoringWorker, "__call__", lambda self, t: (_ for _ in ()).throw(OSError("x"))
    )
    with pytest.raises(ExecutionError):
        score(model_file, lake, copy, id_column=ID)
    monkeypatch.undo()
    data = load_report(str(copy))
    assert [h["status"] for h in data.history] == ["ok", "ok", "fail", "failed"]
    assert data.record["status"] == "failed" and "x" in data.record["error"]
    assert data.feature_stats == data.drift == []  # a failed run adds no table rows
    page = render(data)
    assert 'class="badge failed"' in page and "no feature statistics" in page
    assert len(list((copy / "_lakescore" / "reports").iterdir())) == 3  # none for it


def test_a_report_that_cannot_be_written_is_a_warning(
    model_file: Path, lake: Path, tmp_path: Path, caplog
) -> None:
    out = tmp_path / "scores"
    (out / "_lakescore").mkdir(parents=True)
    (out / "_lakescore" / "reports").write_text("a file where the folder goes")
    with caplog.at_level(logging.WARNING, logger="lakescore.after_run"):
        result = score(model_file, lake, out, id_column=ID)
    assert result.status == "ok" and read_sink(out).num_rows == 3000  # committed all the same
    (warning,) = [r for r in caplog.records if r.name == "lakescore.after_run"]
    assert f"report of run {result.run_id} not written" in warning.getMessage()


def test_per_variant_score_rows_are_plotted_when_the_table_has_them(
    sink: Path, tmp_path: Path
) -> None:
    """``score_stats`` with a ``variant`` column (null: the whole run) draws each variant's
    distribution on shared bins."""
    copy = tmp_path / "scores"
    shutil.copytree(sink, copy)
    run_id = history_ids(copy)[-1]
    path = copy / "_lakescore" / "score_stats" / f"{run_id}.parquet"
    (whole,) = pq.read_table(path).to_pylist()
    table = read_sink(copy)
    values = table.filter(pc.equal(table["run_id"], run_id))["score"].to_numpy()
    rows = [{**whole, "variant": None}]
    for name, part in (("champion", values[:2000]), ("challenger", values[2000:] * 0.5)):
        sketch = kll_floats_sketch(200)
        sketch.update(part.astype(np.float32))
        rows.append(
            {
                **whole,
                "variant": name,
                "rows": len(part),
                "kll": sketch.serialize(),
                "min": float(part.min()),
                "max": float(part.max()),
                "hist_edges": None,
                "hist_counts": None,
            }
        )
    schema = STATS_SCHEMA.append(pa.field("variant", pa.string()))
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)

    data = load_report(str(copy))
    assert [r["variant"] for r in data.score_stats] == [None]
    assert [r["variant"] for r in data.variant_score_stats] == ["champion", "challenger"]
    page = render(data)
    assert 'data-plot="variant-scores"' in page
    assert "champion, " in page and "challenger, " in page  # one series per variant


def test_cli_report(cli, sink: Path, tmp_path: Path) -> None:
    out = tmp_path / "nested" / "report.html"
    proc = cli("report", sink, "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert out.read_text().startswith("<!DOCTYPE html>")
    run_id = history_ids(sink)[-1]
    assert f"report of run {run_id} (status fail; 3 run(s)" in proc.stdout

    empty = tmp_path / "empty"
    empty.mkdir()
    for target, named in ((empty, "no runs to report"), (tmp_path / "missing", "not found")):
        proc = cli("report", target, "-o", tmp_path / "x.html")
        assert proc.returncode == 2
        assert named in error_line(proc) and str(target) in error_line(proc)
    assert not (tmp_path / "x.html").exists()

    damaged = tmp_path / "damaged"
    shutil.copytree(sink, damaged)
    table = damaged / "_lakescore" / "drift" / f"{run_id}.parquet"
    table.write_bytes(b"not parquet")
    proc = cli("report", damaged, "-o", tmp_path / "x.html")
    assert proc.returncode == 2 and f"{table}: unreadable" in error_line(proc)


@pytest.fixture(scope="module")
def evaluated_variant_run(
    model_file: Path, lake: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Evaluation]:
    """A champion/challenger run evaluated twice on outcomes (the challenger converts
    better): its sink and the last evaluation."""
    root = tmp_path_factory.mktemp("report-variants")
    train_challenger(root / "challenger.json")
    make_registry(root / "reg", model_file, root / "challenger.json")
    run_job(
        load_job_file(variants_job(root, lake, root / "reg", weights=(0.5, 0.5))), progress=False
    )
    sink = root / "scores"
    for seed in (1, 2):
        outcomes = write_outcomes(
            sink,
            root / f"outcomes-{seed}.parquet",
            {"champion": 0.05, "challenger": 0.2},
            seed=seed,
        )
        last = evaluate(sink, outcomes)
    return sink, last


def test_variants_and_their_performance(evaluated_variant_run: tuple[Path, Evaluation]) -> None:
    sink, evaluation = evaluated_variant_run
    data = load_report(str(sink))
    # the run's latest evaluation only, one row per variant
    assert {r["evaluation_id"] for r in data.variant_performance} == {evaluation.evaluation_id}
    assert [r["variant"] for r in data.variant_performance] == ["champion", "challenger"]
    page = render(data)
    for kind in ("variant-scores", "variant-conversion", "variant-auc", "variant-lift"):
        assert f'data-plot="{kind}"' in page, kind
    assert 'id="variants"' in page and 'id="performance"' in page
    challenger = data.variant_performance[1]
    assert f"{challenger['conversion_rate']:.2%}" in page  # the rate in the table
    # the per-variant score distribution comes from score_stats' rows per variant, on
    # shared bins (not the record's quantile boxes)
    assert {r["variant"] for r in data.variant_score_stats} == {"champion", "challenger"}
    assert (
        "Score distribution per variant" in page
        and "Score distribution per variant (p01" not in page
    )


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("no chromium binary on PATH (Debian's `chromium`; `make test` installs it)")


def open_in_chromium(page: Path, profile: Path) -> tuple[str, list[str]]:
    """The DOM headless Chromium built from ``page``, and the console lines it logged."""
    proc = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return proc.stdout, console


@pytest.mark.slow
def test_reports_render_in_headless_chromium_without_console_errors(
    sink: Path, evaluated_variant_run: tuple[Path, Evaluation], tmp_path: Path
) -> None:
    # The check itself: a page with our policy that tries to load something is caught.
    bad = tmp_path / "bad.html"
    bad.write_text(
        f'<!DOCTYPE html><meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<img src="http://127.0.0.1:9/x.png">'
    )
    _, console = open_in_chromium(bad, tmp_path / "profile")
    assert any("Content Security Policy" in line for line in console), console

    expected = {
        sink: list(RUN_PLOTS),
        evaluated_variant_run[0]: [
            "score-distribution",
            "null-rates",
            "history-rows",
            "variant-scores",
            "variant-conversion",
            "variant-auc",
            "variant-lift",
        ],
    }
    for n, (target, kinds) in enumerate(expected.items()):
        page = tmp_path / f"report-{n}.html"
        write_report(str(target), str(page))
        dom, console = open_in_chromium(page, tmp_path / "profile")
        assert console == [], console
        plots = Plots()
        plots.feed(dom)
        assert set(kinds) <= {kind for kind, _ in plots.found}, plots.found
        assert all(title for _, title in plots.found)  # every plot has its title
        assert "lakescore report: run" in dom and 'id="summary"' in dom


class Plots(HTMLParser):
    """``(data-plot, title)`` of every ``<svg class="plot">`` in a DOM dump."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []
        self._depth = 0  # inside an svg: its title is the first <title> met
        self._title: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "svg" and a.get("class") == "plot":
            self.found.append((a.get("data-plot") or "", ""))
            self._title = []
        elif tag == "title" and self._title == [] and self.found and not self.found[-1][1]:
            self._depth = 1

    def handle_data(self, data: str) -> None:
        if self._depth and self._title is not None:
            self._title.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._depth and self._title is not None:
            self.found[-1] = (self.found[-1][0], "".join(self._title))
            self._depth, self._title = 0, None
