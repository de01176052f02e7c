"""``lakescore demo``: a generated lake and model, scored, with a summary."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest
from scoring_helpers import read_sink, run_ids, run_record

from engine import demo


@pytest.mark.slow
def test_demo(cli, tmp_path: Path) -> None:
    root = tmp_path / "demo"
    proc = cli("demo", "--rows", "20000", "--dir", root, timeout=300)

    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "scored 20,000 rows" in out
    assert re.search(r"\(\d[\d,]* rows/s\)", out)
    paths = demo.DemoPaths(root)
    (run_id,) = run_ids(paths.sink)
    for path in (paths.sink / run_id, paths.model, paths.lake):
        assert str(path) in out
    assert "\r" not in proc.stderr  # no progress bar when stderr is not a terminal

    sink = read_sink(paths.sink)
    assert sink.num_rows == 20000
    assert pc.count_distinct(sink.column("customer_id")).as_py() == 20000
    assert run_record(paths.sink, run_id)["rows"] == 20000

    lake = ds.dataset(paths.lake, partitioning="hive")
    assert lake.count_rows() == 20000
    regions = {p.name for p in paths.lake.iterdir() if p.is_dir()}
    assert regions == {f"region={r}" for r in demo.REGIONS}
    assert set(pc.unique(lake.to_table(columns=["region"])["region"]).to_pylist()) == set(
        demo.REGIONS
    )


def test_demo_rejects_non_positive_rows(cli, tmp_path: Path) -> None:
    proc = cli("demo", "--rows", "0", "--dir", tmp_path / "demo")
    assert proc.returncode == 2
    assert "--rows" in proc.stderr
    assert not (tmp_path / "demo").exists()
