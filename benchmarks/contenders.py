"""The contenders every benchmark model runs through: lakescore's backends and the native
libraries, each built from the model file and timed from file to first prediction.

- ``numba``: ``kernels.compile_model(backend="numba")`` (Numba's machine code cached on
  disk as usual, so ``ready`` is layout plus a cache load once warm);
- ``tl2cgen``: ``kernels.compile_model(backend="tl2cgen")``, its library kept in
  ``benchmarks/.cache/lakescore/kernels/`` (compiling 500 trees takes minutes); ``ready``
  is the build time when this run built it, else the cached load, and the time of the
  build that made the cached library is kept beside it and shown as ``build``;
- ``native``: the model's own library (XGBoost ``inplace_predict``, LightGBM ``predict``,
  scikit-learn ``predict``);
- ``gtil``: treelite's reference interpreter ``treelite.gtil.predict`` on the model as
  treelite's own frontend reads it.

Each ``make_*`` returns a :class:`Contender`: ``score(X)`` and ``ready_s``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import kernels
from kernels.cache import LibraryCache, kernel_key


@dataclass
class Contender:
    score: Callable[[np.ndarray], np.ndarray]
    ready_s: float  # model file -> first prediction, in this process
    note: str = ""


def _first(score: Callable[[np.ndarray], np.ndarray], n_features: int) -> None:
    score(np.zeros((1, n_features), dtype=np.float32))


def make_lakescore(
    path: Path, backend: str, n_threads: int, *, trust_pickle: bool = False
) -> Contender:
    start = time.perf_counter()
    forest = kernels.load_model(path, trust_pickle=trust_pickle)
    build_log = _build_log(forest) if backend == "tl2cgen" else None
    was_cached = build_log is not None and LibraryCache().get(kernel_key(forest, backend))
    kernel = kernels.compile_model(forest, backend=backend, n_threads=n_threads)
    _first(kernel.predict, forest.num_features)
    ready = time.perf_counter() - start
    note = ""
    if build_log is not None and not was_cached:
        build_log.write_text(json.dumps({"seconds": ready, "trees": forest.num_trees}))
        note = f"built in this run ({ready:.0f} s)"
    elif build_log is not None:
        built = json.loads(build_log.read_text())["seconds"] if build_log.exists() else None
        note = f"cached library; its build took {built:.0f} s" if built else "cached library"
    return Contender(kernel.predict, ready, note)


def _build_log(forest: kernels.Forest) -> Path:
    """Where a TL2cgen build's duration is kept, beside its cached library."""
    store = LibraryCache()
    store.root.mkdir(parents=True, exist_ok=True)
    return store.root / f"{kernel_key(forest, 'tl2cgen')}.build.json"


def make_xgboost(path: Path, n_threads: int) -> Contender:
    import xgboost as xgb

    start = time.perf_counter()
    booster = xgb.Booster(model_file=str(path))
    booster.set_param({"nthread": n_threads})
    _first(booster.inplace_predict, booster.num_features())
    return Contender(booster.inplace_predict, time.perf_counter() - start)


def make_lightgbm(path: Path, n_threads: int) -> Contender:
    import lightgbm as lgb

    start = time.perf_counter()
    booster = lgb.Booster(model_file=str(path))

    def score(X: np.ndarray) -> np.ndarray:
        return booster.predict(X, num_threads=n_threads)

    _first(score, booster.num_feature())
    return Contender(score, time.perf_counter() - start)


def make_sklearn(path: Path, n_threads: int) -> Contender:
    import pickle

    start = time.perf_counter()
    estimator = pickle.loads(path.read_bytes())  # our own file, written by the benchmark
    estimator.set_params(n_jobs=n_threads)
    _first(estimator.predict, estimator.n_features_in_)
    return Contender(estimator.predict, time.perf_counter() - start)


