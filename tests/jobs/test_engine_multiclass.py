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


def test_named_classes_name_the_columns_and_the_label(lake: Path, lake_table, tmp_path: Path):
    """A scikit-learn classifier's ``classes_`` name the score columns; ``label`` holds the
    class itself (a string here), not its index."""
    import skops.io
    from sklearn.ensemble import RandomForestClassifier

    X = feature_matrix(lake_table)
    names = np.array(["churn", "sleep", "stay"])
    y = names[(np.nan_to_num(X[:, 0]) > 60).astype(int) + (np.nan_to_num(X[:, 1]) > 6)]
    model = RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0).fit(
        np.nan_to_num(X), y
    )
    path = tmp_path / "forest.skops"
    skops.io.dump(model, path)
    mapping = {f"f{i}": name for i, name in enumerate(FEATURES)}

    score(path, lake, tmp_path / "sink", id_column=ID, columns=mapping)

    table = ds.dataset(tmp_path / "sink").to_table().sort_by(ID)
    assert table.column_names == [ID, "score_churn", "score_sleep", "score_stay", "label",
                                  "run_id"]  # fmt: skip
    order = np.argsort(lake_table[ID].to_numpy())
    expected = model.predict_proba(X[order])  # the lake's NaN as sklearn's own trees see it
    got = np.column_stack([table[f"score_{n}"].to_numpy() for n in names])
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert table["label"].to_pylist() == names[got.argmax(axis=1)].tolist()
