"""Every model family scores through ``lakescore score`` as through its own predict.

LightGBM (a text file), scikit-learn (a skops file, and a trusted pickle of a scaled
logistic regression) and treelite (a checkpoint of an XGBoost model) models are trained
on the small lake's features; the sink's scores are compared per id with the native
predict on the same rows.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scoring_helpers import FEATURES, ID, feature_matrix, read_sink, scores_by_id

#: Models fitted on numpy arrays name their features f0..f5: map them to the lake's columns.
MAPPING = [flag for i, name in enumerate(FEATURES) for flag in ("--column", f"f{i}={name}")]


def _labels(X: np.ndarray) -> np.ndarray:
    return (np.nan_to_num(X[:, 0], nan=50.0) * 0.01 - 0.05 * X[:, 1] > 0.0).astype(int)


def lightgbm_model(X: np.ndarray, folder: Path):
    import lightgbm as lgb

    params = {"objective": "binary", "num_leaves": 15, "verbose": -1, "seed": 0,
              "num_threads": 1}  # fmt: skip
    booster = lgb.train(params, lgb.Dataset(X, _labels(X), feature_name=list(FEATURES)), 15)
    path = folder / "model.txt"
    booster.save_model(str(path))
    return path, booster.predict, []


def skops_model(X: np.ndarray, folder: Path):
    import skops.io
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(max_iter=15, random_state=0).fit(X, _labels(X))
    path = folder / "model.skops"
    skops.io.dump(model, path)
    return path, lambda rows: model.predict_proba(rows)[:, 1], MAPPING


def pickle_model(X: np.ndarray, folder: Path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, _labels(X))
    path = folder / "model.pkl"
    path.write_bytes(pickle.dumps(model))
    return path, lambda rows: model.predict_proba(rows)[:, 1], ["--trust-pickle", *MAPPING]


def treelite_model(X: np.ndarray, folder: Path):
    import treelite
    import xgboost as xgb

    booster = xgb.train({"objective": "binary:logistic", "max_depth": 4, "seed": 0,
                         "nthread": 1}, xgb.DMatrix(X, _labels(X)), 10)  # fmt: skip
    path = folder / "model.tl"
    treelite.frontend.from_xgboost(booster).serialize(str(path))
    return path, booster.inplace_predict, MAPPING


@pytest.mark.parametrize("family", ["lightgbm", "skops", "pickle", "treelite"])
def test_family_scores_like_its_native_predict(cli, family, lake, lake_table, tmp_path):
    X = feature_matrix(lake_table)
    source = lake
    if family == "pickle":  # linear models take no NaN: score a complete copy of the lake
        X = np.nan_to_num(X, nan=0.0)
        columns = {n: pa.array(X[:, j]) for j, n in enumerate(FEATURES)}
        source = tmp_path / "complete.parquet"
        pq.write_table(pa.table({ID: lake_table[ID], **columns}), source)
    make = {"lightgbm": lightgbm_model, "skops": skops_model, "pickle": pickle_model,
            "treelite": treelite_model}[family]  # fmt: skip
    path, native, flags = make(X, tmp_path)
    sink = tmp_path / "scores"

    proc = cli("score", "--model", path, "--source", source, "--sink", sink, "--id-column", ID,
               *flags)  # fmt: skip

    assert proc.returncode == 0, proc.stderr
    got = scores_by_id(read_sink(sink))
    expected = dict(zip(lake_table[ID].to_pylist(), native(X).tolist(), strict=True))
    assert got.keys() == expected.keys()
    ids = sorted(expected)
    np.testing.assert_allclose([got[i] for i in ids], [expected[i] for i in ids], atol=1e-6)
