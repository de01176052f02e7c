"""XGBoost categorical splits (``enable_categorical``): what the loader makes of them.

Their agreement with XGBoost (partition and one-hot splits, categories seen and unseen,
negative, fractional, past the largest, NaN and +-inf) is the agreement suite's
(``xgb-categorical-*`` in tests/agreement/xgb_cases.py).
"""

from __future__ import annotations

import pytest
from agreement.registry import BY_NAME

import kernels

NAMES = ["xgb-categorical-partition", "xgb-categorical-onehot"]


@pytest.mark.parametrize("fmt", ["json", "ubj"])
@pytest.mark.parametrize("name", NAMES)
def test_categorical_nodes_use_xgboosts_rule(zoo, name, fmt):
    """XGBoost's categorical rule (kind 3: negative values are no category) on the trained
    categorical columns only."""
    forest = zoo.forest(BY_NAME[name], fmt)
    assert forest.has_categorical
    split = forest.categorical != 0
    assert set(forest.categorical[split]) == {3}
    assert set(forest.feature[split]) <= set(BY_NAME[name].train.categorical)
    assert forest.describe()["feature_types"] == ["c", "q", "c", "q"]


@pytest.mark.parametrize("name", NAMES)
def test_categorical_forest_picks_the_reference_walk(zoo, name):
    """The CPU backend scores categorical splits with its reference walk; the CUDA backend
    scores them too (its walk, checked in tests/test_cuda_backend.py)."""
    from kernels._numba_cpu import choose_layout

    forest = zoo.forest(BY_NAME[name], "json")
    assert choose_layout(forest) == "reference"
    assert kernels.compile_model(forest, backend="numba").layout == "reference"