def make_gtil(path: Path, n_threads: int) -> Contender:
    import treelite

    start = time.perf_counter()
    if path.suffix in (".ubj", ".json"):
        model = treelite.frontend.load_xgboost_model(path)
    elif path.suffix == ".txt":
        model = treelite.frontend.load_lightgbm_model(path)
    else:
        import pickle

        model = treelite.sklearn.import_model(pickle.loads(path.read_bytes()))

    def score(X: np.ndarray) -> np.ndarray:
        return treelite.gtil.predict(model, X, nthread=n_threads)

    _first(score, model.num_feature)
    return Contender(score, time.perf_counter() - start)


NATIVE = {".ubj": make_xgboost, ".json": make_xgboost, ".txt": make_lightgbm}


def make_contender(name: str, path: Path, n_threads: int) -> Contender:
    """``numba``, ``tl2cgen``, ``native`` or ``gtil`` for the model file at ``path``."""
    if name in ("numba", "tl2cgen"):
        return make_lakescore(path, name, n_threads, trust_pickle=path.suffix == ".pkl")
    if name == "gtil":
        return make_gtil(path, n_threads)
    return NATIVE.get(path.suffix, make_sklearn)(path, n_threads)


def as_prediction(values: np.ndarray, n_rows: int) -> np.ndarray:
    """A contender's output as ``(n_rows,)`` or ``(n_rows, k)`` float64 for comparisons
    (GTIL returns ``(n_rows, targets, classes)``)."""
    values = np.asarray(values, dtype=np.float64).reshape(n_rows, -1)
    return values[:, 0] if values.shape[1] == 1 else values


#: Contenders much slower than lakescore score a fraction of the rows (rows/s is per row):
#: 1 / SLOW[name] of them.
SLOW = {"tl2cgen": 10, "gtil": 50}
#: Parametrisation of every model's test: the first TL2cgen build of a 500-tree model (and
#: training a model on first use) can outlast pytest-timeout's default on a busy machine.
CONTENDERS = [
    pytest.param(name, marks=pytest.mark.timeout(3600)) if name == "tl2cgen" else name
    for name in ("numba", "tl2cgen", "native", "gtil")
]
_ORACLES: dict[Path, np.ndarray] = {}


def run_model(
    run_contender: Any,
    model: str,
    path: Path,
    contender: str,
    n_threads: int,
    X: np.ndarray,
    *,
    atol: float,
) -> None:
    """Build ``contender`` for the model file, check it against the native library on the
    first 2,000 rows (a fast wrong answer would make every ratio meaningless), then time it
    on ``X`` (a fraction of it for the slow contenders, :data:`SLOW`)."""
    sample = X[:2000]
    if path not in _ORACLES:
        _ORACLES[path] = as_prediction(make_contender("native", path, 1).score(sample), 2000)
    built = make_contender(contender, path, n_threads)
    np.testing.assert_allclose(
        as_prediction(built.score(sample), 2000), _ORACLES[path], rtol=0, atol=atol
    )
    rows = X[: max(1, len(X) // SLOW.get(contender, 1))]
    run_contender(
        model,
        contender,
        n_threads,
        lambda: built.score(rows),
        rows=len(rows),
        ready_s=built.ready_s,
        note=built.note,
    )


def score_lake_natively(
    booster: Any, lake: Path | str, out: Path, n_features: int, filesystem: Any = None
) -> int:
    """The plain single-process pipeline on a Parquet lake (local, or on ``filesystem``):
    ``pyarrow.dataset`` reads it (hive partitions, Arrow's threads), ``numpy.column_stack``
    builds the matrix, ``inplace_predict`` scores it, one Parquet file of id and score is
    written (and removed). Returns the rows scored."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    features = [f"f{j}" for j in range(n_features)]
    dataset = ds.dataset(lake, format="parquet", partitioning="hive", filesystem=filesystem)
    table = dataset.to_table(columns=["customer_id", *features])
    X = np.column_stack(
        [table[f].to_numpy(zero_copy_only=False).astype(np.float32) for f in features]
    )
    scores = booster.inplace_predict(X)
    pq.write_table(pa.table({"customer_id": table["customer_id"], "score": scores}), out)
    out.unlink()
    return table.num_rows
