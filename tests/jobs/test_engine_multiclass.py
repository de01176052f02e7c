"""A multiclass model's run: one float32 probability column per class and an int32 label."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import pytest
import xgboost as xgb
from scoring_helpers import FEATURES, ID, feature_matrix

from engine import score


@pytest.mark.parametrize("objective", ["multi:softprob", "multi:softmax"])
def test_multiclass_sink_columns(lake: Path, lake_table, tmp_path: Path, objective: str):
    X = feature_matrix(lake_table)
    y = (np.nan_to_num(X[:, 0]) > np.nanmedian(X[:, 0])).astype(int) + (
        np.nan_to_num(X[:, 1]) > np.nanmedian(X[:, 1])
    )
    booster = xgb.train(
        {"objective": objective, "num_class": 3, "max_depth": 3, "seed": 0, "nthread": 1},
        xgb.DMatrix(X, y, feature_names=list(FEATURES)), 8,
    )  # fmt: skip
    model = tmp_path / "multi.json"
    booster.save_model(model)

    result = score(model, lake, tmp_path / "sink", id_column=ID)

    table = ds.dataset(tmp_path / "sink").to_table().sort_by(ID)
    assert table.column_names == [ID, "score_0", "score_1", "score_2", "label", "run_id"]
    assert str(table.schema.field("score_0").type) == "float"
    assert str(table.schema.field("label").type) == "int32"
    order = np.argsort(lake_table[ID].to_numpy())
    margin = booster.inplace_predict(X[order], predict_type="margin").astype(np.float64)
    expected = np.exp(margin - margin.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    got = np.column_stack([table[f"score_{k}"].to_numpy() for k in range(3)])
    np.testing.assert_allclose(got, expected, atol=1e-6)
    np.testing.assert_array_equal(table["label"].to_numpy(), got.argmax(axis=1))
    if objective == "multi:softmax":  # the native prediction is the label itself
        np.testing.assert_array_equal(table["label"].to_numpy(), booster.inplace_predict(X[order]))
    assert set(result.stats) == {"score_0", "score_1", "score_2", "label"}
    assert result.stats["label"]["count"] == table.num_rows
