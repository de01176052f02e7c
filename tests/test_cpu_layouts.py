"""Which CPU layout a forest gets, and layouts on forests no native library writes.

Every layout's agreement with the native libraries on every registry model is
``tests/agreement/test_agreement.py::test_every_cpu_layout_agrees``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from agreement.registry import BY_NAME

import kernels
from kernels._numba_cpu import CpuLauncher, choose_layout

CPU_LAYOUTS = ("perfect", "sparse", "reference")


@pytest.mark.parametrize("name", ["xgb-deep", "sk-tree-deep"])
def test_deep_trees_take_the_sparse_layout(zoo, name):
    forest = zoo.forest(BY_NAME[name], BY_NAME[name].primary)
    assert int(forest.tree_depths().max()) > 10
    assert choose_layout(forest) == "sparse"
    assert zoo.kernel(BY_NAME[name], BY_NAME[name].primary, "numba").layout == "sparse"


@pytest.mark.parametrize(
    "name", ["xgb-categorical-partition", "lgb-categorical", "lgb-zero-as-missing",
             "sk-hgb-categorical", "sk-logistic-binary"],
)  # fmt: skip
def test_extra_node_kinds_and_linear_models_take_the_reference_walk(zoo, name):
    forest = zoo.forest(BY_NAME[name], BY_NAME[name].primary)
    assert choose_layout(forest) == "reference"


def test_boosted_trees_take_the_perfect_layout(zoo):
    forest = zoo.forest(BY_NAME["xgb-binary-logistic"], "json")
    assert choose_layout(forest) == "perfect"


@pytest.mark.parametrize("layout", CPU_LAYOUTS)
def test_infinite_thresholds_keep_nan_on_its_default_side(zoo, layout):
    """A ``-inf`` threshold with NaN going left (LightGBM's NaN-apart split) and a ``+inf``
    one with NaN going right: every layout must agree with the reference walk."""
    forest = zoo.forest(BY_NAME["xgb-binary-logistic"], "json")
    inner = np.flatnonzero(forest.feature >= 0)
    threshold, default_left = forest.threshold.copy(), forest.default_left.copy()
    threshold[inner[0::2]], default_left[inner[0::2]] = -np.inf, 1
    threshold[inner[1::2]], default_left[inner[1::2]] = np.inf, 0
    edited = replace(forest, threshold=threshold, default_left=default_left)
    assert choose_layout(edited) == "perfect"
    rng = np.random.default_rng(13)
    X = rng.normal(size=(500, edited.num_features)).astype(np.float32)
    X[rng.random(X.shape) < 0.3] = np.nan
    X[rng.random(X.shape) < 0.1] = np.inf
    X[rng.random(X.shape) < 0.1] = -np.inf
    reference = kernels.Kernel(
        edited, backend="numba", launcher=CpuLauncher(edited, layout="reference")
    )
    kernel = kernels.Kernel(edited, backend="numba", launcher=CpuLauncher(edited, layout=layout))
    np.testing.assert_array_equal(
        kernel.predict(X, output="margin"), reference.predict(X, output="margin")
    )
