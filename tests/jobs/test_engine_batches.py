"""Workers stream record batches of at most ``batch_rows`` rows (memory stays bounded)."""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow.parquet as pq
from scoring_helpers import ID, read_sink

import engine.features
from engine import score


def test_batches_never_exceed_batch_rows(model_file: Path, lake: Path, tmp_path: Path, monkeypatch):
    built: list[int] = []
    buffers: list[int] = []
    lock = threading.Lock()
    build = engine.features.FeatureMatrixBuilder.build

    def spy(self, batch, each=None):
        out = build(self, batch, each)
        with lock:
            built.append(batch.num_rows)
            buffers.append(self._buffer.size // len(self.columns))
        return out

    monkeypatch.setattr(engine.features.FeatureMatrixBuilder, "build", spy)
    sink = tmp_path / "scores"
    # A region's two 500-row files share a task (row groups of 128): batches must split
    # the row groups and never join two files' batches beyond batch_rows.
    result = score(model_file, lake, sink, id_column=ID, batch_rows=48)

    assert result.tasks == 3
    assert sum(built) == result.rows_scored == 3000
    assert max(built) <= 48
    assert max(buffers) <= 48  # the feature buffer is sized by the batch, not the task
    assert len(built) >= 3000 // 48
    for part in (sink / result.run_id).glob("*.parquet"):  # written batch by batch too
        meta = pq.ParquetFile(part).metadata
        assert meta.num_row_groups >= 10
        assert max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) <= 48
    assert read_sink(sink).num_rows == 3000
