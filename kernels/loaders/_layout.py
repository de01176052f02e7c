"""Helpers shared by loaders: turning per-tree node lists into :class:`~kernels.ir.Forest`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kernels.errors import ModelFormatError


def _none() -> np.ndarray | None:
    return None


@dataclass
class TreeArrays:
    """One tree in the loader-neutral form, before breadth-first re-layout.

    ``left[i] == -1`` marks a leaf; ``value[i]`` is only read for leaves. The optional
    arrays follow :class:`~kernels.ir.Forest`'s meaning; ``cat_start`` indexes this tree's
    own ``cat_bits``.
    """

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    default_left: np.ndarray
    value: np.ndarray
    zero_missing: np.ndarray | None = field(default_factory=_none)
    categorical: np.ndarray | None = field(default_factory=_none)
    cat_start: np.ndarray | None = field(default_factory=_none)
    cat_len: np.ndarray | None = field(default_factory=_none)
    cat_bits: np.ndarray | None = field(default_factory=_none)

    def filled(self) -> TreeArrays:
        """The same tree with every optional array present."""
        n = self.left.shape[0]

        def get(name: str, dtype: type, size: int) -> np.ndarray:
            arr = getattr(self, name)
            return np.zeros(size, dtype) if arr is None else np.asarray(arr, dtype)

        return TreeArrays(
            feature=self.feature, threshold=self.threshold, left=self.left, right=self.right,
            default_left=self.default_left, value=self.value,
            zero_missing=get("zero_missing", np.uint8, n),
            categorical=get("categorical", np.uint8, n),
            cat_start=get("cat_start", np.int32, n),
            cat_len=get("cat_len", np.int32, n),
            cat_bits=get("cat_bits", np.uint32, 0),
        )  # fmt: skip


def check_split_features(
    tree: object, feature: np.ndarray, inner: np.ndarray, num_features: int
) -> None:
    """Refuse a split on a feature the model does not have: the kernels index rows with it."""
    bad = inner & ((feature < 0) | (feature >= num_features))
    if bad.any():
        raise ModelFormatError(
            f"tree {tree}: split feature {int(feature[bad][0])} out of range "
            f"(the model has {num_features} features)"
        )


def breadth_first(tree: TreeArrays) -> TreeArrays:
    """Re-number a tree's reachable nodes breadth-first from the root (node 0).

    Native formats may hold deleted or unreachable nodes and children numbered before their
    parents; after this every child follows its parent, nodes of one level sit together,
    and a node's right child is the node after its left child.
    """
    tree = tree.filled()
    n = tree.left.shape[0]
    order: list[int] = [0]
    seen = np.zeros(n, dtype=bool)
    seen[0] = True
    head = 0
    while head < len(order):
        node = order[head]
        head += 1
        if tree.left[node] >= 0:
            for child in (int(tree.left[node]), int(tree.right[node])):
                # each node reached once from the root, or it is no tree (a cycle, a
                # shared child): checked here so no loader can hand over a graph
                if not 0 <= child < n or seen[child]:
                    raise ModelFormatError("tree nodes do not form a tree")
                seen[child] = True
                order.append(child)
    idx = np.asarray(order, dtype=np.int64)
    new_id = np.full(tree.left.shape[0], -1, dtype=np.int64)
    new_id[idx] = np.arange(idx.shape[0])
    is_leaf = tree.left[idx] < 0
    left = np.where(is_leaf, -1, new_id[np.maximum(tree.left[idx], 0)])
    right = np.where(is_leaf, -1, new_id[np.maximum(tree.right[idx], 0)])

    def inner(arr: np.ndarray, dtype: type) -> np.ndarray:
        return np.where(is_leaf, 0, arr[idx]).astype(dtype)

    return TreeArrays(
        feature=np.where(is_leaf, -1, tree.feature[idx]).astype(np.int32),
        threshold=inner(tree.threshold, np.float32),
        left=left.astype(np.int32),
        right=right.astype(np.int32),
        default_left=inner(tree.default_left, np.uint8),
        value=np.where(is_leaf, tree.value[idx], 0.0).astype(np.float64),
        zero_missing=inner(tree.zero_missing, np.uint8),
        categorical=inner(tree.categorical, np.uint8),
        cat_start=inner(tree.cat_start, np.int32),
        cat_len=inner(tree.cat_len, np.int32),
        cat_bits=tree.cat_bits,
    )


def concatenate(trees: list[TreeArrays]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Lay trees end to end; returns the Forest's node arrays and ``tree_offsets``."""
    trees = [t.filled() for t in trees]
    sizes = np.array([t.feature.shape[0] for t in trees], dtype=np.int64)
    offsets = np.zeros(len(trees) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])

    def cat(name: str, dtype: type) -> np.ndarray:
        if not trees:
            return np.zeros(0, dtype=dtype)
        return np.concatenate([getattr(t, name) for t in trees]).astype(dtype)

    bits_before = np.cumsum([0] + [t.cat_bits.shape[0] for t in trees[:-1]]) if trees else []
    cat_start = (
        np.concatenate([t.cat_start + int(b) for t, b in zip(trees, bits_before, strict=True)])
        if trees
        else np.zeros(0, np.int32)
    )
    arrays = {
        "feature": cat("feature", np.int32),
        "threshold": cat("threshold", np.float32),
        "left": cat("left", np.int32),
        "right": cat("right", np.int32),
        "default_left": cat("default_left", np.uint8),
        "value": cat("value", np.float64),
        "zero_missing": cat("zero_missing", np.uint8),
        "categorical": cat("categorical", np.uint8),
        "cat_start": np.where(cat("categorical", np.uint8) != 0, cat_start, 0).astype(np.int32),
        "cat_len": cat("cat_len", np.int32),
        "cat_bits": cat("cat_bits", np.uint32),
    }
    return arrays, offsets
