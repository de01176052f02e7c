"""``backend = "tl2cgen"`` in a job file: the run scores with the compiled library and
commits the same scores as the Numba kernel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scoring_helpers import ID, read_sink, run_record, scores_by_id

from engine import score
from kernels._tl2cgen import unavailable_reason


@pytest.mark.slow
@pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))
def test_job_file_backend_tl2cgen(cli, model_file: Path, lake: Path, tmp_path: Path) -> None:
    job = tmp_path / "job.toml"
    job.write_text(
        f'model = "{model_file}"\nsource = "{lake}"\nsink = "scores"\n'
        f'id_column = "{ID}"\nbackend = "tl2cgen"\n'
    )
    proc = cli("run", job)
    assert proc.returncode == 0, proc.stderr
    sink = tmp_path / "scores"
    (run_id,) = [p.name for p in sink.iterdir() if not p.name.startswith("_")]
    assert run_record(sink, run_id)["backend"] == "tl2cgen"
    numba = score(model_file, lake, tmp_path / "numba", id_column=ID, backend="numba")
    assert numba.record["backend"] == "numba"
    ours, theirs = scores_by_id(read_sink(sink)), scores_by_id(read_sink(tmp_path / "numba"))
    assert ours.keys() == theirs.keys()
    np.testing.assert_array_equal(list(ours.values()), [theirs[k] for k in ours])
