"""The IR's extra node kinds (categorical bitsets, LightGBM's zero band) on hand-built trees.

Each tree is small enough to know the answer for every input by reading it; the loaders'
own suites check that LightGBM and scikit-learn models map onto these kinds.
"""

from __future__ import annotations

import numpy as np
import pytest

import kernels
from kernels.loaders._layout import TreeArrays, breadth_first, concatenate


def forest_of(trees: list[TreeArrays], num_features: int = 2) -> kernels.Forest:
    arrays, offsets = concatenate([breadth_first(t) for t in trees])
    return kernels.Forest(
        **arrays,
        tree_offsets=offsets,
        tree_group=np.zeros(len(trees), np.int32),
        base_margin=np.zeros(1),
        link="identity",
        num_features=num_features,
        feature_names=tuple(f"f{i}" for i in range(num_features)),
        objective="test",
        source_format="test",
    )


def stump(**node0) -> TreeArrays:
    """One split on feature 0: left leaf 1.0, right leaf 2.0."""
    tree = TreeArrays(
        feature=np.array([0, -1, -1]),
        threshold=np.array([0.5, 0, 0], np.float32),
        left=np.array([1, -1, -1]),
        right=np.array([2, -1, -1]),
        default_left=np.array([0, 0, 0], np.uint8),
        value=np.array([0.0, 1.0, 2.0]),
    )
    for name, value in node0.items():
        setattr(tree, name, value)
    return tree


def score(forest: kernels.Forest, column: list[float]) -> np.ndarray:
    X = np.zeros((len(column), forest.num_features), np.float32)
    X[:, 0] = column
    return kernels.compile_model(forest, backend="numba").predict(X)


def test_categorical_bitset_sends_members_left_and_the_rest_right():
    # categories {1, 3, 33} go left: word 0 has bits 1 and 3, word 1 has bit 1 (33 = 32+1)
    tree = stump(
        categorical=np.array([1, 0, 0], np.uint8),
        cat_start=np.array([0, 0, 0], np.int32),
        cat_len=np.array([2, 0, 0], np.int32),
        cat_bits=np.array([0b1010, 0b10], np.uint32),
        default_left=np.array([1, 0, 0], np.uint8),
    )
    forest = forest_of([tree])
    assert forest.has_categorical
    inputs = [1, 3, 33, 3.7, 0, 2, 32, 34, 64, 1e9, -1, -0.5, np.inf, -np.inf, np.nan]
    expect = [1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1]  # -0.5 is category 0: not in
    np.testing.assert_array_equal(score(forest, inputs), np.array(expect, np.float32))
    with_zero = forest_of(
        [stump(**{**tree.__dict__, "cat_bits": np.array([0b1011, 0b10], np.uint32)})]
    )
    np.testing.assert_array_equal(score(with_zero, [0, -0.5, -0.999, -1]), [1, 1, 1, 2])


def test_categorical_bitsets_of_several_trees_do_not_mix():
    first = stump(
        categorical=np.array([1, 0, 0], np.uint8),
        cat_start=np.zeros(3, np.int32),
        cat_len=np.array([1, 0, 0], np.int32),
        cat_bits=np.array([0b10], np.uint32),
    )
    second = stump(
        categorical=np.array([1, 0, 0], np.uint8),
        cat_start=np.zeros(3, np.int32),
        cat_len=np.array([1, 0, 0], np.int32),
        cat_bits=np.array([0b100], np.uint32),
    )
    forest = forest_of([first, second])
    np.testing.assert_array_equal(forest.cat_start[forest.tree_offsets[:-1]], [0, 1])
    # category 1: left in the first (1.0), right in the second (2.0); category 2: reverse
    np.testing.assert_array_equal(score(forest, [1, 2, 0]), [3.0, 3.0, 4.0])


@pytest.mark.parametrize("default_left", [0, 1])
def test_zero_band_counts_as_missing(default_left):
    tree = stump(
        zero_missing=np.array([1, 0, 0], np.uint8),
        threshold=np.array([0.5, 0, 0], np.float32),  # 0 would go left by value
        default_left=np.array([default_left, 0, 0], np.uint8),
    )
    forest = forest_of([tree])
    assert forest.has_zero_missing
    missing = 1.0 if default_left else 2.0
    # the band is closed: float32(1e-35) is k itself, on both sides
    inputs = [0.0, -0.0, 1e-35, -1e-35, -9.9e-36, 1e-36, np.nan, 1.1e-35, -1.1e-35, 0.25, 0.75]
    expect = [missing] * 7 + [1.0, 1.0, 1.0, 2.0]
    np.testing.assert_array_equal(score(forest, inputs), np.array(expect, np.float32))


def test_plain_nodes_ignore_the_zero_band():
    forest = forest_of([stump(default_left=np.array([0, 0, 0], np.uint8))])
    np.testing.assert_array_equal(score(forest, [0.0, 1e-36, np.nan]), [1.0, 1.0, 2.0])


def test_layout_choice_sends_extra_kinds_to_the_reference_walk():
    from kernels._numba_cpu import choose_layout

    plain = forest_of([stump()])
    assert choose_layout(plain) == "perfect"
    assert choose_layout(forest_of([stump(zero_missing=np.array([1, 0, 0], np.uint8))])) == (
        "reference"
    )
