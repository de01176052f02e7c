"""``lakescore report`` of a Parquet sink on S3 (moto's server on 127.0.0.1)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyarrow import fs
from s3_helpers import s3fs
from scoring_helpers import ID

from engine import score
from engine.report import load_report, write_report


@pytest.mark.slow
def test_report_of_a_parquet_sink_on_s3(
    s3_lake: tuple[str, str],
    bucket: str,
    s3_env: str,
    tmp_path: Path,
) -> None:
    source, model = s3_lake
    sink = f"s3://{bucket}/pq"
    runs = [score(model, source, sink, id_column=ID).run_id for _ in range(2)]
    s3 = s3fs(s3_env)
    for run_id in runs:  # each committed run put its own report beside its record
        page = s3.get_file_info(f"{bucket}/pq/_lakescore/reports/{run_id}.html")
        assert page.type == fs.FileType.File and page.size > 1000

    data = load_report(sink)  # the history and the run's statistics, from the bucket
    assert [h["run_id"] for h in data.history] == runs
    assert data.feature_stats and data.drift  # quality tables uploaded beside the scores
    assert data.run_id == runs[-1] and data.record["rows"] == 3000
    out = tmp_path / "report.html"
    write_report(sink, str(out), run_id=runs[0])
    page = out.read_text()
    assert f"run {runs[0]}" in page and 'data-plot="history-rows"' in page
