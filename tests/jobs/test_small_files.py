"""A lake of many small files: they share tasks (one part file per task, batches put
together across files), every row is scored once, scores and locators are exact, and a
bad file among them is named."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from scoring_helpers import (
    ID,
    assert_scored_exactly,
    corrupt_first_page,
    oracle_scores,
    read_sink,
    read_source,
    snapshot,
    write_lake,
)

from engine import score
from engine.errors import BadInputError
from engine.plan import FILES_PER_TASK

TOL = 1e-6
FILES = 150  # per region: more than a task holds


@pytest.fixture(scope="module")
def small_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 regions x 150 files of 7 rows (odd, so that batches straddle files)."""
    root = tmp_path_factory.mktemp("small") / "lake"
    return write_lake(root, regions=("east", "west"), files_per_region=FILES, rows_per_file=7)


def test_small_files_share_tasks_and_every_row_is_scored_once(
    model_file: Path, small_lake: Path, tmp_path: Path
) -> None:
    sink = tmp_path / "scores"
    result = score(model_file, small_lake, sink, id_column=ID, batch_rows=64)
    source = read_source(small_lake)
    per_region = -(-FILES // FILES_PER_TASK)
    assert result.tasks == 2 * per_region  # a task never spans two regions
    parts = [p for p in sink.rglob("*.parquet") if "_lakescore" not in p.parts]
    assert len(parts) == result.tasks
    table = read_sink(sink)
    assert table.num_rows == source.num_rows == result.rows_scored == 2 * FILES * 7
    assert_scored_exactly(table, model_file, source, atol=TOL)
    # batches were put together across files: row groups of batch_rows, not of 7 rows
    sizes = [pq.ParquetFile(p).metadata.row_group(0).num_rows for p in parts]
    assert max(sizes) >= 64


def test_locators_point_into_each_small_file(
    model_file: Path, small_lake: Path, tmp_path: Path
) -> None:
    """Without an id column, ``source_file`` + ``row_number`` of a batch put together from
    several files still name each row's own file and row."""
    sink = tmp_path / "scores"
    score(model_file, small_lake, sink, batch_rows=50)
    table = read_sink(sink)
    assert table.num_rows == 2 * FILES * 7
    files = pc.unique(table.column("source_file")).to_pylist()
    assert len(files) == 2 * FILES
    for name in files[:: FILES // 5]:
        rows = table.filter(pc.equal(table.column("source_file"), name))
        numbers = rows.column("row_number").to_numpy()
        assert sorted(numbers.tolist()) == list(range(7))
        located = pq.read_table(small_lake / name).take(pa.array(numbers))
        np.testing.assert_allclose(
            rows.column("score").to_numpy(), oracle_scores(model_file, located), rtol=0, atol=TOL
        )


def test_a_corrupt_small_file_is_named_and_the_sink_untouched(
    model_file: Path, small_lake: Path, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(small_lake, lake)
    bad = sorted((lake / "region=west").glob("*.parquet"))[40]
    corrupt_first_page(bad)
    sink = tmp_path / "scores"
    before = snapshot(sink)
    with pytest.raises(BadInputError, match=bad.name):
        score(model_file, lake, sink, id_column=ID)
    assert snapshot(sink) == before
