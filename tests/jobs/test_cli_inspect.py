"""``lakescore inspect`` and ``lakescore compile`` on real model files."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import numpy as np
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
