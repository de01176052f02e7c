"""``lakescore inspect`` and ``lakescore compile`` on real model files."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from agreement.registry import BY_NAME
from scoring_helpers import FEATURES, error_line
from sklearn.ensemble import RandomForestClassifier


def test_inspect_describes_an_xgboost_model(cli, model_file: Path):
    proc = cli("inspect", model_file, "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["format"] == "xgboost-json" and info["objective"] == "binary:logistic"
    assert info["classes"] == ["0", "1"] and info["outputs"] == 1
    assert info["trees"] == 20 and 1 <= info["max_depth"] <= 4
    assert info["leaves"] > info["trees"] and info["nodes"] == 2 * info["leaves"] - info["trees"]
    assert info["feature_names"] == list(FEATURES) and len(info["feature_types"]) == 6
    assert info["sha256"] == hashlib.sha256(model_file.read_bytes()).hexdigest()
    assert info["kernel"] == "numba (perfect layout)" and info["kernel_bytes"] > 0
    text = cli("inspect", model_file)
    assert text.returncode == 0 and "binary:logistic" in text.stdout


def test_inspect_needs_the_trust_flag_for_a_pickle(cli, tmp_path: Path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3)).astype(np.float32)
    model = RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0)
    model.fit(X, np.digitize(X[:, 0], [-0.5, 0.5]))
    path = tmp_path / "forest.pkl"
    path.write_bytes(pickle.dumps(model))

    refused = cli("inspect", path)
    assert refused.returncode == 2
    assert "--trust-pickle" in error_line(refused)

    proc = cli("inspect", path, "--trust-pickle", "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["classes"] == ["0", "1", "2"] and info["outputs"] == 3
    assert info["trees"] == 9  # one copy of each tree per class column
    assert info["feature_names"] == ["f0", "f1", "f2"]


def test_compile_warms_the_kernel(cli, model_file: Path):
    proc = cli("compile", model_file)
    assert proc.returncode == 0, proc.stderr
    assert "compiled" in proc.stdout and "numba" in proc.stdout
    missing = cli("compile", model_file.with_name("nope.json"))
    assert missing.returncode == 2 and "not found" in error_line(missing)


@pytest.mark.parametrize(
    ("name", "fmt", "expected_format"),
    [
        ("lgb-categorical", "text", "lightgbm-text"),
        ("sk-hgb-categorical", "skops", "sklearn-skops"),
        ("sk-pipeline-scaler-logistic", "skops", "sklearn-skops"),
        ("xgb-multi-softprob", "treelite", "treelite"),
    ],
)
def test_inspect_describes_every_family(cli, zoo, name: str, fmt: str, expected_format: str):
    """LightGBM text, skops (trees and a linear model) and treelite files from the model
    registry: the same summary as for XGBoost, with the kernel's memory estimate."""
    case = BY_NAME[name]
    path = zoo.trained(case).files[fmt]
    proc = cli("inspect", path, "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    forest = zoo.forest(case, fmt)
    assert info["format"] == expected_format and info["objective"] == forest.objective
    assert info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert info["trees"] == forest.num_trees and info["features"] == forest.num_features
    assert info["feature_names"] == list(forest.feature_names)
    assert info["classes"] == forest.classes() and info["classes"] is not None
    assert info["kernel"].startswith("numba (") and info["kernel_bytes"] > 0
    if case.train.categorical and fmt != "treelite":
        assert info["categorical_splits"] > 0
