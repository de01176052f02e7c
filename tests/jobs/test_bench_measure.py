"""``lakescore bench``'s measurements: the same rows for every contender, rows that reach
every leaf, and rows sampled from a source."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb
from scoring_helpers import feature_matrix

import kernels
from engine.bench.measure import agreement, measure_point, ratios
from engine.bench.native import load_native
from engine.bench.rows import generate_rows, sample_source


class Recording:
    """A real scorer that remembers every batch it was given."""

    def __init__(self, score):
        self.score = score
        self.batches: list[np.ndarray] = []

    def __call__(self, X: np.ndarray) -> np.ndarray:
        self.batches.append(X)
        return self.score(X)


@pytest.fixture(scope="module")
def forest(model_file: Path) -> kernels.Forest:
    return kernels.load_model(model_file)


def test_both_contenders_score_the_same_rows(model_file: Path, forest: kernels.Forest):
    X = generate_rows(forest, 3000, seed=3).X
    kernel = kernels.compile_model(forest, backend="numba", n_threads=1)
    native = load_native(model_file)
    ours = Recording(kernel.predict)
    theirs = Recording(lambda Xb: native.predict(Xb, 1))
    contenders = {"numba": ("lakescore", 1, ours), "native": ("xgboost", 1, theirs)}

    results = measure_point(X, contenders, batch_rows=1024, seconds=0.01)

    # every batch is a view of the one matrix, and both saw the same slices in order
    for rec in (ours, theirs):
        assert rec.batches and all(np.shares_memory(b, X) for b in rec.batches)
    n = min(len(ours.batches), len(theirs.batches))
    for a, b in zip(ours.batches[:n], theirs.batches[:n], strict=True):
        assert a.__array_interface__["data"] == b.__array_interface__["data"]
        assert a.shape == b.shape
    # ... and on those rows they agree (the ratio compares two correct contenders)
    check = agreement(ours, theirs, X)
    assert check["agree"] and check["max_abs_diff"] <= 1e-5 and check["rows"] == 3000
    assert {m.contender for m in results} == {"numba", "native"}
    assert all(m.rows >= 1024 and m.seconds > 0 for m in results)
    (ratio,) = ratios(results)
    assert ratio["ratio"] == pytest.approx(results[0].rows_per_s / results[1].rows_per_s)


def test_agreement_catches_a_wrong_contender(forest: kernels.Forest):
    X = generate_rows(forest, 500, seed=4).X
    kernel = kernels.compile_model(forest, backend="numba")
    check = agreement(kernel.predict, lambda Xb: kernel.predict(Xb) + 0.01, X)
    assert not check["agree"] and check["max_abs_diff"] == pytest.approx(0.01, rel=1e-3)


def test_generated_rows_reach_every_leaf(model_file: Path, forest: kernels.Forest):
    leaves = int((forest.feature < 0).sum())
    rows = generate_rows(forest, leaves, seed=0, nan_rate=0.05)
    assert rows.leaves == leaves and rows.leaves_targeted == leaves
    assert rows.X.dtype == np.float32 and rows.X.flags.c_contiguous
    assert 0 < np.isnan(rows.X).mean() <= 0.05
    booster = xgb.Booster(model_file=str(model_file))
    dm = xgb.DMatrix(rows.X, missing=np.nan, feature_names=booster.feature_names)
    reached = booster.predict(dm, pred_leaf=True).astype(np.int64)  # (rows, trees) node ids
    for t in range(forest.num_trees):
        lo, hi = forest.tree_offsets[t], forest.tree_offsets[t + 1]
        tree_leaves = set(np.flatnonzero(forest.feature[lo:hi] < 0).tolist())
        assert tree_leaves == set(np.unique(reached[:, t]).tolist()), f"tree {t}"


def test_rows_sampled_from_a_source_are_its_feature_matrix(
    lake: Path, lake_table, forest: kernels.Forest
):
    rows = sample_source(str(lake), forest, 700)
    assert rows.origin == str(lake) and rows.X.shape == (700, forest.num_features)
    expected = feature_matrix(lake_table)  # files in sorted order, as the sampler reads
    np.testing.assert_array_equal(rows.X, expected[:700])
    more = sample_source(str(lake), forest, 7000)  # more than the lake: repeated
    np.testing.assert_array_equal(more.X[6000:6100], expected[:100])


_SIMULATED_GPU = """
import json, sys
from pathlib import Path
import kernels
from engine.bench.backends import candidate_backends
from engine.bench.measure import agreement, ratios, run_sweep
from engine.bench.native import load_native
from engine.bench.rows import generate_rows

path = Path(sys.argv[1])
forest = kernels.load_model(path)
X = generate_rows(forest, 256, seed=5).X
native = load_native(path)
results = run_sweep(X, forest, ["numba", "cuda"], native, threads=[1], batches=[64, 128],
                    default_batch=128, seconds=0.0)
gpu = kernels.compile_model(forest, backend="cuda")
print(json.dumps({
    "cuda_reason": candidate_backends()["cuda"],
    "kernel": [m.to_dict() for m in results],
    "ratios": ratios(results),
    "agreement": agreement(gpu.predict, lambda Xb: native.predict(Xb, 1), X),
}))
"""


@pytest.mark.slow
def test_a_gpu_backend_is_measured_per_batch_size(model_file: Path, tmp_path: Path):
    """The CUDA path of the sweep, in Numba's simulator (its speed means nothing, so the
    bench itself refuses it: candidate_backends says why)."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    proc = subprocess.run([sys.executable, "-c", _SIMULATED_GPU, str(model_file)],
                          capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "simulator" in doc["cuda_reason"]
    gpu = [m for m in doc["kernel"] if m["contender"] == "cuda"]
    assert sorted(m["batch_rows"] for m in gpu) == [64, 128]
    assert all(m["threads"] is None and m["rows_per_s_per_core"] is None for m in gpu)
    # a GPU is compared with the native library at its most threads, same batch size
    cuda_ratios = [r for r in doc["ratios"] if r["backend"] == "cuda"]
    assert sorted(r["batch_rows"] for r in cuda_ratios) == [64, 128]
    assert doc["agreement"]["agree"]
