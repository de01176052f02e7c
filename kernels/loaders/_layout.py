"""Helpers shared by loaders: turning per-tree node lists into :class:`~kernels.ir.Forest`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class TreeArrays:
    """One tree in the loader-neutral form, before breadth-first re-layout.

    ``left[i] == -1`` marks a leaf; ``value[i]`` is only read for leaves.
    """

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    default_left: np.ndarray
    value: np.ndarray


def breadth_first(tree: TreeArrays) -> TreeArrays:
    """Re-number a tree's reachable nodes breadth-first from the root (node 0).

    Native formats may hold deleted or unreachable nodes and children numbered before their
    parents; after this every child follows its parent and nodes of one level sit together.
    """
    order: list[int] = [0]
    head = 0
    while head < len(order):
        node = order[head]
        head += 1
        if tree.left[node] >= 0:
            order.append(int(tree.left[node]))
            order.append(int(tree.right[node]))
    idx = np.asarray(order, dtype=np.int64)
    new_id = np.full(tree.left.shape[0], -1, dtype=np.int64)
    new_id[idx] = np.arange(idx.shape[0])
    is_leaf = tree.left[idx] < 0
    left = np.where(is_leaf, -1, new_id[np.maximum(tree.left[idx], 0)])
    right = np.where(is_leaf, -1, new_id[np.maximum(tree.right[idx], 0)])
    return TreeArrays(
        feature=np.where(is_leaf, -1, tree.feature[idx]).astype(np.int32),
        threshold=np.where(is_leaf, 0.0, tree.threshold[idx]).astype(np.float32),
        left=left.astype(np.int32),
        right=right.astype(np.int32),
        default_left=np.where(is_leaf, 0, tree.default_left[idx]).astype(np.uint8),
        value=np.where(is_leaf, tree.value[idx], 0.0).astype(np.float64),
    )


def concatenate(trees: list[TreeArrays]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Lay trees end to end; returns the node arrays and ``tree_offsets``."""
    sizes = np.array([t.feature.shape[0] for t in trees], dtype=np.int64)
    offsets = np.zeros(len(trees) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])

    def cat(name: str, dtype: type) -> np.ndarray:
        if not trees:
            return np.zeros(0, dtype=dtype)
        return np.concatenate([getattr(t, name) for t in trees]).astype(dtype)

    arrays = {
        "feature": cat("feature", np.int32),
        "threshold": cat("threshold", np.float32),
        "left": cat("left", np.int32),
        "right": cat("right", np.int32),
        "default_left": cat("default_left", np.uint8),
        "value": cat("value", np.float64),
    }
    return arrays, offsets
